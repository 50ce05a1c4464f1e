"""`lekiwi-drift train`: train the Drift-VLA policy (or the flow-matching baseline) on a LeRobotDataset.

Runs LeRobot's own training loop (accelerate underneath). Examples:

    lekiwi-drift train --objective drift --dataset data/salt_bottle --output runs/drift --steps 30000
    lekiwi-drift train --objective flow  --dataset user/salt_bottle --output runs/fm --batch-size 64
    lekiwi-drift train --objective drift --dataset data/salt_bottle --output runs/drift --resume
    lekiwi-drift train ... -- --policy.drift_samples=16 --policy.optimizer_lr=5e-5   # LeRobot options

Multi-GPU: `accelerate launch --multi_gpu --num_processes 4 -m lekiwi_drift.cli.main train ...`
(`--batch-size` is per process). Offline: `--vlm-dir DIR` points SmolVLA at a local SmolVLM
directory (a local copy of the published model, or one from lekiwi_drift.policy.offline_vlm);
`--tiny` trains the tiny test-size model on a generated tiny VLM.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train the drift policy or the flow-matching baseline (LeRobot's training loop)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--objective", choices=("drift", "flow"), required=True, help="drift (one-step) or flow (baseline)")
    p.add_argument("--dataset", required=True, help="local LeRobotDataset directory or Hub repo id")
    p.add_argument("--output", required=True, help="training output directory (checkpoints go under it)")
    p.add_argument("--steps", type=int, default=30_000, help="total optimisation steps (default 30000)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size per process (default 32)")
    p.add_argument("--vlm-dir", help="local SmolVLM directory instead of the Hub model (offline)")
    p.add_argument("--tiny", action="store_true", help="tiny test-size model (64x64 images, 4 VLM layers, chunk 10)")
    p.add_argument(
        "--small",
        action="store_true",
        help="sim-scale model trained from scratch (128x128 input, 16 tokens per camera, 4 VLM layers of "
        "width 128, chunk 20 executing 10): the evidence runs' model, about 1.3 M parameters",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoints/last")
    p.add_argument(
        "--init-from",
        metavar="DIR",
        help="start from this policy's pretrained_model directory (config and weights; the objective "
        "is set anew), e.g. a flow-matching checkpoint, as Drift-VLA starts from flow-pretrained SmolVLA",
    )
    p.add_argument("--num-workers", type=int, default=4, help="data loader workers (default 4; 0 = in-process)")
    p.add_argument("--save-freq", type=int, default=5_000, help="checkpoint every N steps (and at the end)")
    p.add_argument("--log-freq", type=int, default=100, help="log metrics every N steps")
    p.add_argument("--device", help="cuda, cpu, mps (default: best available)")
    p.add_argument("--push-to-hub", action="store_true", help="push the final policy to the Hub as --repo-id")
    p.add_argument("--repo-id", help="with --push-to-hub: the model repo OWNER/NAME")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument(
        "extra", nargs="*", metavar="-- LEROBOT_OPTION", help="after `--`: options passed to LeRobot's trainer"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from lekiwi_drift.policy.train import TrainOptions, checkpoint_summary, run_training

    extra = [a for a in args.extra if a != "--"]
    bad = [a for a in extra if not a.startswith("--")]
    if bad:
        raise SystemExit(f"lekiwi-drift train: pass-through options must look like --name=value, got {bad}")
    opts = TrainOptions(
        objective=args.objective,
        dataset=args.dataset,
        output=Path(args.output),
        steps=args.steps,
        batch_size=args.batch_size,
        vlm_dir=args.vlm_dir,
        tiny=args.tiny,
        small=args.small,
        resume=args.resume,
        num_workers=args.num_workers,
        save_freq=args.save_freq,
        log_freq=args.log_freq,
        device=args.device,
        seed=args.seed,
        init_from=Path(args.init_from) if args.init_from else None,
        extra=extra,
    )
    from lekiwi_drift.hub import HubError, check_repo_id, push_checkpoint

    try:
        if args.push_to_hub:  # checked before hours of training, not after
            if not args.repo_id:
                raise HubError("--push-to-hub needs --repo-id OWNER/NAME (the model repo to create or update)")
            check_repo_id(args.repo_id)
        checkpoint = run_training(opts)
        if args.push_to_hub:
            files = push_checkpoint(checkpoint, args.repo_id)
            print(f"pushed {len(files)} files of {checkpoint} to the Hub model {args.repo_id}")
    except HubError as exc:
        raise SystemExit(f"lekiwi-drift train: {exc}") from None
    summary = checkpoint_summary(checkpoint)
    print(f"trained {summary['objective']} policy, step {summary['step']}: {summary['path']}")
    return 0
