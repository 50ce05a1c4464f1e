"""The real LeKiwi: LeRobot's `LeKiwi`, configured from our robot config."""

from __future__ import annotations

import functools
import logging
import termios
import time
from pathlib import Path

from lekiwi_drift.config.robot import ConfigError, RobotConfig

log = logging.getLogger(__name__)

# What a FeetechMotorsBus raises once its port is gone: LeRobot's ConnectionError, pyserial's
# SerialException (an OSError), and termios.error from pyserial's flush (not an OSError).
_BUS_GONE = (ConnectionError, OSError, termios.error)
_CONNECT_TRIES = 3

_ROTATIONS = {0: "NO_ROTATION", 90: "ROTATE_90", 180: "ROTATE_180", -90: "ROTATE_270", 270: "ROTATE_270"}


def make_lekiwi(cfg: RobotConfig):
    """Build LeRobot's LeKiwi with our three cameras. Refuses to start without a calibration file, because
    LeRobot would otherwise start an interactive calibration on the robot from inside the host."""
    from lerobot.cameras import Cv2Rotation
    from lerobot.cameras.opencv import OpenCVCameraConfig
    from lerobot.robots.lekiwi import LeKiwiConfig

    calib_dir = Path(cfg.calibration_dir)
    calib_file = calib_dir / f"{cfg.id}.json"
    if not calib_file.exists():
        raise ConfigError(
            f"no calibration for robot {cfg.id!r} at {calib_file}; run `lekiwi-drift calibrate follower` on the "
            "robot first (or set calibration_dir / id in the config)"
        )
    cameras = {
        cam.name: _emulated_camera(cam)
        if cam.device.startswith("emu:")  # frames from `lekiwi-drift sim buses` (docs/emulator.md)
        else OpenCVCameraConfig(
            index_or_path=cam.device,
            fps=cam.fps,
            width=cam.width,
            height=cam.height,
            fourcc=cam.fourcc,
            rotation=getattr(Cv2Rotation, _ROTATIONS[cam.rotation]),
        )
        for cam in cfg.cameras
    }
    # max_relative_target stays None: LeRobot 0.6.1 raises KeyError with it set (goal keys keep their
    # `.pos` suffix) and its host swallows the error, so no command would ever run. Our own safety layer
    # enforces the per-tick cap on the laptop side instead.
    lk_cfg = LeKiwiConfig(
        id=cfg.id,
        calibration_dir=calib_dir,
        port=cfg.port,
        cameras=cameras,
        disable_torque_on_disconnect=cfg.host.release_on_exit,
        max_relative_target=None,
    )
    return _checked_lekiwi()(lk_cfg)


def _emulated_camera(cam):
    from lekiwi_drift.emulator.config_camera import EmulatedCameraConfig

    return EmulatedCameraConfig(path=cam.device.removeprefix("emu:"), fps=cam.fps, width=cam.width, height=cam.height)


def calibration_mismatch(bus) -> list[str]:
    """One line per motor whose homing offset or range on the motors differs from the file's."""
    found = bus.read_calibration()
    lines = [f"  {name}: on the bus but not in the file" for name in bus.motors if name not in bus.calibration]
    for name, want in bus.calibration.items():
        if name not in found:
            lines.append(f"  {name}: in the file but not a motor of this robot")
            continue
        have = found[name]
        fields = ("homing_offset", "range_min", "range_max")
        diffs = [
            f"{f} {getattr(have, f)} on the motor, {getattr(want, f)} in the file"
            for f in fields
            if getattr(have, f) != getattr(want, f)
        ]
        if diffs:
            lines.append(f"  {name} (ID {want.id}): " + "; ".join(diffs))
    return lines


@functools.cache
def _checked_lekiwi():
    """LeRobot's LeKiwi, defined lazily (importing LeRobot is slow) with a connect that checks first."""
    from lerobot.robots.lekiwi import LeKiwi

    class CheckedLeKiwi(LeKiwi):
        """On a calibration that does not match the motors, stock `connect()` starts LeRobot's interactive
        calibration (an `input()` prompt, inside a host with no terminal). Here the bus is compared with
        the file before any motor is configured or torqued, and a mismatch is a ConfigError naming each
        motor and value; the bus is closed without touching torque."""

        def _retry(self, fn, what: str):
            """A status packet lost at start-up (a USB adapter's first bytes, a loaded machine) fails
            LeRobot's connect or configure outright; both only read and write settings, so a second try
            is safe. A motor that is really missing fails all three tries with LeRobot's own message."""
            for attempt in range(1, _CONNECT_TRIES + 1):
                try:
                    return fn()
                except (ConnectionError, RuntimeError) as exc:
                    if attempt == _CONNECT_TRIES:
                        raise
                    log.warning("%s failed (try %d of %d), retrying: %s", what, attempt, _CONNECT_TRIES, exc)
                    self._unwedge()
                    time.sleep(0.2)

        def _open_bus(self) -> None:
            if self.bus.is_connected:  # a failed handshake leaves the port open
                self.bus.port_handler.closePort()
            self.bus.connect()

        def connect(self, calibrate: bool = True) -> None:
            self._retry(self._open_bus, "motor bus handshake")
            calibrated = self._retry(lambda: self.bus.is_calibrated, "reading the motors' calibration")
            mismatch = calibration_mismatch(self.bus) if not calibrated else []
            if mismatch:
                self.bus.disconnect(disable_torque=False)
                raise ConfigError(
                    f"calibration file {self.calibration_fpath} does not match the motors on {self.config.port}:\n"
                    + "\n".join(mismatch)
                    + "\nNothing was moved. If this file belongs to another robot, set id in the config; if the "
                    "arm was recalibrated elsewhere, run `lekiwi-drift calibrate follower` on it again."
                )
            for cam in self.cameras.values():
                cam.connect()
            self._retry(self.configure, "configuring the motors")

        # scservo_sdk sets `port_handler.is_using` for a transaction and clears it at the end; a serial
        # exception in between (cable pulled, pty closed) leaves it set, and every later transaction then
        # fails with "Port is in use!" even once the bus is back. LeRobot clears it in disconnect() only.
        # The host drives this bus from one thread, so no transaction can be in flight here: clear it.
        def _unwedge(self) -> None:
            self.bus.port_handler.is_using = False

        def get_observation(self):
            self._unwedge()
            return super().get_observation()

        def send_action(self, action):
            self._unwedge()
            return super().send_action(action)

        def stop_base(self) -> None:
            """Stop the wheels; if the bus is gone, say so loudly instead of raising: the host is on its
            way out (exit 3 after too many read failures) and must still release what it can."""
            self._unwedge()
            try:
                super().stop_base()
            except _BUS_GONE as exc:
                log.critical("could not stop the base, the motor bus does not answer (%s): cut the robot's power", exc)

        def disconnect(self) -> None:
            self.stop_base()
            self._unwedge()
            try:
                self.bus.disconnect(self.config.disable_torque_on_disconnect)
            except _BUS_GONE as exc:
                log.critical("could not release the arm, the motor bus does not answer (%s)", exc)
                if self.bus.port_handler.is_open:
                    self.bus.port_handler.closePort()
            for cam in self.cameras.values():
                cam.disconnect()

    return CheckedLeKiwi
