"""`--robot lekiwi` builds LeRobot's LeKiwi from our config (no hardware is opened until connect())."""

import json

import pytest

from lekiwi_drift.config.robot import ConfigError
from lekiwi_drift.robots.factory import make_robot
from tests.link_helpers import loopback_config

MOTORS = [
    "arm_shoulder_pan",
    "arm_shoulder_lift",
    "arm_elbow_flex",
    "arm_wrist_flex",
    "arm_wrist_roll",
    "arm_gripper",
    "base_left_wheel",
    "base_back_wheel",
    "base_right_wheel",
]


def test_missing_calibration_names_the_command(tmp_path):
    cfg, _ = loopback_config(tmp_path)
    cfg.calibration_dir = str(tmp_path / "calibration")
    with pytest.raises(ConfigError, match=r"lekiwi-drift calibrate follower"):
        make_robot("lekiwi", cfg)


def test_lekiwi_gets_our_three_cameras_and_no_relative_cap(tmp_path):
    cfg, _ = loopback_config(tmp_path)
    calib = tmp_path / "calibration"
    calib.mkdir()
    cfg.calibration_dir = str(calib)
    (calib / f"{cfg.id}.json").write_text(
        json.dumps(
            {
                m: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 0, "range_max": 4095}
                for i, m in enumerate(MOTORS)
            }
        )
    )
    cfg.cameras[1].rotation = 180
    robot = make_robot("lekiwi", cfg)
    assert list(robot.cameras) == ["front", "wrist", "top"]
    assert robot.config.cameras["top"].index_or_path == cfg.cameras[2].device
    assert robot.config.cameras["wrist"].rotation.name == "ROTATE_180"
    assert robot.config.max_relative_target is None  # LeRobot 0.6.1 KeyError workaround
    assert robot.calibration["arm_gripper"].id == 6
    assert not robot.is_connected
