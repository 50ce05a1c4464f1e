"""Closed-form inverse kinematics of the sim arm, used by the scripted expert.

The arm is built so the lift, elbow and wrist-flex axes are parallel and lie in the vertical plane
through the pan axis (no side offsets), so a grasp point plus a gripper pitch has an exact answer:
pan turns the plane to the point, a two-link solution (elbow up) places the wrist, wrist flex sets the
pitch, and wrist roll turns the fingers about the gripper's own axis. Angles follow the joint zero of
`model.py` (positive lift = forward, positive elbow/wrist = down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lekiwi_drift.robots.features import JOINT_LIMITS_DEG
from lekiwi_drift.sim.model import GEOM, Geometry

_LIMITS = np.radians(
    [
        JOINT_LIMITS_DEG[f"arm_{j}.pos"]
        for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
    ]
)
_MARGIN = np.radians(3.0)
# Gripper pitches tried in turn (elevation of the gripper axis; -90 deg = pointing straight down).
_PITCHES = np.radians([-90.0, -80.0, -70.0, -60.0, -50.0])


@dataclass(frozen=True)
class ArmSolution:
    joints: np.ndarray  # radians: pan, lift, elbow, wrist_flex, wrist_roll
    pitch: float  # gripper elevation actually used (rad)
    exact: bool  # False when the point was out of reach and the nearest pose was returned


def world_to_base(point: np.ndarray, base_pose: tuple[float, float, float]) -> np.ndarray:
    """A world point in the base frame (x ahead, y left, z up from the floor)."""
    bx, by, yaw = base_pose
    dx, dy = point[0] - bx, point[1] - by
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([c * dx + s * dy, -s * dx + c * dy, point[2]])


def wrap_half_turn(angle: float) -> float:
    """Wrap to [-pi/2, pi/2): two parallel fingers look the same after half a turn."""
    return float((angle + np.pi / 2) % np.pi - np.pi / 2)


def roll_for_finger_yaw(pan: float, finger_yaw: float) -> float:
    """Wrist roll that lines the fingers' closing axis up with finger_yaw (base frame, rad) when the
    gripper points down. At roll 0 the fingers close across the arm's plane (pan + 90 deg); roll turns
    them about the downward gripper axis, i.e. clockwise seen from above.

    Of the two equivalent rolls (half a turn apart) it returns the one in [-90 + 20, 90 + 20) degrees, not
    [-90, 90): a cylinder is grasped along the arm's reach (finger_yaw = pan), which asks for exactly
    90 deg, and on a window edge at 90 deg float rounding and the pan's small changes as the tip moves
    flipped the goal between +90 and -90 deg. The demos then showed 180-degree roll swings and a grasp
    roll that is +90 in one episode and -90 in the next, a choice no camera can explain to a policy."""
    return wrap_half_turn(pan + np.pi / 2 - finger_yaw - ROLL_WINDOW_SHIFT) + ROLL_WINDOW_SHIFT


ROLL_WINDOW_SHIFT = np.radians(20.0)  # keeps every grasp the scenes ask for (cylinders at 90 deg, the bar
# near 0 deg) away from the edge of the roll window; the joint's range is +-160 deg


def _planar(r: float, h: float, pitch: float, g: Geometry) -> tuple[np.ndarray, bool]:
    """Lift, elbow, wrist angles placing the grasp point at (r, h) from the lift axis with gripper
    elevation `pitch`. Elbow-up solution; out-of-reach targets get the nearest stretched pose."""
    l1, l2, l3 = g.upper_arm, g.forearm, g.wrist_to_tip
    wx, wz = r - l3 * np.cos(pitch), h - l3 * np.sin(pitch)
    d = np.hypot(wx, wz)
    lo, hi = abs(l1 - l2) + 1e-4, l1 + l2 - 1e-4
    exact = lo <= d <= hi
    d = float(np.clip(d, lo, hi))
    cos_inner = np.clip((d * d - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1.0, 1.0)
    inner = np.arccos(cos_inner)  # angle between the upper-arm and forearm directions
    elev_upper = np.arctan2(wz, wx) + np.arctan2(l2 * np.sin(inner), l1 + l2 * np.cos(inner))
    lift = np.pi / 2 - elev_upper
    elbow = inner - np.pi / 2
    wrist = -pitch - lift - elbow
    return np.array([lift, elbow, wrist]), exact


def solve(
    tip_base: np.ndarray, finger_yaw: float = 0.0, g: Geometry = GEOM, pitches: np.ndarray = _PITCHES
) -> ArmSolution:
    """Joint angles (rad) that put the grasp point at tip_base (base frame) with the gripper as close to
    pointing down as the joint limits allow, fingers closing along finger_yaw (base frame)."""
    x, y, z = tip_base
    pan = float(np.arctan2(y, x - g.arm_mount_x))
    r = float(np.hypot(x - g.arm_mount_x, y))
    h = float(z - g.shoulder_height)
    roll = roll_for_finger_yaw(pan, finger_yaw)
    best = None
    for pitch in pitches:
        planar, exact = _planar(r, h, pitch, g)
        joints = np.array([pan, *planar, roll])
        ok = bool(np.all(joints >= _LIMITS[:, 0] + _MARGIN) and np.all(joints <= _LIMITS[:, 1] - _MARGIN))
        if ok and exact:
            return ArmSolution(joints, float(pitch), True)
        if best is None:
            best = ArmSolution(np.clip(joints, _LIMITS[:, 0], _LIMITS[:, 1]), float(pitch), False)
    return best


def forward_tip(joints: np.ndarray, g: Geometry = GEOM) -> np.ndarray:
    """Grasp point (base frame) for joint angles (rad): the inverse of `solve`, for checks."""
    pan, lift, elbow, wrist = joints[:4]
    e1 = np.pi / 2 - lift
    e2 = e1 - np.pi / 2 - elbow
    e3 = e2 - wrist
    r = g.upper_arm * np.cos(e1) + g.forearm * np.cos(e2) + g.wrist_to_tip * np.cos(e3)
    h = g.upper_arm * np.sin(e1) + g.forearm * np.sin(e2) + g.wrist_to_tip * np.sin(e3)
    return np.array([g.arm_mount_x + r * np.cos(pan), r * np.sin(pan), g.shoulder_height + h])
