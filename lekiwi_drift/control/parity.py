"""Train/deploy parity: does the policy see at deploy time what it saw in training?

Each selected dataset frame goes through both input paths and the preprocessed tensors are compared:

* training path: the LeRobotDataset item, collated into a batch of one as LeRobot's train loop does
  (float CHW images in [0, 1], float state, the frame's task string), then the policy's preprocessor;
* deploy path: the same frame as the robot would deliver it: uint8 HWC RGB images through the wire's
  real JPEG codec (host quality) and header, decoded into an `Observation`, then `PolicyRuntime.batch`
  (the preset's robot camera -> policy key mapping, the preset's task) and the same preprocessor.

The robot cameras are the dataset's cameras, so a preset whose `cameras:` mapping is wrong shows up as
a deploy image that matches the training image of another key. No printing here: `compare` returns a
`ParityReport` (dataclasses) and the CLI (cli/parity.py) renders it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lekiwi_drift.robots.features import STATE_KEYS

IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"

# Thresholds. Images are compared in the policy's input units; SmolVLA leaves images unnormalised
# (VISUAL: IDENTITY), so these are [0, 1] pixel units. The wire's JPEG (q90) alone costs ~0.005-0.01 mean
# and up to ~0.2-0.3 on sharp edges; another camera's picture or reversed colour differs by ~0.1 mean or
# more. The mean decides (a max is one pixel; JPEG ringing alone can reach a third of the range).
IMAGE_MEAN_TOL = 0.03
# A deploy image "matches" another training image when it is this close to it and at most half as far
# from it as from its own key's training image.
MATCH_RATIO = 0.5
# The state crosses the wire as JSON floats, which round-trips float32 exactly: anything above float
# noise (normalised units) is a real difference.
STATE_TOL = 1e-3
# Normaliser stats, checkpoint vs this dataset, in checkpoint std units. A short or held-out recording
# legitimately shifts means by a std or two and narrows stds; 10x is a unit or scale error (rad vs deg,
# m/s vs mm/s). Between the two: a warning, no failure.
NORM_WARN = 3.0
NORM_FLAG = 10.0


class ParityError(RuntimeError):
    """The comparison cannot be made (dataset and checkpoint do not fit together at all)."""


@dataclass
class Finding:
    what: str  # the input that disagrees, e.g. "observation.images.wrist"
    cause: str  # the likely cause, in words
    fix: str  # what to change


@dataclass
class ImageParity:
    key: str  # policy image key
    robot_camera: str  # the robot camera the preset feeds into it
    max_abs: float  # over all frames and pixels, after preprocessing
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
class NormParity:
    key: str  # observation.state or action
    max_mean_shift: float  # max over dims of |mean_ds - mean_ckpt| / std_ckpt
    max_std_ratio: float  # max over dims of std_ds / std_ckpt
    worst_dim: str
    level: str = "ok"  # ok | warn | flag


@dataclass
class ActionError:
    names: list[str]  # STATE_KEYS order
    nmse: list[float]  # per dimension: mean squared error / scale^2 over compared steps
    scale: list[float]  # the per-dimension scale used (the dataset's action std)
    scale_from_checkpoint: list[str]  # dims where the dataset barely moves, scaled by the checkpoint's std
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
    norms: list[NormParity]
    action: ActionError | None
    findings: list[Finding] = field(default_factory=list)  # each makes the check fail
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
        raise ParityError(f"the dataset's observation.state names {names} are not the robot's {list(STATE_KEYS)} "
                          f"(missing: {missing}); this dataset was not recorded on a LeKiwi with this software")
    state = {n: float(v) for n, v in zip(names, values)}
    cams = [k.removeprefix(IMAGE_PREFIX) for k in item if k.startswith(IMAGE_PREFIX)]
    jpegs = {c: encode_jpeg(to_uint8_hwc(item[IMAGE_PREFIX + c])) for c in cams}
    return decode_observation(encode_observation(state, jpegs), expected_cameras=cams)


# -- comparison helpers ----------------------------------------------------------------------------
def _as_nchw(t):
    import torch

    t = torch.as_tensor(t).detach().float().cpu()
    return t if t.ndim == 4 else t.unsqueeze(0)


def mean_abs(a, b) -> float:
    """Mean |a - b| of two image tensors ((N)CHW); `a` is resized to `b`'s size when they differ."""
    import torch.nn.functional as F

    a, b = _as_nchw(a), _as_nchw(b)
    if a.shape[-2:] != b.shape[-2:]:
        a = F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=False)
    return float((a - b).abs().mean())


