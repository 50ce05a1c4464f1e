"""Thresholds and cause detection for the train/deploy parity check (control/parity.py).

Pure functions on tensors, names and stats, so each cause can be tested on synthetic data: which
training image a deploy image really is (another camera key, reversed channels, another size), whether
the state arrives in another order, whether the task string differs, whether the checkpoint's
normaliser stats fit the dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lekiwi_drift.policy.checkpoint import ACTION_KEY, IMAGE_PREFIX, STATE_KEY
from lekiwi_drift.robots.features import STATE_KEYS

# Images are compared in the policy's input units; SmolVLA leaves images unnormalised (VISUAL:
# IDENTITY), so these are [0, 1] pixel units. The wire's JPEG (q90) alone costs ~0.005-0.01 mean and up
# to ~0.2 on sharp edges; another camera's picture or reversed colour differs by ~0.1-0.3 mean. The mean
# decides: a max is one pixel, and JPEG ringing alone gets a fifth of the range.
IMAGE_MEAN_TOL = 0.03
# A deploy image "is" another training image when it is within tolerance of it and at most half as far
# from it as from its own key's training image.
MATCH_RATIO = 0.5
# The state crosses the wire as JSON floats, which carry float32 exactly: anything above float noise
# (normalised units) is a real difference.
STATE_TOL = 1e-3
# Normaliser stats, checkpoint vs dataset, in checkpoint std units. A short or held-out recording shifts
# means by a std or two and narrows or widens stds by ~3x; 10x is a unit or scale error (rad vs deg,
# m/s vs mm/s). In between: a warning, not a failure.
NORM_WARN = 3.0
NORM_FLAG = 10.0


@dataclass
class Finding:
    what: str  # the input that disagrees, e.g. "observation.images.wrist"
    cause: str  # the likely cause, in words
    fix: str  # what to change


@dataclass
class NormParity:
    key: str  # observation.state or action
    max_mean_shift: float  # max over dims of |mean_ds - mean_ckpt| / std_ckpt
    max_std_ratio: float  # max over dims of std_ds / std_ckpt
    worst_dim: str
    level: str = "ok"  # ok | warn | flag


# -- images ----------------------------------------------------------------------------------------
def as_nchw(t):
    import torch

    t = torch.as_tensor(t).detach().float().cpu()
    return t if t.ndim == 4 else t.unsqueeze(0)


def mean_abs(a, b) -> float:
    """Mean |a - b| of two image tensors ((N)CHW); `a` is resized to `b`'s size when they differ."""
    import torch.nn.functional as F

    a, b = as_nchw(a), as_nchw(b)
    if a.shape[-2:] != b.shape[-2:]:
        a = F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=False)
    return float((a - b).abs().mean())


def image_candidates(deploy, train: dict) -> dict[str, float]:
    """Mean |diff| of one deploy image against every training image, as is and with the channels
    reversed (RGB/BGR): a mismatch is explained by the candidate it is closest to."""
    out = {}
    for key, img in train.items():
        out[key] = mean_abs(deploy, img)
        out[f"{key} (BGR)"] = mean_abs(deploy, as_nchw(img).flip(1))
    return out


def diagnose_image(key: str, own: float, candidates: dict[str, float], train_shape, deploy_shape) -> str | None:
    """The likely cause of deploy image `key` differing from its training image, or None if it agrees."""
    if tuple(train_shape) != tuple(deploy_shape):
        return (
            f"image size: the deploy image is {deploy_shape[1]}x{deploy_shape[0]}, training saw "
            f"{train_shape[1]}x{train_shape[0]}"
        )
    if own <= IMAGE_MEAN_TOL:
        return None
    best = min(candidates, key=candidates.get)
    if best != key and candidates[best] <= IMAGE_MEAN_TOL and candidates[best] <= MATCH_RATIO * own:
        if best == f"{key} (BGR)":
            return "colour order: the deploy image is the training image with its channels reversed (RGB vs BGR)"
        bgr = " with its channels reversed" if best.endswith("(BGR)") else ""
        other = best.removesuffix(" (BGR)")
        return f"camera keys swapped: the deploy image for {key} is the training image of {other}{bgr}"
    return (
        f"unexplained: mean difference {own:.3f} matches no other camera or colour order (exposure, "
        "white balance, another lens or crop, or not the same frames?)"
    )


