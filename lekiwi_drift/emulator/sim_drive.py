"""The follower's shafts on the MuJoCo LeKiwi: goal positions drive the sim arm, wheel speeds the base.

The sim (`SimLeKiwi`, real-time clock) takes LeRobot-unit actions and returns LeRobot-unit state; here
servo steps are converted to and from those units the way an assembled robot relates them:
- arm joint: sim angle 0 is the shaft at `ARM_MIDDLE` (the middle of its range), 4096 steps a turn;
- gripper: its shaft range `ARM_MIDDLE +- ARM_HALF_RANGE` spans the sim's fully closed .. fully open;
- wheels: the three wheel speeds become a body velocity through LeRobot LeKiwi's own omni-wheel
  kinematics (`_wheel_raw_to_body`), and the base's measured body velocity becomes the wheel speeds the
  servos report (`_body_to_wheel_raw`), so what LeKiwi reads back is the base's real motion.
A servo with torque off holds the sim joint where it is (the sim arm has no free-swinging mode); a hand
moving it sets where it holds. A wheel with torque off coasts to a stop.
"""

from __future__ import annotations

import threading
import time

from lerobot.robots.lekiwi import LeKiwi

from lekiwi_drift.emulator.layouts import ARM_HALF_RANGE, ARM_JOINTS, ARM_MIDDLE, WHEELS
from lekiwi_drift.emulator.servo import RESOLUTION
from lekiwi_drift.robots.features import STATE_KEYS

_STEPS_PER_DEG = RESOLUTION / 360.0


def wheels_to_body(left: float, back: float, right: float) -> dict[str, float]:
    # LeRobot's methods are instance methods that only call the static `_raw_to_degps`; passing the
    # class as `self` runs its exact code without building a robot (which would need a port).
    return LeKiwi._wheel_raw_to_body(LeKiwi, left, back, right)


def body_to_wheels(x: float, y: float, theta: float) -> dict[str, int]:
    return LeKiwi._body_to_wheel_raw(LeKiwi, x, y, theta)


class SimFollower:
    """Owns the sim's action: each servo drive edits its part, and every edit is sent to the sim."""

    def __init__(self, sim):
        self.sim = sim  # a connected SimLeKiwi with clock="realtime"
        self.lock = threading.RLock()
        self.targets: dict[str, float] = {}  # arm joint name -> target shaft steps
        self.wheel_cmd = dict.fromkeys(WHEELS, 0.0)  # steps/s
        self._wheel_pos = dict.fromkeys(WHEELS, 2048.0)
        self._wheel_t = time.monotonic()
        self._state = self._read_state()
        for j in ARM_JOINTS:
            self.targets[j] = self.measured(j)

    # -- units ---------------------------------------------------------------------------------------
    @staticmethod
    def steps_to_unit(joint: str, steps: float) -> float:
        if joint == "gripper":
            lo = ARM_MIDDLE[joint] - ARM_HALF_RANGE[joint]
            return 100.0 * (steps - lo) / (2 * ARM_HALF_RANGE[joint])
        return (steps - ARM_MIDDLE[joint]) / _STEPS_PER_DEG

    @staticmethod
    def unit_to_steps(joint: str, value: float) -> float:
        if joint == "gripper":
            lo = ARM_MIDDLE[joint] - ARM_HALF_RANGE[joint]
            return lo + value / 100.0 * 2 * ARM_HALF_RANGE[joint]
        return ARM_MIDDLE[joint] + value * _STEPS_PER_DEG

    # -- sim I/O -------------------------------------------------------------------------------------
    def _read_state(self) -> dict[str, float]:
        # SimLeKiwi's lock keeps a physics step from running while we read qpos.
        with self.sim._lock:
            return self.sim.world.state()

    def refresh(self) -> dict[str, float]:
        with self.lock:
            self._state = self._read_state()
            self._integrate_wheels()
            return self._state

    def push(self) -> None:
        with self.lock:
            action = {f"arm_{j}.pos": self.steps_to_unit(j, self.targets[j]) for j in ARM_JOINTS}
            action |= wheels_to_body(*(self.wheel_cmd[w] for w in WHEELS))
            self.sim.send_action({k: float(action[k]) for k in STATE_KEYS})

    def measured(self, joint: str) -> float:
        return self.unit_to_steps(joint, self.refresh()[f"arm_{joint}.pos"])

    def wheel_speeds(self) -> dict[str, int]:
        s = self._state
        raw = body_to_wheels(s["x.vel"], s["y.vel"], s["theta.vel"])
        return {w: raw[f"base_{w}"] for w in WHEELS}

    def _integrate_wheels(self) -> None:
        now = time.monotonic()
        dt, self._wheel_t = now - self._wheel_t, now
        for w, v in self.wheel_speeds().items():
            self._wheel_pos[w] += v * dt

    def wheel_position(self, wheel: str) -> float:
        self.refresh()
        return self._wheel_pos[wheel]

    def drive(self, name: str, _start: float):
        """A DriveFactory for `layouts.follower_servos`: the shaft of servo `name` on this sim."""
        if name.startswith("base_"):
            return WheelDrive(self, name.removeprefix("base_"))
        return ArmJointDrive(self, name.removeprefix("arm_"))


class ArmJointDrive:
    def __init__(self, rig: SimFollower, joint: str):
        self.rig, self.joint = rig, joint
        self._last = (time.monotonic(), rig.measured(joint))
        self._vel = 0.0

    def actual(self) -> float:
        pos = self.rig.measured(self.joint)
        now = time.monotonic()
        t0, p0 = self._last
        if now - t0 > 0.01:  # velocity from successive readings, as the servo estimates it
            self._vel, self._last = (pos - p0) / (now - t0), (now, pos)
        return pos

    def velocity(self) -> float:
        self.actual()
        return 0.0 if abs(self._vel) < 1.0 else self._vel

    def load(self) -> float:
        return 0.0

    def hold(self, target: float, speed: float | None) -> None:
        self.rig.targets[self.joint] = float(target)
        self.rig.push()

    def spin(self, steps_per_s: float) -> None:
        # An arm joint in velocity mode is not part of the LeKiwi; hold where it is rather than guess.
        self.release()

    def release(self, actual: float | None = None) -> None:
        self.rig.targets[self.joint] = self.rig.measured(self.joint) if actual is None else float(actual)
        self.rig.push()


class WheelDrive:
    def __init__(self, rig: SimFollower, wheel: str):
        self.rig, self.wheel = rig, wheel

    def actual(self) -> float:
        return self.rig.wheel_position(self.wheel)

    def velocity(self) -> float:
        self.rig.refresh()
        return float(self.rig.wheel_speeds()[self.wheel])

    def load(self) -> float:
        return 0.0

    def hold(self, target: float, speed: float | None) -> None:
        self.spin(0.0)  # a wheel in position mode: not how LeKiwi drives; stop rather than move the base

    def spin(self, steps_per_s: float) -> None:
        self.rig.wheel_cmd[self.wheel] = float(steps_per_s)
        self.rig.push()

    def release(self, actual: float | None = None) -> None:
        self.spin(0.0)
