"""`lekiwi-drift parity`: check that the policy sees at deploy time what it saw in training.

    lekiwi-drift parity --policy drift --dataset outputs/my_demos
    lekiwi-drift parity --policy my_preset.yaml --dataset outputs/held_out --episodes 3 4 --every 10

Dataset frames go through both input paths: the training path (LeRobotDataset item -> the policy's
preprocessor, as LeRobot's train loop feeds it) and the deploy path (the same frame as the robot
delivers it: JPEG q90 over the wire -> Observation -> the preset's camera mapping -> preprocessor). The
robot is assumed to have the dataset's cameras, so the preset's `cameras:` mapping decides which one
feeds which policy key. Reported per input after preprocessing: the largest and mean absolute difference
per camera key and for the state, whether the language tokens are equal, and the likely cause of a big
difference (camera keys swapped, RGB/BGR order, image size, state order, task string, normaliser stats
of the checkpoint vs the dataset's meta/stats.json).

Then the open-loop action error: the policy (fixed seed, so the number is reproducible) runs on the
deploy-path input of each selected frame and its chunk is compared with the next `chunk` recorded
actions (steps past the episode end masked), as MSE per action dimension divided by the dataset's action
variance. Meaningful numbers need episodes the checkpoint was NOT trained on (a held-out recording, or
--episodes not in its training set); on training episodes it only shows how well the policy memorised.

Thresholds: a camera fails when its mean |difference| exceeds 0.03 in [0, 1] pixel units (the JPEG round
trip alone gives ~0.01; another camera's image ~0.1 or more); the state when it differs by more than
0.001 normalised units (the wire carries it exactly); the tokens when they differ at all. Normaliser stats
warn at 3 and fail at 10 checkpoint standard deviations (mean shift or std ratio).

Exit code: 0 all inputs agree, 1 something is flagged (printed with its fix), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "parity",
        help="check train/deploy input parity of a policy preset on a dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--policy", default="drift", help="preset name (policies/NAME.yaml) or a preset file (default: drift)"
    )
    p.add_argument("--dataset", required=True, metavar="DIR", help="a LeRobotDataset directory (meta/, data/, videos/)")
    p.add_argument(
        "--episodes",
        type=int,
        nargs="+",
        metavar="N",
        help="dataset episodes to use (default: all); for the action error pick held-out ones",
    )
    p.add_argument(
        "--every", type=int, default=25, metavar="N", help="use every N-th frame of an episode (default: 25)"
    )
    p.add_argument("--seed", type=int, default=0, help="torch seed for the policy's noise (default: 0)")
    p.add_argument("--device", help="override the preset's device (cpu, cuda, ...)")
    p.add_argument("--no-actions", action="store_true", help="inputs only; skip the open-loop action error")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.set_defaults(run=run)


def _progress(total: int):
    """A tqdm bar on a terminal; otherwise a line every 20 frames (logs stay readable)."""
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="parity", unit="frame")
            return lambda n, _t: bar.update(1) or (bar.close() if n == total else None)
        except ImportError:
            pass
    return lambda n, t: print(f"  frame {n}/{t}", flush=True) if n % 20 == 0 or n == t else None


def run(args) -> int:
    from lekiwi_drift.control.parity import ParityError, compare, dataset_cameras, open_dataset, select_frames
    from lekiwi_drift.control.preset import load_preset
    from lekiwi_drift.control.runtime import PolicyRuntime
    from lekiwi_drift.policy.checkpoint import PolicyMismatchError

    def fail(msg: str, code: int = 2) -> int:
        print(f"lekiwi-drift parity: {msg}", file=sys.stderr)
        return code

    if args.every < 1:
        return fail("--every must be >= 1")
    root = Path(args.dataset).expanduser()
    if not (root / "meta" / "info.json").is_file():
        return fail(f"no LeRobotDataset at {root} (no meta/info.json)")
    preset = load_preset(args.policy)  # ConfigError -> exit 2 in cli/main.py
    if args.device:
        preset.device = args.device
    try:
        ds = open_dataset(root)
    except Exception as exc:  # noqa: BLE001 - any failure to open is the same answer: not a usable dataset
        return fail(f"cannot open the dataset at {root}: {type(exc).__name__}: {exc}")
    cams = dataset_cameras(ds)
    print(f"dataset {root}: {ds.meta.total_episodes} episodes, {ds.meta.total_frames} frames, cameras {cams}")
    print(f"loading policy preset {preset.name} ({preset.source}) ...", flush=True)
    try:
        runtime = PolicyRuntime.load(preset, robot_cameras=cams, warmup=False)
        frames = select_frames(ds, args.episodes, args.every)
    except (PolicyMismatchError, FileNotFoundError, ParityError) as exc:
        return fail(str(exc))
    print(runtime.describe())
    print(
        f"comparing {len(frames)} frames (every {args.every}), "
        f"{'inputs only' if args.no_actions else f'plus open-loop actions, seed {args.seed}'}"
    )
    try:
        report = compare(
            runtime, ds, frames, seed=args.seed, actions=not args.no_actions, on_frame=_progress(len(frames))
        )
    except ParityError as exc:
        return fail(str(exc), 1)
    _print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(report) | {"ok": report.ok}, indent=2, default=str))
        print(f"report: {args.json}")
    return 0 if report.ok else 1


def _fmt(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.4f}"


def _print_report(r) -> None:
    from lekiwi_drift.control.parity_checks import IMAGE_MEAN_TOL, STATE_TOL

    print(
        f"\ninputs after preprocessing (deploy vs training; fail: image mean > {IMAGE_MEAN_TOL}, "
        f"state max > {STATE_TOL:g}):"
    )
    print(f"  {'input':<28} {'robot camera':<13} {'max |diff|':>10} {'mean |diff|':>11}  closest training image")
    for img in r.images:
        size = f" size {img.deploy_shape[1]}x{img.deploy_shape[0]}"
        print(
            f"  {img.key:<28} {img.robot_camera:<13} {_fmt(img.max_abs):>10} {_fmt(img.mean_abs):>11}  "
            f"{img.best_match} ({img.best_mean_abs:.4f}){size}  {'ok' if img.ok else 'FLAGGED'}"
        )
    s = r.state
    print(
        f"  {'observation.state':<28} {'':<13} {_fmt(s.max_abs):>10} {_fmt(s.mean_abs):>11}  "
        f"{'ok' if s.ok else 'FLAGGED'}"
    )
    print(f"  language tokens: {'equal' if r.tokens_equal else 'DIFFER'} (task {r.deploy_task!r})")
    for n in r.norms:
        print(
            f"  normaliser {n.key}: checkpoint vs dataset mean shift <= {n.max_mean_shift:.2f} std, std ratio "
            f"<= {n.max_std_ratio:.2f} (worst {n.worst_dim}): {n.level}"
        )
    a = r.action
    if a is not None:
        print(
            f"\nopen-loop action error over {a.frames} frames, chunk {a.chunk}, {a.steps} steps, seed {a.seed} "
            "(MSE / dataset action variance; meaningful on episodes the checkpoint was not trained on):"
        )
        for name, v, sc in zip(a.names, a.nmse, a.scale):
            note = (
                "  (scaled by the checkpoint's std: the dataset barely moves it)"
                if name in a.scale_from_checkpoint
                else ""
            )
            print(f"  {name:<24} {v:8.3f}   (std {sc:.4g}){note}")
        print(f"  {'mean':<24} {a.mean:8.3f}")
    for w in r.warnings:
        print(f"\nwarning: {w}")
    if r.ok:
        print("\nparity OK: the deploy path delivers what training saw")
        return
    print(f"\nparity FAILED ({len(r.findings)} problem(s)):")
    for f in r.findings:
        print(f"  {f.what}: {f.cause}\n    fix: {f.fix}")
