"""The SO-101 leader arm (LeRobot's `SO101Leader`) as the arm half of a teleop action.

Why a wrapper: LeRobot's leader starts an interactive calibration from inside `connect()` when its file
is missing or differs from the motors, and fails with a bare serial error when the port is absent. Here
both are checked first and reported with the command that fixes them; a file that differs from the
motors is written to them (what LeRobot's "press ENTER to use the file" answer does), without a prompt.
Its keys (`shoulder_pan.pos` ...) are renamed to the LeKiwi's (`arm_shoulder_pan.pos` ...).
"""

from __future__ import annotations

import logging
from pathlib import Path

from lekiwi_drift.config.robot import ConfigError, RobotConfig
from lekiwi_drift.robots.features import ARM_KEYS

log = logging.getLogger(__name__)

LEADER_MOTORS = tuple(k.removeprefix("arm_") for k in ARM_KEYS)  # shoulder_pan.pos ... gripper.pos


def calibration_file(cfg: RobotConfig, device_id: str) -> Path:
    """Where LeRobot reads and writes a device's calibration: `<calibration_dir>/<id>.json`
    (`Robot.calibration_fpath` / `Teleoperator.calibration_fpath` with `calibration_dir` set)."""
    return Path(cfg.calibration_dir) / f"{device_id}.json"


def check_ids(cfg: RobotConfig) -> None:
    """The follower and the leader share `calibration_dir`, so their ids must differ."""
    if cfg.leader_id == cfg.id:
        raise ConfigError(
            f"{cfg.source}: leader_id and id are both {cfg.id!r}; the two calibration files "
            f"would overwrite each other in {cfg.calibration_dir}/. Give the leader its own id."
        )


def check_port(port: str, what: str, cfg: RobotConfig, field_name: str) -> None:
    if not Path(port).exists():
        raise ConfigError(
            f"{what} serial port {port} does not exist. Plug the arm in (USB and power), then "
            f"find its port with `lerobot-find-port` and set {field_name} in {cfg.source}."
        )


def leader_config(cfg: RobotConfig):
    from lerobot.teleoperators.so_leader import SO101LeaderConfig

    return SO101LeaderConfig(port=cfg.leader_port, id=cfg.leader_id, calibration_dir=Path(cfg.calibration_dir))


class LeaderArm:
    """`connect()`, `read() -> {arm_*.pos: deg}`, `disconnect()`."""

    def __init__(self, cfg: RobotConfig):
        self.cfg = cfg
        self._leader = None

    def connect(self) -> None:
        check_ids(self.cfg)
        path = calibration_file(self.cfg, self.cfg.leader_id)
        if not path.is_file():
            raise ConfigError(
                f"no calibration for the SO-101 leader {self.cfg.leader_id!r} at {path}; run "
                f"`lekiwi-drift calibrate leader` first (or set leader_id / calibration_dir in "
                f"{self.cfg.source})"
            )
        check_port(self.cfg.leader_port, "SO-101 leader", self.cfg, "leader_port")
        from lerobot.teleoperators.so_leader import SO101Leader

        leader = SO101Leader(leader_config(self.cfg))
        leader.connect(calibrate=False)
        if not leader.is_calibrated:
            log.warning(
                "the leader's motors differ from %s: writing the file to the motors (run `lekiwi-drift "
                "calibrate leader` if this arm was recalibrated elsewhere)",
                path,
            )
            leader.bus.write_calibration(leader.calibration)
        self._leader = leader

    def read(self) -> dict[str, float]:
        raw = self._leader.get_action()
        return {f"arm_{k}": float(raw[k]) for k in LEADER_MOTORS}

    def disconnect(self) -> None:
        if self._leader is not None:
            try:
                self._leader.disconnect()
            finally:
                self._leader = None
