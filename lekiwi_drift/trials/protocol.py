"""Trial protocols (`trials/<name>.yaml`): parsed and validated here, and nowhere else.

A protocol says what is tried (task prompt, item), against which policies (preset names), how often and
in which order, and how trials end and are scored. A bad field raises `ProtocolError` naming the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lekiwi_drift.config.robot import ConfigError
from lekiwi_drift.shipped import shipped_dir
from lekiwi_drift.sim.config import ITEMS

ORDERS = ("interleaved", "blocked")
DEFAULT_REASONS = ("missed grasp", "dropped", "wrong item", "collision", "timeout", "other")
# Protocols are looked up in ./trials, then in the shipped trials/ (the checkout's, or the wheel's copy:
# lekiwi_drift/shipped.py), the same way presets are found in policies/.
SHIPPED_TRIALS = shipped_dir("trials")


class ProtocolError(ConfigError):
    """A protocol field is wrong; the message names the file and the field."""


@dataclass(frozen=True)
class Protocol:
    name: str
    task: str  # the language prompt every policy gets
    item: str  # the requested item (sim: what the success detector checks and the reset asks for)
    policies: tuple[str, ...] = ("drift", "fm10", "fm1")  # preset names or preset file paths
    trials_per_policy: int = 10
    order: str = "interleaved"  # interleaved: every block runs each policy once, seeded order; blocked
    seed: int | None = None  # order and blind-code seed; None: drawn once per session and recorded
    time_limit_s: float = 60.0  # a trial still running after this ends as a timeout
    reset_countdown_s: float = 3.0  # after the start key, time for the operator to step back
    scene_seed: int = 0  # sim: the fixed layout every trial starts from ("10 trials from one scene")
    jitter: bool = True  # sim: per-trial reset noise around that layout (sim/scene.py), like a person re-placing
    jitter_seed: int = 0  # sim: block b's jitter seed is jitter_seed + b (every policy gets the same jitter)
    vary_scene: bool = False  # True: trial i uses the whole new layout of seed scene_seed + i instead
    latency: str | None = None  # sim: charge inference latency in sim time (control/sim_time.py); None: wall time
    failure_reasons: tuple[str, ...] = DEFAULT_REASONS
    blind: bool = False  # hide policy names behind codes (A, B, C) until the session is finished
    source: str = "<memory>"

    @property
    def total_trials(self) -> int:
        return self.trials_per_policy * len(self.policies)

    def to_dict(self) -> dict[str, Any]:
        """The protocol as plain data (stored in every session so a resumed session keeps its rules)."""
        data = dataclasses.asdict(self)
        data.pop("source")
        data["policies"] = list(self.policies)
        data["failure_reasons"] = list(self.failure_reasons)
        return data


_TYPES = {
    "name": str,
    "task": str,
    "item": str,
    "policies": list,
    "trials_per_policy": int,
    "order": str,
    "seed": (int, type(None)),
    "time_limit_s": float,
    "reset_countdown_s": float,
    "scene_seed": int,
    "vary_scene": bool,
    "failure_reasons": list,
    "blind": bool,
    "jitter": bool,
    "jitter_seed": int,
    "latency": (str, type(None)),
}


def _check(where: str, name: str, value: Any) -> Any:
    expected = _TYPES[name]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) and expected is not bool:
        raise ProtocolError(f"{where}: {name}: expected {_type_name(expected)}, got a boolean ({value!r})")
    if not isinstance(value, expected):
        raise ProtocolError(f"{where}: {name}: expected {_type_name(expected)}, got {type(value).__name__} ({value!r})")
    return value


def _type_name(t) -> str:
    if isinstance(t, tuple):
        return " or ".join("null" if x is type(None) else x.__name__ for x in t)
    return t.__name__


def _string_list(where: str, name: str, value: list) -> tuple[str, ...]:
    if not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ProtocolError(f"{where}: {name}: expected a non-empty list of non-empty strings, got {value!r}")
    items = tuple(v.strip() for v in value)
    if len(set(items)) != len(items):
        raise ProtocolError(f"{where}: {name}: duplicate entries in {list(items)}")
    return items


def parse_protocol(data: Any, source: str = "<memory>", default_name: str = "protocol") -> Protocol:
    if not isinstance(data, dict):
        raise ProtocolError(f"{source}: expected a mapping of protocol fields, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise ProtocolError(f"{source}: unknown field(s) {unknown}; valid fields are {sorted(_TYPES)}")
    for required in ("task", "item"):
        if required not in data:
            raise ProtocolError(f"{source}: {required}: missing (every protocol names its task prompt and item)")
    kwargs: dict[str, Any] = {"name": default_name, "source": source}
    for name, value in data.items():
        value = _check(source, name, value)
        if name in ("policies", "failure_reasons"):
            value = _string_list(source, name, value)
        kwargs[name] = value
    p = Protocol(**kwargs)
    if not p.task.strip():
        raise ProtocolError(f"{source}: task: the prompt is empty")
    if p.item not in ITEMS:
        raise ProtocolError(f"{source}: item: {p.item!r} is not one of {', '.join(ITEMS)}")
    if p.order not in ORDERS:
        raise ProtocolError(f"{source}: order: {p.order!r} is not one of {', '.join(ORDERS)}")
    if not 1 <= p.trials_per_policy <= 1000:
        raise ProtocolError(f"{source}: trials_per_policy: {p.trials_per_policy} is not in 1..1000")
    if not 0 < p.time_limit_s <= 3600:
        raise ProtocolError(f"{source}: time_limit_s: {p.time_limit_s} is not in (0, 3600] seconds")
    if not 0 <= p.reset_countdown_s <= 60:
        raise ProtocolError(f"{source}: reset_countdown_s: {p.reset_countdown_s} is not in [0, 60] seconds")
    if p.blind and len(p.policies) > 26:
        raise ProtocolError(f"{source}: blind: at most 26 policies can get letter codes")
    if "timeout" not in p.failure_reasons:
        raise ProtocolError(f"{source}: failure_reasons: must include 'timeout' (the time limit's reason)")
    if p.latency is not None:
        from lekiwi_drift.control.sim_time import LatencyError, LatencyProfile

        try:
            LatencyProfile.parse(p.latency)
        except LatencyError as exc:
            raise ProtocolError(f"{source}: latency: {exc}") from None
    if not p.name.replace("_", "").replace("-", "").isalnum():
        raise ProtocolError(f"{source}: name: {p.name!r} may hold only letters, digits, '-' and '_'")
    return p


def protocol_dirs() -> list[Path]:
    return [Path.cwd() / "trials", SHIPPED_TRIALS]


def resolve_protocol_path(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or a protocol name looked up as trials/<name>.yaml."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in str(name_or_path):
        if not path.is_file():
            raise ProtocolError(f"protocol file {path} does not exist")
        return path
    for folder in protocol_dirs():
        candidate = folder / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for d in protocol_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise ProtocolError(
        f"no protocol {str(name_or_path)!r} in ./trials or {SHIPPED_TRIALS}"
        + (f"; protocols: {', '.join(known)}" if known else "")
        + "; or give a path to a protocol YAML"
    )


def load_protocol(name_or_path: str | Path) -> Protocol:
    path = resolve_protocol_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProtocolError(f"{path}: not valid YAML: {exc}") from None
    return parse_protocol(data, str(path), default_name=path.stem)


def protocol_from_dict(data: dict[str, Any], source: str) -> Protocol:
    """Rebuild a protocol stored in a session (the stored copy, not today's file, is what the session ran)."""
    data = dict(data)
    name = data.pop("name", "protocol")
    return parse_protocol({**data, "name": name}, source, default_name=name)
