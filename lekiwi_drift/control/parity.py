"""Train/deploy parity: does the policy see at deploy time what it saw in training?

Each selected dataset frame goes through both input paths and the preprocessed tensors are compared:

* training path: the LeRobotDataset item, collated into a batch of one as LeRobot's train loop does
  (float CHW images in [0, 1], float state, the frame's task string), then the policy's preprocessor;
* deploy path: the same frame as the robot would deliver it: uint8 HWC RGB images through the wire's
  real JPEG codec (host quality) and header, decoded into an `Observation`, then `PolicyRuntime.batch`
  (the preset's robot camera -> policy key mapping, the preset's task) and the same preprocessor.

The robot cameras are the dataset's cameras, so a preset whose `cameras:` mapping is wrong shows up as
a deploy image that matches the training image of another key. No printing here: `compare` returns a
`ParityReport` (dataclasses) and the CLI (cli/parity.py) renders it. Thresholds and cause detection:
parity_checks.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lekiwi_drift.control.parity_checks import (
    Finding,
    NormParity,
    as_nchw,
    checkpoint_stats,
    diagnose_image,
    image_candidates,
    image_fix,
    norm_checks,
    size_warnings,
    state_finding,
    token_finding,
)
from lekiwi_drift.policy.checkpoint import ACTION_KEY, IMAGE_PREFIX, STATE_KEY
from lekiwi_drift.robots.features import STATE_KEYS


class ParityError(RuntimeError):
    """The comparison cannot be made (dataset and checkpoint do not fit together at all)."""


@dataclass
class ImageParity:
    key: str  # policy image key
    robot_camera: str  # the robot camera the preset feeds into it
    max_abs: float  # over all frames and pixels, after preprocessing (nan when the sizes differ)
    mean_abs: float  # mean over frames of the per-frame mean
    train_shape: tuple[int, int]  # (H, W)
    deploy_shape: tuple[int, int]
    best_match: str  # the training image the deploy image is closest to, e.g. "observation.images.front (BGR)"
    best_mean_abs: float
    ok: bool = True


@dataclass
class StateParity:
    max_abs: float  # normalised units
    mean_abs: float
    dataset_names: list[str] | None  # the dataset's `observation.state` names (None: not recorded)
    ok: bool = True


@dataclass
class ActionError:
    names: list[str]  # STATE_KEYS order
    nmse: list[float]  # per dimension: mean squared error / scale^2 over the compared steps
    scale: list[float]  # the per-dimension scale used (the dataset's action std)
    scale_from_checkpoint: list[str]  # dims this dataset barely moves: scaled by the checkpoint's std
    frames: int
    steps: int  # chunk steps compared per dimension (steps past an episode's end are masked out)
    chunk: int
    seed: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.nmse)) if self.nmse else float("nan")


@dataclass
class ParityReport:
    frames: list[int]
    images: list[ImageParity]
    state: StateParity
    tokens_equal: bool
    train_tasks: list[str]
    deploy_task: str
    norms: list[NormParity] = field(default_factory=list)
    action: ActionError | None = None
    findings: list[Finding] = field(default_factory=list)  # each one fails the check
    warnings: list[str] = field(default_factory=list)  # worth a look, not a failure

    @property
    def ok(self) -> bool:
        return not self.findings


# -- dataset ---------------------------------------------------------------------------------------
def open_dataset(root: str | Path):
    """The LeRobotDataset at `root` (local, offline), with the decoder this machine supports."""
    from lerobot.datasets import LeRobotDataset

    from lekiwi_drift.record.video_backend import video_backend

    root = Path(root).expanduser().resolve()
    return LeRobotDataset(f"local/{root.name}", root=root, video_backend=video_backend())


def dataset_cameras(ds) -> list[str]:
    return [k.removeprefix(IMAGE_PREFIX) for k in ds.meta.camera_keys]


def _column(ds, name: str) -> np.ndarray:
    return np.asarray(ds.hf_dataset.with_format("numpy")[name])


def select_frames(ds, episodes: Sequence[int] | None = None, every: int = 25) -> list[int]:
    """Global frame indices: every `every`-th frame of each selected episode (default: all episodes)."""
    ep = _column(ds, "episode_index")
    wanted = sorted(set(int(e) for e in ep)) if episodes is None else list(episodes)
    missing = [e for e in wanted if not np.any(ep == e)]
    if missing:
        raise ParityError(f"episode(s) {missing} are not in the dataset (it has {ds.meta.total_episodes})")
    return [int(i) for e in wanted for i in np.flatnonzero(ep == e)[::every]]


# -- the two input paths ---------------------------------------------------------------------------
def training_batch(item: dict) -> dict:
    """A dataset item as LeRobot's DataLoader hands it to the preprocessor: a collated batch of one."""
    from torch.utils.data import default_collate

    keep = {k: v for k, v in item.items() if k.startswith(IMAGE_PREFIX) or k in (STATE_KEY, "task")}
    return default_collate([keep])