def image_fix(cause: str, key: str, cam: str, best: str) -> str:
    """What to change for a cause from `diagnose_image`; `cam` is the robot camera feeding `key`."""
    if cause.startswith("camera keys swapped"):
        other = best.removesuffix(" (BGR)").removeprefix(IMAGE_PREFIX)
        return (
            f"robot camera {cam!r} delivers what the checkpoint learned as {other}, but the preset feeds it "
            f"to {key.removeprefix(IMAGE_PREFIX)}: set `{cam}: {other}` under `cameras:` in the preset"
        )
    if cause.startswith("colour order"):
        return (
            "the deploy image reaches the policy in the other channel order: convert BGR->RGB where the "
            "camera frames are read (the wire keeps the array as it is given)"
        )
    if cause.startswith("image size"):
        return "set the robot camera's width/height to the size the dataset was recorded at"
    return "compare a saved deploy frame with a training frame of this camera by eye"


def size_warnings(input_features: dict, shapes: dict[str, tuple[int, int]]) -> list[str]:
    """The dataset's image sizes vs the sizes the checkpoint was trained at (config input_features)."""
    out = []
    for key, (h, w) in shapes.items():
        shape = tuple(getattr(input_features.get(key), "shape", ()) or ())
        if len(shape) == 3 and tuple(shape[1:]) != (h, w):
            out.append(
                f"image size: {key} is {w}x{h} in this dataset, the checkpoint was trained at "
                f"{shape[2]}x{shape[1]}; set the robot camera to the training size"
            )
    return out


# -- state and language ----------------------------------------------------------------------------
def state_finding(names: list[str] | None, st_max: float) -> Finding | None:
    """A failure when the deploy state differs from the training state (normalised units)."""
    if st_max <= STATE_TOL:
        return None
    if names and names != list(STATE_KEYS):
        return Finding(
            STATE_KEY,
            f"state order: the dataset stores observation.state as {names}, the robot "
            f"sends {list(STATE_KEYS)} (features.STATE_KEYS)",
            "record the dataset in STATE_KEYS order and retrain (the policy learned the other order)",
        )
    return Finding(
        STATE_KEY,
        f"state values differ by up to {st_max:.3g} (normalised units) with the same names and order",
        "check the units and calibration of the robot's state",
    )


def token_finding(train_tasks: list[str], deploy_task: str) -> Finding:
    return Finding(
        "observation.language.tokens",
        f"task string: training saw {train_tasks}, the preset sends {deploy_task!r}",
        "set `task:` in the preset to the task the policy was trained with",
    )


# -- normaliser stats ------------------------------------------------------------------------------
def checkpoint_stats(pre) -> dict:
    """The normaliser stats stored with the checkpoint's preprocessor ({} if it has none)."""
    for step in getattr(pre, "steps", []):
        if type(step).__name__ == "NormalizerProcessorStep":
            return getattr(step, "stats", None) or {}
    return {}


def norm_parity(ckpt_stats: dict, ds_stats: dict, key: str, names: Sequence[str]) -> NormParity | None:
    """Checkpoint vs dataset stats of one vector feature, in checkpoint std units (None: not in both)."""
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
    return NormParity(
        key, float(shift.max()), float(ratio.max()), str(names[worst]) if worst < len(names) else str(worst), level
    )


def norm_checks(ckpt: dict, ds_stats: dict, names: dict[str, Sequence[str] | None]):
    """(results, findings, warnings) for state and action normaliser stats."""
    if not ckpt:
        return (
            [],
            [
                Finding(
                    "normaliser",
                    "the checkpoint's preprocessor carries no normalisation stats",
                    "use a checkpoint saved by LeRobot's trainer (policy_preprocessor_*)",
                )
            ],
            [],
        )
    results, findings, warnings = [], [], []
    for key in (STATE_KEY, ACTION_KEY):
        res = norm_parity(ckpt, ds_stats or {}, key, names.get(key) or STATE_KEYS)
        if res is None:
            continue
        results.append(res)
        text = (
            f"normalisation: {key} stats of the checkpoint and this dataset differ (mean shift up to "
            f"{res.max_mean_shift:.1f} checkpoint std, std ratio up to {res.max_std_ratio:.1f}, worst "
            f"{res.worst_dim})"
        )
        if res.level == "flag":
            findings.append(
                Finding(
                    key,
                    text + "; units or scale differ",
                    "record and train in the robot's units (degrees, m/s, deg/s), or retrain on data like the robot's",
                )
            )
        elif res.level == "warn":
            warnings.append(text + "; expected for a short or held-out dataset, suspicious if it is the training set")
    return results, findings, warnings