def image_candidates(deploy, train: dict) -> dict[str, float]:
    """Mean |diff| of one deploy image against every training image, as is and with the channels
    reversed (RGB/BGR): the explanation of a mismatch is the candidate it is closest to."""
    out = {}
    for key, img in train.items():
        out[key] = mean_abs(deploy, img)
        out[f"{key} (BGR)"] = mean_abs(deploy, _as_nchw(img).flip(1))
    return out


def diagnose_image(key: str, own: float, candidates: dict[str, float], train_shape, deploy_shape) -> str | None:
    """The likely cause of a deploy image `key` that differs from its training image, or None."""
    if tuple(train_shape) != tuple(deploy_shape):
        return (f"image size: the deploy image is {deploy_shape[1]}x{deploy_shape[0]}, training saw "
                f"{train_shape[1]}x{train_shape[0]}")
    if own <= IMAGE_MEAN_TOL:
        return None
    best = min(candidates, key=candidates.get)
    if candidates[best] <= IMAGE_MEAN_TOL and candidates[best] <= MATCH_RATIO * own and best != key:
        if best == f"{key} (BGR)":
            return "colour order: the deploy image is the training image with its channels reversed (RGB vs BGR)"
        other = best.removesuffix(" (BGR)")
        bgr = " with its channels reversed" if best.endswith("(BGR)") else ""
        return f"camera keys swapped: the deploy image for {key} is the training image of {other}{bgr}"
    return (f"unexplained: mean difference {own:.3f} matches no other camera or colour order (exposure, "
            "white balance, a different lens or crop, or the frames are not the same?)")


def _normaliser(pre):
    for step in getattr(pre, "steps", []):
        if type(step).__name__ == "NormalizerProcessorStep":
            return step
    return None


def norm_parity(ckpt_stats: dict, ds_stats: dict, key: str, names: Sequence[str]) -> NormParity | None:
    """Checkpoint vs dataset normaliser stats for one vector feature, in checkpoint std units."""
    if key not in ckpt_stats or key not in ds_stats:
        return None
    m_ck = np.asarray(ckpt_stats[key]["mean"], np.float64).ravel()
    s_ck = np.maximum(np.asarray(ckpt_stats[key]["std"], np.float64).ravel(), 1e-6)
    m_ds = np.asarray(ds_stats[key]["mean"], np.float64).ravel()
    s_ds = np.asarray(ds_stats[key]["std"], np.float64).ravel()
    if m_ck.shape != m_ds.shape:
        return NormParity(key, float("inf"), float("inf"), f"{len(m_ck)} vs {len(m_ds)} dims", "flag")
    shift, ratio = np.abs(m_ds - m_ck) / s_ck, s_ds / s_ck
    worst = int(np.argmax(np.maximum(shift, ratio)))
    bad = float(max(shift.max(), ratio.max()))
    level = "flag" if bad > NORM_FLAG else "warn" if bad > NORM_WARN else "ok"
    name = names[worst] if worst < len(names) else str(worst)
    return NormParity(key, float(shift.max()), float(ratio.max()), name, level)


def _by_name(values: np.ndarray, names: list[str] | None) -> np.ndarray:
    """Columns of a dataset vector reordered into STATE_KEYS order (by name)."""
    if not names:
        return values
    return values[..., [names.index(k) for k in STATE_KEYS]]


