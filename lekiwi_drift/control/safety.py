"""The safety layer between the policy and the wire: every command the control loop sends passes here.

- Joint limits: from the follower's calibration file (`calibration/<id>.json`, LeRobot's format) when
  present, else features.JOINT_LIMITS_DEG. Targets outside are clamped.
- Per-tick relative-target cap on the arm, measured from the last target we sent (so a chunk that jumps
  90 degrees becomes a ramp). Ours because LeRobot 0.6.1's `max_relative_target` raises KeyError.
- Base speed caps: the (x, y) vector is scaled down with its direction kept; theta is clipped.
- Non-finite values never reach the wire: the whole command becomes a hold.
- `hold()`: base stopped, arm at a fixed pose — what stale observations, policy errors, Ctrl-C and the
  e-stop send.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lekiwi_drift.config.robot import RobotConfig
from lekiwi_drift.control.preset import SafetyConfig
from lekiwi_drift.robots.features import ARM_KEYS, JOINT_LIMITS_DEG, STATE_KEYS, STOP_BASE

log = logging.getLogger(__name__)

GRIPPER = "arm_gripper.pos"
# STS3215 resolution (LeRobot's model_resolution_table): 4096 ticks per turn.
TICKS_PER_TURN = 4096


def limits_from_calibration(path: Path) -> dict[str, tuple[float, float]]:
    """Joint limits in LeRobot's LeKiwi units from a calibration JSON (`use_degrees=True`): arm joints
    in degrees about the range midpoint ((raw - mid) * 360 / 4095, as MotorsBus._normalize), gripper
    0-100 over its calibrated range."""
    data = json.loads(path.read_text())
    limits: dict[str, tuple[float, float]] = {}
    for key in ARM_KEYS:
        motor = key.removesuffix(".pos")
        cal = data.get(motor)
        if not isinstance(cal, dict) or "range_min" not in cal or "range_max" not in cal:
            raise ValueError(f"{path}: no range_min/range_max for motor {motor!r}")
        lo, hi = float(cal["range_min"]), float(cal["range_max"])
        if hi <= lo:
            raise ValueError(f"{path}: motor {motor!r} has range_max <= range_min")
        if key == GRIPPER:
            limits[key] = (0.0, 100.0)
        else:
            half = (hi - lo) / 2.0 * 360.0 / (TICKS_PER_TURN - 1)
            limits[key] = (-half, half)
    return limits


def joint_limits(robot_config: RobotConfig | None) -> tuple[dict[str, tuple[float, float]], str]:
    """(limits, where they came from). A calibration file wins; otherwise the generic table."""
    if robot_config is not None:
        path = Path(robot_config.calibration_dir) / f"{robot_config.id}.json"
        if path.is_file():
            try:
                return limits_from_calibration(path), str(path)
            except (ValueError, json.JSONDecodeError) as exc:
                log.warning("ignoring calibration %s for joint limits (%s); using the generic limits", path, exc)
    return dict(JOINT_LIMITS_DEG), "features.JOINT_LIMITS_DEG"


class SafetyFilter:
    """Turns policy actions into safe commands. Not thread-safe by itself: the loop owns it; `hold()`
    only reads."""

    def __init__(self, config: SafetyConfig, limits: Mapping[str, tuple[float, float]] | None = None):
        self.config = config
        self.limits = dict(limits or JOINT_LIMITS_DEG)
        self.events: Counter = Counter()  # what was changed, by kind (telemetry)
        self._last_arm: dict[str, float] | None = None  # last arm targets sent
        self._hold_arm: dict[str, float] | None = None  # fixed pose while stopped

    def reset(self, state: Mapping[str, float]) -> None:
        """Start from the measured pose (episode start): the first target is capped relative to it."""
        self._last_arm = self._clamp_arm({k: float(state[k]) for k in ARM_KEYS})
        self._hold_arm = None

    def _clamp_arm(self, arm: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for k in ARM_KEYS:
            lo, hi = self.limits[k]
            v = float(arm[k])
            if v < lo or v > hi:
                self.events["joint_clamped"] += 1
            out[k] = min(max(v, lo), hi)
        return out

    def filter(self, action: Mapping[str, float]) -> dict[str, float]:
        """A policy action -> the command to send (all 9 keys, finite, within every limit)."""
        if any(k not in action or not math.isfinite(float(action[k])) for k in STATE_KEYS):
            self.events["non_finite"] += 1
            return self.hold()
        self._hold_arm = None  # moving again: a later stop holds the pose it reaches
        arm = self._clamp_arm(action)
        if self._last_arm is not None:
            c = self.config
            for k in ARM_KEYS:
                cap = c.max_gripper_step if k == GRIPPER else c.max_joint_step_deg
                prev = self._last_arm[k]
                if abs(arm[k] - prev) > cap:
                    self.events["relative_capped"] += 1
                    arm[k] = prev + math.copysign(cap, arm[k] - prev)
        self._last_arm = dict(arm)
        return {**arm, **self._cap_base(action)}

    def _cap_base(self, action: Mapping[str, float]) -> dict[str, float]:
        c = self.config
        vx, vy, wz = float(action["x.vel"]), float(action["y.vel"]), float(action["theta.vel"])
        speed = math.hypot(vx, vy)
        if speed > c.max_linear_speed:
            self.events["base_capped"] += 1
            vx, vy = vx * c.max_linear_speed / speed, vy * c.max_linear_speed / speed
        if abs(wz) > c.max_angular_speed_deg:
            self.events["base_capped"] += 1
            wz = math.copysign(c.max_angular_speed_deg, wz)
        return {"x.vel": vx, "y.vel": vy, "theta.vel": wz}

    def hold(self, state: Mapping[str, float] | np.ndarray | None = None) -> dict[str, float]:
        """Base stopped; arm held. The pose is fixed the first time a stop asks for it (from `state`,
        the measured pose, when given; else the last target sent), so repeated holds do not creep."""
        if self._hold_arm is None:
            if state is not None:
                if isinstance(state, np.ndarray):
                    state = dict(zip(STATE_KEYS, state.tolist()))
                self._hold_arm = self._clamp_arm({k: float(state[k]) for k in ARM_KEYS})
            elif self._last_arm is not None:
                self._hold_arm = dict(self._last_arm)
        arm = self._hold_arm or self._last_arm
        if arm is None:  # nothing known about the arm: there is no safe arm target to send
            raise RuntimeError("SafetyFilter.hold() before reset(): no arm pose to hold")
        self._last_arm = dict(arm)
        return {**arm, **STOP_BASE}

    def keep(self) -> dict[str, float]:
        """A stall tick in normal running (waiting for a chunk): base stopped, arm keeps its last target."""
        if self._last_arm is None:
            raise RuntimeError("SafetyFilter.keep() before reset()")
        return {**self._last_arm, **STOP_BASE}
