"""Load a trained `smolvla_drift` checkpoint (LeRobot layout) for the control loop, offline if needed.

A checkpoint directory is what LeRobot's trainer writes: `config.json`, `model.safetensors`,
`policy_preprocessor.json` / `policy_postprocessor.json` (+ their state files). `load_policy` accepts
that directory, its parent `checkpoints/<step>/`, or a whole training output dir (uses
`checkpoints/last`).

Offline override: the checkpoint stores the VLM name (`vlm_model_name`, also the tokenizer name in the
preprocessor), and SmolVLA re-reads that VLM's config/processor/tokenizer when it builds the model.
`vlm_dir=` (or the environment variable `LEKIWI_DRIFT_VLM_DIR`) rewrites both to a local SmolVLM
directory before anything is built (see offline_vlm.py for writing one). The checkpoint holds every
weight, so VLM weights are never downloaded again at load time (`load_vlm_weights` is switched off).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE

VLM_DIR_ENV = "LEKIWI_DRIFT_VLM_DIR"
# The policy's feature names are LeRobot's: the rest of the package takes them from here.
IMAGE_PREFIX = f"{OBS_IMAGES}."  # "observation.images." + camera name
STATE_KEY = OBS_STATE
ACTION_KEY = ACTION


class PolicyMismatchError(ValueError):
    """The checkpoint and the robot disagree on cameras or on state/action shapes."""


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """The `pretrained_model` directory for a checkpoint path, a step dir or a training output dir, or a
    `hf://REPO[@REV]` reference (fetched into the Hub cache; lekiwi_drift/hub.py)."""
    from lekiwi_drift.hub import download_checkpoint, is_hub_ref

    if is_hub_ref(path):
        path = download_checkpoint(str(path))
    p = Path(path).expanduser()
    for cand in (p, p / "pretrained_model", p / "checkpoints" / "last" / "pretrained_model"):
        if (cand / "config.json").is_file():
            return cand
    raise FileNotFoundError(
        f"no policy checkpoint at {p} (looked for config.json in it, in pretrained_model/ and in "
        f"checkpoints/last/pretrained_model/)"
    )


def robot_features(
    cameras: list[str] | tuple[str, ...], state_dim: int = 9, action_dim: int = 9
) -> dict[str, tuple[int, ...] | None]:
    """The `robot_features` dict for `load_policy` from camera names and vector sizes."""
    feats: dict[str, tuple[int, ...] | None] = {f"{IMAGE_PREFIX}{c}": None for c in cameras}
    feats[STATE_KEY] = (state_dim,)
    feats[ACTION_KEY] = (action_dim,)
    return feats


def _shape(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    shape = getattr(value, "shape", None)  # PolicyFeature
    if shape is None and isinstance(value, Mapping):
        shape = value.get("shape")  # LeRobot dataset feature dict
    if shape is None:
        shape = value
    return tuple(int(s) for s in shape)


def _cam(key: str) -> str:
    return key.removeprefix(IMAGE_PREFIX)


def check_features(config, robot: Mapping[str, Any]) -> None:
    """Raise `PolicyMismatchError` naming every camera/state/action mismatch.

    `robot` maps feature keys to shapes (tuples, PolicyFeature or dataset feature dicts; an image's
    shape may be None: SmolVLA resizes every camera, so only the camera set has to match).
    """
    problems: list[str] = []
    ckpt_cams = [_cam(k) for k in config.image_features if "empty_camera" not in k]
    robot_cams = [_cam(k) for k in robot if k.startswith(IMAGE_PREFIX)]
    if set(ckpt_cams) != set(robot_cams):
        missing = [c for c in ckpt_cams if c not in robot_cams]
        problems.append(
            f"checkpoint expects cameras [{', '.join(ckpt_cams)}] but the robot has [{', '.join(robot_cams)}]"
            + (f" (missing: {', '.join(missing)})" if missing else "")
        )
    for key, label, ckpt_feat in (
        (STATE_KEY, "state", config.robot_state_feature),
        (ACTION_KEY, "action", config.action_feature),
    ):
        ckpt_shape = _shape(ckpt_feat)
        if key not in robot:
            problems.append(f"checkpoint expects {label} '{key}' {ckpt_shape} but the robot provides none")
            continue
        robot_shape = _shape(robot[key])
        if ckpt_feat is None:
            problems.append(f"checkpoint has no {label} feature but the robot provides '{key}' {robot_shape}")
        elif robot_shape != ckpt_shape:
            problems.append(f"checkpoint expects {label} shape {ckpt_shape} but the robot has {robot_shape}")
    if problems:
        raise PolicyMismatchError("policy/robot mismatch: " + "; ".join(problems))


def load_config(path: str | Path, vlm_dir: str | Path | None = None, device: str = "cpu", **overrides):
    """The checkpoint's `SmolVLADriftConfig`, with the offline VLM override and field overrides
    (e.g. `sampler="flow", flow_steps=10, keystone_samples=8`) applied and validated."""
    from lerobot.configs import PreTrainedConfig

    from lekiwi_drift.policy.configuration_smolvla_drift import SmolVLADriftConfig

    ckpt = resolve_checkpoint_dir(path)
    config = PreTrainedConfig.from_pretrained(ckpt)
    if not isinstance(config, SmolVLADriftConfig):
        raise PolicyMismatchError(f"{ckpt} holds a '{config.type}' policy, not smolvla_drift")
    vlm_dir = vlm_dir or os.environ.get(VLM_DIR_ENV) or None
    if vlm_dir:
        config.vlm_model_name = str(vlm_dir)
    config.load_vlm_weights = False  # every weight is in the checkpoint's model.safetensors
    config.device = device
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise ValueError(f"unknown smolvla_drift config field {key!r}")
        setattr(config, key, value)
    config.validate()
    return config


def load_policy(
    path: str | Path,
    robot_features: Mapping[str, Any] | None = None,
    vlm_dir: str | Path | None = None,
    device: str = "cpu",
    **overrides,
):
    """(policy, preprocessor, postprocessor) from a checkpoint, ready for `select_action`.

    `robot_features` (see `robot_features()`) is checked before the model is built; a mismatch
    raises `PolicyMismatchError`. `overrides` set inference fields such as the sampler.
    """
    from lerobot.policies.factory import make_pre_post_processors

    from lekiwi_drift.policy.modeling_smolvla_drift import SmolVLADriftPolicy

    ckpt = resolve_checkpoint_dir(path)
    config = load_config(ckpt, vlm_dir=vlm_dir, device=device, **overrides)
    if robot_features is not None:
        check_features(config, robot_features)
    policy = SmolVLADriftPolicy.from_pretrained(ckpt, config=config)
    pre_overrides: dict[str, Any] = {"device_processor": {"device": device}}
    vlm_dir = vlm_dir or os.environ.get(VLM_DIR_ENV) or None
    if vlm_dir:
        pre_overrides["tokenizer_processor"] = {"tokenizer_name": str(vlm_dir)}
    preprocessor, postprocessor = make_pre_post_processors(
        config, pretrained_path=str(ckpt), preprocessor_overrides=pre_overrides
    )
    policy.eval()
    return policy, preprocessor, postprocessor