# -- the check -------------------------------------------------------------------------------------
def compare(runtime, ds, frames: Sequence[int], seed: int = 0, actions: bool = True,
            on_frame: Callable[[int, int], None] | None = None) -> ParityReport:
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
    img_mean = dict.fromkeys(policy_keys, 0.0)
    cand_sum: dict[str, dict[str, float]] = {k: {} for k in policy_keys}
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
            raise ParityError(f"the checkpoint's image key(s) {missing} are not cameras of this dataset "
                              f"({ds.meta.camera_keys}); it was recorded with other camera names")
        train_imgs = {k: _as_nchw(train[k]) for k in policy_keys}
        for key in policy_keys:
            d = _as_nchw(deploy[key])
            t = train_imgs[key]
            shapes[key] = (tuple(t.shape[-2:]), tuple(d.shape[-2:]))
            if d.shape == t.shape:
                img_max[key] = max(img_max[key], float((d - t).abs().max()))
            own = mean_abs(d, t)
            img_mean[key] += own
            for cand, v in image_candidates(d, train_imgs).items():
                cand_sum[key][cand] = cand_sum[key].get(cand, 0.0) + v
        ds_state = _as_state(train[STATE_KEY]) - _as_state(deploy[STATE_KEY])
        st_max, st_sum = max(st_max, float(np.abs(ds_state).max())), st_sum + float(np.abs(ds_state).mean())
        for k in train:
            if k.startswith("observation.language") and k in deploy:
                a, b = train[k].cpu(), deploy[k].cpu()
                tokens_equal &= a.shape == b.shape and bool(torch.equal(a, b))
        if actions:
            _accumulate_action_error(runtime, obs, idx, ep_col, all_actions, chunk, seed, sq_err, counts)
        if on_frame is not None:
            on_frame(n + 1, len(frames))

    nf = len(frames)
    report = ParityReport(frames=list(frames), images=[], state=StateParity(st_max, st_sum / nf, names),
                          tokens_equal=tokens_equal, train_tasks=sorted(set(tasks)), deploy_task=runtime.preset.task,
                          norms=[], action=None)
    for key in policy_keys:
        t_shape, d_shape = shapes[key]
        cands = {c: v / nf for c, v in cand_sum[key].items()}
        best = min(cands, key=cands.get)
        own = img_mean[key] / nf
        img = ImageParity(key, key_to_cam[key], img_max[key] if t_shape == d_shape else float("nan"), own,
                          t_shape, d_shape, best, cands[best])
        cause = diagnose_image(key, own, cands, t_shape, d_shape)
        if cause is not None:
            img.ok = False
            report.findings.append(Finding(key, cause, _image_fix(cause, key, key_to_cam[key], best)))
        report.images.append(img)
    _check_state(report, names, st_max)
    _check_tokens(report)
    _check_norms(report, runtime, ds, names, action_names)
    _check_checkpoint_shapes(report, runtime)
    if actions:
        report.action = _action_error(runtime, ds, sq_err, counts, nf, chunk, seed)
    return report


def _as_state(t) -> np.ndarray:
    return t.detach().float().cpu().numpy().reshape(-1)


def _image_fix(cause: str, key: str, cam: str, best: str) -> str:
    short = key.removeprefix(IMAGE_PREFIX)
    if cause.startswith("camera keys swapped"):
        other = best.removesuffix(" (BGR)").removeprefix(IMAGE_PREFIX)
        return (f"in the preset's `cameras:`, {short} is fed by robot camera {cam!r}; the checkpoint learned "
                f"{short} from the camera it now gets as {other}: map the right robot camera to {short}")
    if cause.startswith("colour order"):
        return ("the deploy image reaches the policy in the other channel order: convert BGR->RGB where the "
                "camera frames are read (the wire keeps the array as it is given)")
    if cause.startswith("image size"):
        return "set the robot camera's width/height to the size the dataset was recorded at"
    return "compare a saved deploy frame with a training frame of this camera by eye"


