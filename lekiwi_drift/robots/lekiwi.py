"""The real LeKiwi: LeRobot's `LeKiwi`, configured from our robot config."""

from __future__ import annotations

from pathlib import Path

from lekiwi_drift.config.robot import ConfigError, RobotConfig

_ROTATIONS = {0: "NO_ROTATION", 90: "ROTATE_90", 180: "ROTATE_180", -90: "ROTATE_270", 270: "ROTATE_270"}


def make_lekiwi(cfg: RobotConfig):
    """Build LeRobot's LeKiwi with our three cameras. Refuses to start without a calibration file, because
    LeRobot would otherwise start an interactive calibration on the robot from inside the host."""
    from lerobot.cameras import Cv2Rotation
    from lerobot.cameras.opencv import OpenCVCameraConfig
    from lerobot.robots.lekiwi import LeKiwi, LeKiwiConfig

    calib_dir = Path(cfg.calibration_dir)
    calib_file = calib_dir / f"{cfg.id}.json"
    if not calib_file.exists():
        raise ConfigError(
            f"no calibration for robot {cfg.id!r} at {calib_file}; run `lekiwi-drift calibrate follower` on the "
            "robot first (or set calibration_dir / id in the config)"
        )
    cameras = {
        cam.name: OpenCVCameraConfig(
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
    return LeKiwi(lk_cfg)