def to_uint8_hwc(image) -> np.ndarray:
    """A dataset image (float CHW in [0, 1]) as a camera delivers it (uint8 HWC RGB)."""
    arr = image.detach().cpu().float().numpy() if hasattr(image, "detach") else np.asarray(image, np.float32)
    return np.clip(np.rint(arr.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def state_names(ds) -> list[str] | None:
    names = ds.features.get(STATE_KEY, {}).get("names")
    if isinstance(names, dict):  # some LeRobot versions nest them: {"motors": [...]}
        names = next(iter(names.values()), None)
    return list(names) if names else None


def deploy_observation(item: dict, names: list[str] | None):
    """The frame through the wire, exactly as the host sends and the client decodes it. The header
    carries the state by name, so a dataset whose state order differs from STATE_KEYS arrives reordered."""
    from lekiwi_drift.link.wire import decode_observation, encode_jpeg, encode_observation

    names = names or list(STATE_KEYS)
    values = item[STATE_KEY].detach().cpu().numpy().astype(np.float32)
    missing = [k for k in STATE_KEYS if k not in names]
    if missing or len(names) != len(values):
        raise ParityError(
            f"the dataset's observation.state names {names} are not the robot's {list(STATE_KEYS)} "
            f"(missing: {missing}); this dataset was not recorded on a LeKiwi with this software"
        )
    state = {n: float(v) for n, v in zip(names, values)}
    cams = [k.removeprefix(IMAGE_PREFIX) for k in item if k.startswith(IMAGE_PREFIX)]
    jpegs = {c: encode_jpeg(to_uint8_hwc(item[IMAGE_PREFIX + c])) for c in cams}
    return decode_observation(encode_observation(state, jpegs), expected_cameras=cams)


def _by_name(values: np.ndarray, names: list[str] | None) -> np.ndarray:
    """Columns of a dataset vector reordered into STATE_KEYS order (by name)."""
    if not names:
        return values
    return values[..., [names.index(k) for k in STATE_KEYS]]


# -- the check -------------------------------------------------------------------------------------
def compare(
    runtime,
    ds,
    frames: Sequence[int],
    seed: int = 0,
    actions: bool = True,
    on_frame: Callable[[int, int], None] | None = None,
) -> ParityReport:
    """Both input paths for each frame in `frames`, plus (with `actions`) the open-loop action error of
    the deploy-path input against the dataset's next `chunk` recorded actions."""
    import torch

    if not frames:
        raise ParityError("no frames selected (check --episodes and --every)")
    names = state_names(ds)
    action_names = ds.features.get(ACTION_KEY, {}).get("names")
    policy_keys = list(runtime.camera_map.values())
    key_to_cam = {k: c for c, k in runtime.camera_map.items()}
    ep_col, all_actions = _column(ds, "episode_index"), _by_name(_column(ds, ACTION_KEY), action_names)
    chunk = runtime.chunk_size

    img_max = dict.fromkeys(policy_keys, 0.0)
    cand_sum: dict[str, dict[str, float]] = {k: {} for k in policy_keys}  # deploy key -> candidate -> sum
    shapes: dict[str, tuple] = {}
    st_max = st_sum = 0.0
    tokens_equal, tasks = True, []
    sq_err, counts = np.zeros(len(STATE_KEYS)), np.zeros(len(STATE_KEYS))

    for n, idx in enumerate(frames):
        item = ds[idx]
        tasks.append(str(item.get("task", "")))
        obs = deploy_observation(item, names)
        with torch.inference_mode():
            train = runtime.pre(training_batch(item))
            deploy = runtime.pre(runtime.batch(obs))
        missing = [k for k in policy_keys if k not in train]
        if missing:
            raise ParityError(
                f"the checkpoint's image key(s) {missing} are not cameras of this dataset "
                f"({ds.meta.camera_keys}); it was recorded with other camera names"
            )
        train_imgs = {k: as_nchw(train[k]) for k in policy_keys}
        for key in policy_keys:
            d, t = as_nchw(deploy[key]), train_imgs[key]
            shapes[key] = (tuple(t.shape[-2:]), tuple(d.shape[-2:]))
            if d.shape == t.shape:
                img_max[key] = max(img_max[key], float((d - t).abs().max()))
            for cand, v in image_candidates(d, train_imgs).items():  # includes the key itself
                cand_sum[key][cand] = cand_sum[key].get(cand, 0.0) + v
        st = np.abs(_flat(train[STATE_KEY]) - _flat(deploy[STATE_KEY]))
        st_max, st_sum = max(st_max, float(st.max())), st_sum + float(st.mean())
        for k in train:
            if k.startswith("observation.language") and k in deploy:
                a, b = train[k].cpu(), deploy[k].cpu()
                tokens_equal &= a.shape == b.shape and bool(torch.equal(a, b))
        if actions:
            _accumulate_action_error(runtime, obs, idx, ep_col, all_actions, chunk, seed, sq_err, counts)
        if on_frame is not None:
            on_frame(n + 1, len(frames))

    nf = len(frames)
    report = ParityReport(
        list(frames), [], StateParity(st_max, st_sum / nf, names), tokens_equal, sorted(set(tasks)), runtime.preset.task
    )
    for key in policy_keys:
        t_shape, d_shape = shapes[key]
        cands = {c: v / nf for c, v in cand_sum[key].items()}
        best = min(cands, key=cands.get)
        img = ImageParity(
            key,
            key_to_cam[key],
            img_max[key] if t_shape == d_shape else float("nan"),
            cands[key],
            t_shape,
            d_shape,
            best,
            cands[best],
        )
        cause = diagnose_image(key, cands[key], cands, t_shape, d_shape)
        if cause is not None:
            img.ok = False
            report.findings.append(Finding(key, cause, image_fix(cause, key, key_to_cam[key], best)))
        report.images.append(img)
    if (f := state_finding(names, st_max)) is not None:
        report.state.ok = False
        report.findings.append(f)
    if not tokens_equal:
        report.findings.append(token_finding(report.train_tasks, report.deploy_task))
    report.norms, found, warned = norm_checks(
        checkpoint_stats(runtime.pre), ds.meta.stats, {STATE_KEY: names, ACTION_KEY: action_names}
    )
    report.findings += found
    report.warnings += warned + size_warnings(
        getattr(runtime.policy.config, "input_features", {}) or {}, {k: s[0] for k, s in shapes.items()}
    )
    if actions:
        report.action = _action_error(runtime, ds, sq_err, counts, nf, chunk, seed)
    return report


def _flat(t) -> np.ndarray:
    return t.detach().float().cpu().numpy().reshape(-1)


def _accumulate_action_error(runtime, obs, idx, ep_col, all_actions, chunk, seed, sq_err, counts) -> None:
    import torch

    # A fixed seed per call: the sampler's noise (and KeyStone's candidates) are the same on every run.
    torch.manual_seed(seed)
    pred = runtime.infer(obs).actions  # (chunk, 9), STATE_KEYS order, unnormalised
    end = min(idx + chunk, len(ep_col))
    same_ep = ep_col[idx:end] == ep_col[idx]  # steps past the episode's end are masked out
    target = all_actions[idx:end][same_ep]
    k = len(target)
    sq_err += ((pred[:k] - target) ** 2).sum(axis=0)
    counts += k


def _action_error(runtime, ds, sq_err, counts, nf, chunk, seed) -> ActionError:
    ck = checkpoint_stats(runtime.pre).get(ACTION_KEY, {})
    ds_std = _by_name(
        np.asarray(ds.meta.stats[ACTION_KEY]["std"], np.float64).ravel(), ds.features.get(ACTION_KEY, {}).get("names")
    )
    ck_std = np.asarray(ck["std"], np.float64).ravel() if "std" in ck else np.ones_like(ds_std)
    # A dimension this dataset barely moves (a gripper that stays open) would divide by ~0: scale those
    # by the checkpoint's std, and say so.
    narrow = ds_std < 0.1 * ck_std
    scale = np.maximum(np.where(narrow, ck_std, ds_std), 1e-6)
    nmse = sq_err / np.maximum(counts, 1) / scale**2
    return ActionError(
        list(STATE_KEYS),
        [float(v) for v in nmse],
        [float(v) for v in scale],
        [k for k, n in zip(STATE_KEYS, narrow) if n],
        nf,
        int(counts[0]),
        chunk,
        seed,
    )