def _check_state(report: ParityReport, names: list[str] | None, st_max: float) -> None:
    report.state.ok = st_max <= STATE_TOL
    if report.state.ok:
        return
    if names and names != list(STATE_KEYS):
        cause = (f"state order: the dataset stores observation.state as {names}, the robot sends "
                 f"{list(STATE_KEYS)} (features.STATE_KEYS)")
        fix = "re-record (or rewrite) the dataset in STATE_KEYS order and retrain, or reorder on the robot side"
    else:
        cause = f"state values differ by up to {st_max:.3g} (normalised units) with the same names and order"
        fix = "check units and calibration of the state the robot reports against the recording"
    report.findings.append(Finding(STATE_KEY, cause, fix))


def _check_tokens(report: ParityReport) -> None:
    if report.tokens_equal:
        return
    report.findings.append(Finding(
        "observation.language.tokens",
        f"task string: training saw {report.train_tasks}, the preset sends {report.deploy_task!r}",
        "set `task:` in the preset to the task the policy was trained with"))


def _check_norms(report: ParityReport, runtime, ds, names, action_names) -> None:
    norm = _normaliser(runtime.pre)
    stats = getattr(norm, "stats", None) or {}
    if not stats:
        report.findings.append(Finding("normaliser", "the checkpoint's preprocessor carries no normalisation stats",
                                       "use a checkpoint saved by LeRobot's trainer (policy_preprocessor_*)"))
        return
    for key, nm in ((STATE_KEY, names), (ACTION_KEY, action_names)):
        res = norm_parity(stats, ds.meta.stats or {}, key, nm or STATE_KEYS)
        if res is None:
            continue
        report.norms.append(res)
        text = (f"normalisation: {key} stats of the checkpoint and this dataset differ (mean shift up to "
                f"{res.max_mean_shift:.1f} checkpoint std, std ratio up to {res.max_std_ratio:.1f}, worst "
                f"{res.worst_dim})")
        if res.level == "flag":
            report.findings.append(Finding(key, text + "; units or scale differ",
                                           "record and train in the same units (degrees, m/s, deg/s), or "
                                           "retrain on data like the robot's"))
        elif res.level == "warn":
            report.warnings.append(text + "; expected for a short or held-out dataset, suspicious if it is "
                                          "the training set")


def _check_checkpoint_shapes(report: ParityReport, runtime) -> None:
    feats = getattr(runtime.policy.config, "input_features", {}) or {}
    for img in report.images:
        feat = feats.get(img.key)
        shape = tuple(getattr(feat, "shape", ()) or ())
        if len(shape) == 3 and tuple(shape[1:]) != tuple(img.train_shape):
            report.warnings.append(
                f"image size: {img.key} is {img.train_shape[1]}x{img.train_shape[0]} in this dataset, the "
                f"checkpoint was trained at {shape[2]}x{shape[1]}; set the robot camera to the training size")


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
    norm = _normaliser(runtime.pre)
    ck = (getattr(norm, "stats", None) or {}).get(ACTION_KEY, {})
    ds_std = _by_name(np.asarray(ds.meta.stats[ACTION_KEY]["std"], np.float64).ravel(),
                      ds.features.get(ACTION_KEY, {}).get("names"))
    ck_std = np.asarray(ck["std"], np.float64).ravel() if "std" in ck else np.ones_like(ds_std)
    # A dimension this dataset barely moves (a gripper that stays open) would divide by ~0: scale those
    # by the checkpoint's std, and say so.
    narrow = ds_std < 0.1 * ck_std
    scale = np.maximum(np.where(narrow, ck_std, ds_std), 1e-6)
    nmse = sq_err / np.maximum(counts, 1) / scale**2
    return ActionError(list(STATE_KEYS), [float(v) for v in nmse], [float(v) for v in scale],
                       [k for k, n in zip(STATE_KEYS, narrow) if n], nf, int(counts[0]), chunk, seed)
