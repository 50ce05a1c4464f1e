"""Train `smolvla_drift` with LeRobot's own training loop (`lerobot.scripts.lerobot_train.train`).

We do not re-implement the trainer: accelerate (single GPU, multi-GPU via `accelerate launch`, CPU),
the progress bar and periodic metric logs (drift diagnostics included, from the policy's output
dict), checkpoints in LeRobot's layout (`OUTPUT/checkpoints/<step>/pretrained_model`, `.../last`),
and resume all come from it. This module only turns our options into the arguments of LeRobot's
train CLI, so every `lerobot-train` option can be passed through unchanged after them.

Why an argument list rather than a ready `TrainPipelineConfig`: LeRobot 0.6.1's
`TrainPipelineConfig.validate()` re-reads `sys.argv` (for `--config_path` on resume and for
`--policy.path`), so a config built in Python cannot resume. We therefore run `train()` exactly as
the `lerobot-train` entry point does, with `sys.argv` set to the generated arguments for the
duration of the call (and restored afterwards).
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

LAST_CHECKPOINT = Path("checkpoints") / "last" / "pretrained_model"
DEFAULT_VLM = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
TINY_VLM_CACHE = Path.home() / ".cache" / "lekiwi_drift" / "tiny_smolvlm"

# The tiny model (docs/design.md#training-and-loading): 64x64 images, 4 VLM layers, chunk 10.
TINY_POLICY_ARGS = (
    "--policy.chunk_size=10",
    "--policy.n_action_steps=10",
    "--policy.max_state_dim=16",
    "--policy.max_action_dim=16",
    "--policy.resize_imgs_with_padding=[64,64]",
    "--policy.num_vlm_layers=4",
    "--policy.tokenizer_max_length=16",
    "--policy.scheduler_warmup_steps=10",
)

# The sim-scale model of the evidence runs (docs/evidence.md): a random SmolVLM trained from scratch,
# 128x128 model input in 16 px patches (16 tokens per camera), 4 VLM layers of width 128, chunk 20 of
# which 10 are executed before the next replan. About 1.3 M parameters: a CPU trains it in an hour or two.
SMALL_POLICY_ARGS = (
    "--policy.chunk_size=20",
    "--policy.n_action_steps=10",
    "--policy.max_state_dim=16",
    "--policy.max_action_dim=16",
    "--policy.resize_imgs_with_padding=[128,128]",
    "--policy.num_vlm_layers=4",
    "--policy.tokenizer_max_length=16",
    "--policy.scheduler_warmup_steps=200",
    "--policy.train_expert_only=false",  # the VLM has random weights: frozen it would be a random
    "--policy.freeze_vision_encoder=false",  # feature extractor
)
SMALL_VLM_CACHE = Path.home() / ".cache" / "lekiwi_drift" / "small_smolvlm"
MODEL_SIZES = ("full", "small", "tiny")


@dataclass
class TrainOptions:
    objective: str  # "drift" | "flow"
    dataset: str  # a local LeRobotDataset directory or a Hub repo id
    output: Path
    steps: int = 30_000
    batch_size: int = 32
    vlm_dir: str | None = None
    tiny: bool = False
    small: bool = False  # the sim-scale model (SMALL_POLICY_ARGS); exclusive with tiny
    resume: bool = False
    num_workers: int = 4
    save_freq: int = 5_000
    log_freq: int = 100
    device: str | None = None
    seed: int = 1000
    # A policy's pretrained_model directory to start from (its config and weights; `objective` is set
    # anew), e.g. a flow-matching checkpoint: the paper fine-tunes Drift-VLA from SmolVLA, itself
    # pretrained with flow matching, and the one-step generator (noise - v(noise, t=1)) is then FM-1.
    init_from: Path | None = None
    extra: list[str] = field(default_factory=list)  # passed through to LeRobot's train CLI


def dataset_args(dataset: str) -> list[str]:
    """A local directory becomes LeRobotDataset(repo_id, root=path); anything else is a Hub repo id."""
    path = Path(dataset).expanduser()
    if path.is_dir():
        if not (path / "meta" / "info.json").is_file():
            raise FileNotFoundError(f"{path} is not a LeRobotDataset (no meta/info.json)")
        # The repo id of a local dataset is only a label; keep the owner/name shape LeRobot expects.
        return [f"--dataset.repo_id=local/{path.resolve().name}", f"--dataset.root={path.resolve()}"]
    return [f"--dataset.repo_id={dataset}"]


def vlm_args(opts: TrainOptions) -> list[str]:
    if opts.tiny or opts.small:
        from lekiwi_drift.policy.offline_vlm import write_small_smolvlm, write_tiny_smolvlm

        write, cache = (write_tiny_smolvlm, TINY_VLM_CACHE) if opts.tiny else (write_small_smolvlm, SMALL_VLM_CACHE)
        vlm_dir = Path(opts.vlm_dir) if opts.vlm_dir else cache
        if not (vlm_dir / "config.json").is_file():
            write(vlm_dir)
        return [f"--policy.vlm_model_name={vlm_dir.resolve()}", "--policy.load_vlm_weights=false"]
    if opts.vlm_dir:
        vlm_dir = Path(opts.vlm_dir).expanduser().resolve()
        if not (vlm_dir / "config.json").is_file():
            raise FileNotFoundError(f"--vlm-dir {vlm_dir} has no config.json (write one with offline_vlm.py)")
        # A local copy of the published VLM carries weights; a directory from offline_vlm.py does not.
        has_weights = any(vlm_dir.glob("*.safetensors"))
        return [f"--policy.vlm_model_name={vlm_dir}", f"--policy.load_vlm_weights={str(has_weights).lower()}"]
    # Default: the published VLM from the Hub, pretrained weights (needs network or a warm HF cache).
    return [f"--policy.vlm_model_name={DEFAULT_VLM}", "--policy.load_vlm_weights=true"]


def lerobot_train_args(opts: TrainOptions) -> list[str]:
    """The `lerobot-train` arguments for our options (pass-through options come last and win)."""
    if opts.objective not in ("drift", "flow"):
        raise ValueError(f"objective must be 'drift' or 'flow', got {opts.objective!r}")
    if opts.tiny and opts.small:
        raise ValueError("--tiny and --small are two model sizes; choose one")
    output = Path(opts.output).expanduser().resolve()
    common = [
        f"--steps={opts.steps}",
        f"--batch_size={opts.batch_size}",
        f"--num_workers={opts.num_workers}",
        f"--save_freq={opts.save_freq}",
        f"--log_freq={opts.log_freq}",
        "--wandb.enable=false",
    ]
    if opts.resume:
        train_config = output / LAST_CHECKPOINT / "train_config.json"
        if not train_config.is_file():
            raise FileNotFoundError(f"nothing to resume: {train_config} does not exist")
        args = [f"--config_path={train_config}", "--resume=true", *common]
        if note := schedule_note(train_config, opts):
            log.warning(note)
        if opts.vlm_dir or opts.tiny or opts.small:
            args += [a for a in vlm_args(opts) if a.startswith("--policy.vlm_model_name")]
        return args + list(opts.extra)
    if opts.init_from is not None:
        if opts.tiny or opts.small:
            raise ValueError("--init-from takes the model size from the checkpoint; drop --tiny/--small")
        init = Path(opts.init_from).expanduser().resolve()
        if not (init / "config.json").is_file() or not (init / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"--init-from {init} is not a policy's pretrained_model directory (config.json and "
                "model.safetensors), e.g. OUTPUT/checkpoints/last/pretrained_model of an earlier training"
            )
        model = [f"--policy.path={init}"]
        if opts.vlm_dir:  # the VLM's config/tokenizer from here; its weights come with the checkpoint
            model += [a for a in vlm_args(opts) if a.startswith("--policy.vlm_model_name")]
    else:
        model = ["--policy.type=smolvla_drift", *vlm_args(opts)]
        model += [*(TINY_POLICY_ARGS if opts.tiny else ()), *(SMALL_POLICY_ARGS if opts.small else ())]
    args = [
        *dataset_args(opts.dataset),
        *model,
        f"--policy.objective={opts.objective}",
        # Pushing is ours, after training (cli/train.py, hub.push_checkpoint): a failed upload must not
        # end LeRobot's loop with an exception after hours of training.
        "--policy.push_to_hub=false",
        *video_backend_args(),
        f"--output_dir={output}",
        f"--job_name=smolvla_drift_{opts.objective}",
        f"--seed={opts.seed}",
        *common,
    ]
    if opts.device:
        args.append(f"--policy.device={opts.device}")
    return args + list(opts.extra)


def schedule_note(train_config: Path, opts: TrainOptions) -> str | None:
    """A resumed run keeps its learning-rate schedule: training past the schedule's end runs at the floor
    learning rate (e.g. 2.5e-6), which barely moves the weights. Say so, and how to stretch it."""
    sched = json.loads(Path(train_config).read_text()).get("scheduler") or {}
    decay = sched.get("num_decay_steps")
    if decay is None or opts.steps <= decay or any(a.startswith("--scheduler.num_decay_steps") for a in opts.extra):
        return None
    return (
        f"resuming to step {opts.steps}, but the learning-rate schedule of {train_config} ends at step {decay}: "
        f"the steps after {decay} run at the floor lr {sched.get('decay_lr')}. To continue learning, stretch "
        f"the schedule: add `-- --scheduler.num_decay_steps={opts.steps}` (the cosine then resumes where "
        f"step {decay} falls on the longer curve)."
    )


def video_backend_args() -> list[str]:
    """Choose the video decoder deliberately (record/video_backend.py): torchcodec where FFmpeg's
    libraries load, else PyAV with one line saying how to get the fast one."""
    from lekiwi_drift.record.video_backend import video_backend

    return [f"--dataset.video_backend={video_backend()}"]


@contextmanager
def _argv(args: list[str]):
    saved = sys.argv
    sys.argv = ["lerobot-train", *args]
    try:
        yield
    finally:
        sys.argv = saved


def run_training(opts: TrainOptions) -> Path:
    """Train (or resume); returns the last checkpoint's `pretrained_model` directory."""
    from lerobot.scripts.lerobot_train import train

    import lekiwi_drift.policy  # noqa: F401  (registers smolvla_drift before LeRobot parses the config)

    args = lerobot_train_args(opts)
    log.info("lerobot train %s", " ".join(args))
    with _argv(args):
        train()
    last = Path(opts.output).expanduser().resolve() / LAST_CHECKPOINT
    if not (last / "config.json").is_file():
        raise RuntimeError(f"training finished but wrote no checkpoint at {last}")
    return last


def checkpoint_summary(checkpoint: Path) -> dict:
    """Step and policy settings of a checkpoint, for the CLI's closing line."""
    state = checkpoint.parent / "training_state" / "training_step.json"
    step = json.loads(state.read_text()).get("step") if state.is_file() else None
    cfg = json.loads((checkpoint / "config.json").read_text())
    return {"step": step, "objective": cfg.get("objective"), "path": str(checkpoint)}
