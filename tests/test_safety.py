"""The safety layer between the policy and the wire (control/safety.py), without a robot or a policy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lekiwi_drift.config.robot import RobotConfig
from lekiwi_drift.control.preset import SafetyConfig
from lekiwi_drift.control.safety import SafetyFilter, joint_limits, limits_from_calibration
from lekiwi_drift.robots.features import ARM_KEYS, JOINT_LIMITS_DEG, STATE_KEYS

ZERO = {k: 0.0 for k in STATE_KEYS}


def make_filter(**overrides) -> SafetyFilter:
    f = SafetyFilter(SafetyConfig(**overrides), JOINT_LIMITS_DEG)
    f.reset(ZERO)
    return f


def test_a_90_degree_jump_is_capped_per_tick():
    f = make_filter(max_joint_step_deg=6.0)
    target = {**ZERO, "arm_elbow_flex.pos": 90.0}
    sent = [f.filter(target)["arm_elbow_flex.pos"] for _ in range(20)]
    assert sent[:3] == pytest.approx([6.0, 12.0, 18.0])
    assert np.all(np.diff(sent) <= 6.0 + 1e-9)
    assert sent[15] == pytest.approx(90.0) and sent[-1] == pytest.approx(90.0)  # arrives, then stays
    assert f.events["relative_capped"] == 14


def test_out_of_range_joints_are_clamped():
    f = make_filter(max_joint_step_deg=1000.0, max_gripper_step=1000.0)
    out = f.filter({**ZERO, "arm_shoulder_pan.pos": 500.0, "arm_wrist_roll.pos": -999.0, "arm_gripper.pos": 150.0})
    assert out["arm_shoulder_pan.pos"] == JOINT_LIMITS_DEG["arm_shoulder_pan.pos"][1]
    assert out["arm_wrist_roll.pos"] == JOINT_LIMITS_DEG["arm_wrist_roll.pos"][0]
    assert out["arm_gripper.pos"] == 100.0
    assert f.events["joint_clamped"] == 3


def test_base_speed_caps_keep_direction():
    f = make_filter(max_linear_speed=0.2, max_angular_speed_deg=45.0)
    out = f.filter({**ZERO, "x.vel": 0.6, "y.vel": 0.8, "theta.vel": -300.0})
    assert math.hypot(out["x.vel"], out["y.vel"]) == pytest.approx(0.2)
    assert out["x.vel"] / out["y.vel"] == pytest.approx(0.75)
    assert out["theta.vel"] == -45.0


def test_non_finite_action_becomes_a_hold():
    f = make_filter()
    f.filter({**ZERO, "arm_elbow_flex.pos": 5.0, "x.vel": 0.1})
    out = f.filter({**ZERO, "arm_elbow_flex.pos": float("nan"), "x.vel": 0.2})
    assert out["x.vel"] == out["y.vel"] == out["theta.vel"] == 0.0
    assert out["arm_elbow_flex.pos"] == 5.0 and f.events["non_finite"] == 1


def test_hold_fixes_the_measured_pose_and_does_not_creep():
    f = make_filter()
    state = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 0.1, 0.0, 5.0], dtype=np.float32)
    first = f.hold(state)
    again = f.hold(state + 3.0)  # the arm sags a little: the held pose stays where the stop began
    assert first == again
    assert [first[k] for k in ARM_KEYS] == pytest.approx(state[:6].tolist())
    assert first["x.vel"] == first["y.vel"] == first["theta.vel"] == 0.0


def test_joint_limits_from_calibration(tmp_path):
    calib = {
        m.removesuffix(".pos"): {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 1000, "range_max": 3000}
        for i, m in enumerate(ARM_KEYS)
    }
    (tmp_path / "lekiwi.json").write_text(json.dumps(calib))
    lim = limits_from_calibration(tmp_path / "lekiwi.json")
    half = 1000 * 360 / 4095
    assert lim["arm_elbow_flex.pos"] == pytest.approx((-half, half))
    assert lim["arm_gripper.pos"] == (0.0, 100.0)
    cfg = RobotConfig(calibration_dir=str(tmp_path))
    assert joint_limits(cfg)[1].endswith("lekiwi.json")
    assert joint_limits(RobotConfig(calibration_dir=str(tmp_path / "none")))[1] == "features.JOINT_LIMITS_DEG"
