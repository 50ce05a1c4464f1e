"""The one robot config file (`lekiwi.yaml`): parsed and validated here, and nowhere else.

Every other module receives the typed `RobotConfig`; a wrong field raises `ConfigError` naming the field
and the fix, before anything connects to hardware.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

CAMERA_NAMES = ("front", "wrist", "top")
DEFAULT_CONFIG_NAME = "lekiwi.yaml"


class ConfigError(ValueError):
    """A config field is wrong; the message names the field and what to write instead."""


@dataclass
class CameraConfig:
    name: str
    device: str = "/dev/video0"
    width: int = 640
    height: int = 480
    fps: int = 30
    fourcc: str = "MJPG"
    rotation: int = 0  # degrees: 0, 90, 180 or -90


@dataclass
class HostConfig:
    address: str = "127.0.0.1"  # where clients connect
    bind: str = "0.0.0.0"  # where the host listens (stock LeKiwi binds every interface)
    port_cmd: int = 5555
    port_obs: int = 5556
    loop_hz: float = 30.0
    watchdog_ms: float = 500.0
    connect_timeout_s: float = 5.0
    max_failures: int = 30  # consecutive camera/bus read failures before the host stops the base and exits
    release_on_exit: bool = True  # disable arm torque when the host stops (False: arm keeps holding)
    max_message_bytes: int = 8 * 1024 * 1024


@dataclass
class KeysConfig:
    """CurveZMQ keys (files written by `lekiwi-drift keys`). Empty: plain stock protocol."""

    host_secret: str = ""  # host side: its own secret key file
    authorized_clients: list[str] = field(default_factory=list)  # host side: client public key files
    client_secret: str = ""  # client side: its own secret key file
    host_public: str = ""  # client side: the host's public key file

    @property
    def host_enabled(self) -> bool:
        return bool(self.host_secret)

    @property
    def client_enabled(self) -> bool:
        return bool(self.client_secret)


@dataclass
class RobotConfig:
    id: str = "lekiwi"
    port: str = "/dev/ttyACM0"  # follower motor bus on the Pi
    leader_port: str = "/dev/ttyACM0"  # SO-101 leader on the laptop
    leader_id: str = "leader"
    calibration_dir: str = "calibration"
    cameras: list[CameraConfig] = field(
        default_factory=lambda: [
            CameraConfig("front", "/dev/video0"),
            CameraConfig("wrist", "/dev/video2", rotation=180),
            CameraConfig("top", "/dev/video4"),
        ]
    )
    host: HostConfig = field(default_factory=HostConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    source: str = "<defaults>"  # where this config was read from

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]


def _check_type(where: str, value: Any, expected: type | tuple[type, ...]) -> None:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if isinstance(value, bool) and expected is not bool:
        raise ConfigError(f"{where}: expected {getattr(expected, '__name__', expected)}, got a boolean ({value!r})")
    if not isinstance(value, expected):
        name = getattr(expected, "__name__", str(expected))
        raise ConfigError(f"{where}: expected {name}, got {type(value).__name__} ({value!r})")


def _build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; valid fields are {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        f = known[name]
        here = f"{where}.{name}"
        if name == "cameras":
            if not isinstance(value, list):
                raise ConfigError(f"{here}: expected a list of cameras")
            kwargs[name] = [_build(CameraConfig, c, f"{here}[{i}]") for i, c in enumerate(value)]
        elif name == "host":
            kwargs[name] = _build(HostConfig, value, here)
        elif name == "keys":
            kwargs[name] = _build(KeysConfig, value, here)
        elif name == "authorized_clients":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{here}: expected a list of public key file paths")
            kwargs[name] = value
        else:
            _check_type(here, value, {"int": int, "float": float, "str": str, "bool": bool}[f.type])
            kwargs[name] = float(value) if f.type == "float" else value
    return cls(**kwargs)


def validate(cfg: RobotConfig) -> RobotConfig:
    where = cfg.source
    names = cfg.camera_names
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: cameras: duplicate camera names {names}; each camera needs its own name")
    for i, cam in enumerate(cfg.cameras):
        if cam.rotation not in (0, 90, 180, -90, 270):
            raise ConfigError(f"{where}: cameras[{i}].rotation: {cam.rotation} is not one of 0, 90, 180, -90")
        if cam.width <= 0 or cam.height <= 0 or cam.fps <= 0:
            raise ConfigError(f"{where}: cameras[{i}]: width, height and fps must be positive")
        if len(cam.fourcc) != 4:
            raise ConfigError(f"{where}: cameras[{i}].fourcc: {cam.fourcc!r} must be four characters, e.g. MJPG")
    h = cfg.host
    for name in ("port_cmd", "port_obs"):
        port = getattr(h, name)
        if not 1 <= port <= 65535:
            raise ConfigError(f"{where}: host.{name}: {port} is not a TCP port (1-65535)")
    if h.port_cmd == h.port_obs:
        raise ConfigError(f"{where}: host.port_cmd and host.port_obs are both {h.port_cmd}; use two ports")
    if not 1.0 <= h.loop_hz <= 200.0:
        raise ConfigError(f"{where}: host.loop_hz: {h.loop_hz} is outside 1-200 Hz (the robot runs at 30)")
    if h.watchdog_ms <= 0 or h.max_failures < 1:
        raise ConfigError(f"{where}: host.watchdog_ms must be > 0 and host.max_failures >= 1")
    k = cfg.keys
    if k.authorized_clients and not k.host_secret:
        raise ConfigError(
            f"{where}: keys.authorized_clients is set but keys.host_secret is empty; "
            "run `lekiwi-drift keys` and set both"
        )
    if bool(k.client_secret) != bool(k.host_public):
        raise ConfigError(f"{where}: keys.client_secret and keys.host_public go together; set both or neither")
    return cfg


def default_config_path() -> Path:
    """`./lekiwi.yaml` when present, else the documented example shipped with the package."""
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    if local.exists():
        return local
    return Path(str(resources.files("lekiwi_drift.config") / DEFAULT_CONFIG_NAME))


def load_config(path: str | Path | None = None) -> RobotConfig:
    path = Path(path) if path else default_config_path()
    if not path.exists():
        raise ConfigError(
            f"config file {path} does not exist; copy {default_config_path()} and edit it, or pass --config PATH"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    cfg = _build(RobotConfig, data, str(path))
    cfg.source = str(path)
    return validate(cfg)
