"""Which servos sit on which bus: the LeKiwi follower (arm 1-6, wheels 7-9) and the SO-101 leader (1-6),
with IDs and order as LeRobot's `LeKiwi` and `SO101Leader` expect them.

A servo's shaft starts where an assembled arm's would sit at rest: not at the encoder's middle, because
a real arm's mid-range is wherever the horn was mounted. That makes LeRobot's calibration compute
non-zero homing offsets, as it does on a real arm.
"""

from __future__ import annotations

from collections.abc import Callable

from lekiwi_drift.emulator.drive import Drive, IdealDrive
from lekiwi_drift.emulator.servo import Servo

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
WHEELS = ("left_wheel", "back_wheel", "right_wheel")
FOLLOWER_IDS = {f"arm_{j}": i for i, j in enumerate(ARM_JOINTS, start=1)} | {
    f"base_{w}": i for i, w in enumerate(WHEELS, start=7)
}
LEADER_IDS = {j: i for i, j in enumerate(ARM_JOINTS, start=1)}

# Shaft position (encoder steps) of each arm joint with the arm at the middle of its range, and the
# half-width of its mechanical range: where a hand can take it during calibration.
ARM_MIDDLE = {"shoulder_pan": 1980, "shoulder_lift": 2210, "elbow_flex": 1870, "wrist_flex": 2105}
ARM_MIDDLE |= {"wrist_roll": 2048, "gripper": 1650}
ARM_HALF_RANGE = {"shoulder_pan": 1250, "shoulder_lift": 1140, "elbow_flex": 1140, "wrist_flex": 1140}
ARM_HALF_RANGE |= {"wrist_roll": 2047, "gripper": 700}

DriveFactory = Callable[[str, float], Drive]


def _ideal(_name: str, actual: float) -> Drive:
    return IdealDrive(actual)


def follower_servos(drive: DriveFactory = _ideal) -> list[Servo]:
    """Nine STS3215s of a LeKiwi; `drive(name, start_steps)` builds each shaft's drive."""
    servos = []
    for name, sid in FOLLOWER_IDS.items():
        start = ARM_MIDDLE[name.removeprefix("arm_")] if name.startswith("arm_") else 2048
        servos.append(Servo(sid, drive(name, float(start))))
    return servos


def leader_servos(drive: DriveFactory = _ideal) -> list[Servo]:
    """Six STS3215s of an SO-101 leader arm."""
    return [Servo(sid, drive(name, float(ARM_MIDDLE[name]))) for name, sid in LEADER_IDS.items()]
