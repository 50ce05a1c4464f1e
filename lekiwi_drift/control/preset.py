"""Policy presets (`policies/<name>.yaml`): parsed and validated here, and nowhere else.

A preset names a checkpoint and says how to run it: sampler (one-step drift, KeyStone, flow steps),
how many actions of each chunk to execute, control rate, sync/async mode, which robot camera feeds
which policy image key, the task string, and safety overrides. `load_preset("drift")` looks for
`./policies/drift.yaml`, then the repository's `policies/drift.yaml`; `load_preset("path/x.yaml")`
reads that file. Relative paths inside a preset are relative to the preset file, so a preset and its
checkpoint move together. A wrong field raises `ConfigError` naming the field, like config/robot.py; the
sampler/KeyStone rules are the policy config's (`sampler_problems`), applied here to the preset's fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lekiwi_drift.config.robot import ConfigError
from lekiwi_drift.hub import preset_checkpoint
from lekiwi_drift.policy.checkpoint import IMAGE_PREFIX
from lekiwi_drift.policy.configuration_smolvla_drift import sampler_problems
from lekiwi_drift.robots.features import MAX_ANGULAR_SPEED_DEG, MAX_LINEAR_SPEED
from lekiwi_drift.shipped import shipped_dir

MODES = ("sync", "async")
# Presets are looked up in ./policies, then in the shipped policies/ (the checkout's, or the wheel's copy:
# lekiwi_drift/shipped.py).
SHIPPED_POLICIES = shipped_dir("policies")


@dataclass
class SafetyConfig:
    """Limits the safety layer enforces between the policy and the wire (control/safety.py)."""

    max_joint_step_deg: float = 6.0  # per tick, arm joints: 6 deg / (1/30 s) = 180 deg/s at most
    max_gripper_step: float = 25.0  # per tick, gripper units (0-100): full close in 4 ticks
    max_linear_speed: float = MAX_LINEAR_SPEED  # m/s, applied to the (x, y) vector, direction kept
    max_angular_speed_deg: float = MAX_ANGULAR_SPEED_DEG  # deg/s
    max_obs_age_ms: float = 200.0  # older observation: stop the base, hold the arm, do not infer
    stale_timeout_s: float = 1.0  # stale for this long ends the episode with outcome "stale"


@dataclass
class Preset:
    name: str = ""
    checkpoint: str = ""  # a checkpoint dir, its step dir or a training output dir
    vlm_dir: str = ""  # local SmolVLM dir for offline loading ("" = the checkpoint's own VLM name)
    sampler: str = "drift"  # "drift": one expert pass; "flow": Euler with flow_steps
    flow_steps: int = 10
    keystone_samples: int = 1  # K; 1 = KeyStone off (drift sampler only)
    keystone_clusters: int = 4  # C
    keystone_tau: float = 0.3  # spread below tau: take the global medoid
    n_action_steps: int = 0  # actions executed per chunk; 0 = the checkpoint's n_action_steps
    control_hz: float = 30.0
    mode: str = "async"  # "sync": infer when the queue is empty; "async": infer ahead, drop late actions
    latency_margin_ticks: int = 2  # async: start the next inference this many ticks earlier than needed
    cameras: dict[str, str] = field(default_factory=dict)  # robot camera -> policy image key ({} = same names)
    task: str = "pick up the salt bottle and place it in the basket"
    device: str = "auto"  # "auto": cuda when available, else cpu
    end_on_success: bool = True  # sim: end the episode once the host reports `_success`
    sim_size: str = "128x96"  # camera size when `run` starts the simulated robot itself (match the demos)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    source: str = "<defaults>"

    @property
    def keystone(self) -> bool:
        return self.keystone_samples > 1

    def policy_overrides(self) -> dict[str, Any]:
        """Fields set on the checkpoint's config at load time (see policy/checkpoint.load_config)."""
        out: dict[str, Any] = {
            "sampler": self.sampler,
            "flow_steps": self.flow_steps,
            "keystone_samples": self.keystone_samples,
            "keystone_clusters": min(self.keystone_clusters, self.keystone_samples),
            "keystone_tau": self.keystone_tau,
        }
        if self.n_action_steps:
            out["n_action_steps"] = self.n_action_steps
        return out

    def camera_map(self, robot_cameras: list[str]) -> dict[str, str]:
        """Robot camera -> full policy image key. With no mapping, every robot camera keeps its name."""
        mapping = self.cameras or {c: c for c in robot_cameras}
        return {cam: key if key.startswith(IMAGE_PREFIX) else IMAGE_PREFIX + key for cam, key in mapping.items()}

    def sim_wh(self) -> tuple[int, int]:
        w, h = (int(v) for v in self.sim_size.lower().split("x"))
        return w, h


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _check(where: str, value: Any, type_name: str) -> Any:
    expected = _TYPES[type_name]
    if isinstance(value, bool) and expected is not bool:
        raise ConfigError(f"{where}: expected {type_name}, got a boolean ({value!r})")
    if expected is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, expected):
        raise ConfigError(f"{where}: expected {type_name}, got {type(value).__name__} ({value!r})")
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("source", "name")}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; valid fields are {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        here = f"{where}.{key}"
        if key == "safety":
            kwargs[key] = _build(SafetyConfig, value or {}, here)
        elif key == "cameras":
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ConfigError(
                    f"{here}: expected a mapping robot camera -> policy image key, e.g. {{front: front, wrist: wrist}}"
                )
            kwargs[key] = dict(value)
        else:
            kwargs[key] = _check(here, value, known[key].type)
    return cls(**kwargs)


def validate(p: Preset) -> Preset:
    w = p.source
    if not p.checkpoint:
        raise ConfigError(f"{w}: checkpoint: empty; set it to a trained policy directory")
    if p.mode not in MODES:
        raise ConfigError(f"{w}: mode: {p.mode!r} is not one of {MODES}")
    # The policy config owns the sampler/KeyStone rules (one copy for presets and checkpoints); the
    # preset's fields carry the config's names, so the first broken rule names the line to fix.
    sampler = sampler_problems(p.sampler, p.flow_steps, p.keystone_samples, p.keystone_clusters, p.keystone_tau)
    if sampler:
        name, problem = sampler[0]
        raise ConfigError(f"{w}: {name}: {problem}")
    if p.n_action_steps < 0:
        raise ConfigError(f"{w}: n_action_steps: {p.n_action_steps} must be >= 1 (or 0: the checkpoint's)")
    if not 1.0 <= p.control_hz <= 200.0:
        raise ConfigError(f"{w}: control_hz: {p.control_hz} is outside 1-200 Hz (the robot runs at 30)")
    if p.latency_margin_ticks < 0:
        raise ConfigError(f"{w}: latency_margin_ticks: {p.latency_margin_ticks} must be >= 0")
    if not p.task.strip():
        raise ConfigError(f"{w}: task: empty; the policy is conditioned on this instruction")
    if p.device not in ("auto", "cpu", "cuda", "mps") and not p.device.startswith("cuda:"):
        raise ConfigError(f"{w}: device: {p.device!r}; use auto, cpu, cuda, cuda:N or mps")
    try:
        sw, sh = p.sim_wh()
    except ValueError:
        raise ConfigError(f"{w}: sim_size: {p.sim_size!r}; expected WIDTHxHEIGHT, e.g. 128x96") from None
    if sw < 16 or sh < 16:
        raise ConfigError(f"{w}: sim_size: {p.sim_size} is too small (16x16 at least)")
    keys = list(p.camera_map([]).values())
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{w}: cameras: two robot cameras feed the same policy image key ({keys})")
    s = p.safety
    for name in (
        "max_joint_step_deg",
        "max_gripper_step",
        "max_linear_speed",
        "max_angular_speed_deg",
        "max_obs_age_ms",
        "stale_timeout_s",
    ):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{w}: safety.{name}: {getattr(s, name)} must be > 0")
    if s.max_linear_speed > MAX_LINEAR_SPEED or s.max_angular_speed_deg > MAX_ANGULAR_SPEED_DEG:
        raise ConfigError(
            f"{w}: safety: base caps may only tighten the robot's own limits "
            f"({MAX_LINEAR_SPEED} m/s, {MAX_ANGULAR_SPEED_DEG} deg/s)"
        )
    return p


def preset_path(name_or_path: str | Path) -> Path:
    """A file path as given, or a bare name looked up in ./policies, then the shipped policies/."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text.endswith((".yaml", ".yml")) or "/" in text or path.is_file():
        return path
    for folder in (Path.cwd() / "policies", SHIPPED_POLICIES):
        cand = folder / f"{text}.yaml"
        if cand.is_file():
            return cand
    shipped = sorted(p.stem for p in SHIPPED_POLICIES.glob("*.yaml")) if SHIPPED_POLICIES.is_dir() else []
    raise ConfigError(
        f"no preset named {text!r} (looked in ./policies and {SHIPPED_POLICIES}); "
        f"shipped presets: {', '.join(shipped) or 'none'}; or pass a path to a .yaml file"
    )


def load_preset(name_or_path: str | Path) -> Preset:
    path = preset_path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"preset file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    preset = _build(Preset, data, str(path))
    preset.name, preset.source = path.stem, str(path)
    base = path.resolve().parent
    # Paths in a preset are relative to the preset file (a preset travels with its checkpoint); a Hub repo
    # id is used only when no such local directory exists (lekiwi_drift/hub.py).
    preset.checkpoint = preset_checkpoint(preset.checkpoint, base) if preset.checkpoint else ""
    if preset.vlm_dir:
        preset.vlm_dir = str((base / Path(preset.vlm_dir).expanduser()).resolve())
    return validate(preset)
