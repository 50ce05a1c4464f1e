"""A scripted, privileged expert for the shopping task.

It reads the true sim state (base pose, item pose, basket position, grasp point) but acts only through
the same 9-D action a policy sends each 1/30 s tick: arm joint positions (deg), gripper (0-100) and base
body velocities. Its plan, one phase after another:

  approach   drive in front of the item (arm stowed high, fingers open)
  pregrasp   grasp point above the item, fingers turned across it
  descend    straight down to the grasp height
  close      close the fingers and wait for the grip to build up
  lift       straight up until the item clears the basket rim
  back_off   reverse from the shelf with the item held (nothing is behind it)
  transport  drive sideways to the basket
  forward    drive up to the shelf again; the item passes over the basket's front wall
  over       move the item over the basket centre
  lower      lower it to just above the basket floor
  release    open the fingers
  retreat    lift the empty gripper, then stow and stand still

The arm's grasp-point target moves at a capped speed (smooth joint commands, as a teleoperator would
give) and goes through the closed-form IK of kinematics.py. A grasp that comes up empty goes back to
`pregrasp` (at most MAX_REGRASPS times).
"""

from __future__ import annotations

import numpy as np

from lekiwi_drift.robots.features import MAX_ANGULAR_SPEED_DEG, MAX_LINEAR_SPEED
from lekiwi_drift.sim import kinematics
from lekiwi_drift.sim.config import CONTROL_HZ
from lekiwi_drift.sim.model import GEOM, ITEM_SPECS
from lekiwi_drift.sim.world import ARM_JOINTS, SimWorld

DT = 1.0 / CONTROL_HZ
STANDOFF_X = GEOM.shelf_front - GEOM.base_radius - 0.02  # base centre when working at the shelf
BACK_OFF_X = STANDOFF_X - 0.15  # base centre while carrying sideways: the item is clear of the shelf
STOW_TIP = np.array([GEOM.arm_mount_x + 0.12, 0.0, 0.23])  # base frame: high and close
CARRY_REACH = 0.14  # grasp point ahead of the pan axis while carrying
TIP_SPEED = 0.25  # m/s, cap on the grasp-point target's motion
ROLL_SPEED = np.radians(240.0)
MAX_REGRASPS = 2
RIM_CLEARANCE = 0.03  # item bottom above the basket rim while passing over it
PLACE_CLEARANCE = 0.01  # item bottom above the basket floor when let go
# Pre-grasp: grasp point this far above the grasp height. 0.10 puts the open fingers ~6 cm above the
# salt bottle's cap, so a learned policy that copies the approach a little off still clears it (0.06
# left 2 cm, and learned policies clipped the bottle on the way down).
PREGRASP_CLEARANCE = 0.10


class ScriptedExpert:
    def __init__(self, sim):
        """`sim`: a SimLeKiwi or a SimWorld (anything with the world's privileged accessors)."""
        self.world: SimWorld = getattr(sim, "world", sim)
        self.reset()

    def reset(self) -> None:
        self.phase = "approach"
        self._phase_time = 0.0
        self._tip = None  # commanded grasp point, base frame
        self._roll = None  # commanded wrist roll (rad)
        self._finger_yaw = 0.0  # base frame, fixed at pregrasp so the grasp stays put
        self._grasp_tip = None  # world frame grasp point, fixed at pregrasp
        self._base_goal = None
        self._regrasps = 0
        self.done = False

    # -- one tick -------------------------------------------------------------------------------------
    def act(self, observation: dict | None = None) -> dict[str, float]:
        """The next 9-key action. `observation` is accepted for API symmetry with a policy; the
        expert reads the true sim state instead."""
        w = self.world
        item = w.item
        spec = ITEM_SPECS[item]
        base = w.base_pose()
        item_pos = w.item_pos(item)
        basket = w.basket_pos()
        rim_z = basket[2] + GEOM.basket_floor + GEOM.basket_height
        carry_z = rim_z + RIM_CLEARANCE + spec.grasp_height
        self._phase_time += DT
        if self._tip is None:
            self._tip = kinematics.forward_tip(w.arm_qpos())
            self._roll = float(w.arm_qpos()[4])

        gripper = 100.0
        tip_goal = STOW_TIP.copy()
        phase = self.phase
        if phase == "approach":
            self._base_goal = (STANDOFF_X, float(item_pos[1]), 0.0)
            if self._base_at_goal(base, 0.008, 2.0) and self._tip_reached(tip_goal, base, 0.02):
                self._enter("pregrasp")
                self._plan_grasp(item, base)
        elif phase == "pregrasp":
            tip_goal = self._to_base(self._grasp_tip + [0.0, 0.0, PREGRASP_CLEARANCE], base)
            if self._tip_reached(tip_goal, base, 0.008) and abs(self._roll - self._roll_goal(tip_goal)) < 0.05:
                self._enter("descend")
        elif phase == "descend":
            tip_goal = self._to_base(self._grasp_tip, base)
            if self._tip_reached(tip_goal, base, 0.006) or self._phase_time > 3.0:
                self._enter("close")
        elif phase == "close":
            tip_goal = self._to_base(self._grasp_tip, base)
            gripper = 0.0
            if self._phase_time > 0.5:
                self._enter("lift")
        elif phase == "lift":
            gripper = 0.0
            tip_goal = self._to_base(np.array([*self._grasp_tip[:2], carry_z]), base)
            if self._phase_time > 0.4 and not w.item_fingers_both(item):
                self._retry(item, base)
            elif self._tip_reached(tip_goal, base, 0.01):
                self._enter("back_off")
        elif phase in ("back_off", "transport", "forward"):
            gripper = 0.0
            tip_goal = np.array([GEOM.arm_mount_x + CARRY_REACH, 0.0, carry_z])
            goals = {
                "back_off": (BACK_OFF_X, float(self._base_goal[1])),
                "transport": (BACK_OFF_X, float(basket[1])),
                "forward": (STANDOFF_X, float(basket[1])),
            }
            self._base_goal = (*goals[phase], 0.0)
            if not w.item_fingers_both(item):
                self._retry(item, base)
            elif self._base_at_goal(base, 0.01 if phase != "forward" else 0.006, 2.0):
                self._enter({"back_off": "transport", "transport": "forward", "forward": "over"}[phase])
        elif phase == "over":
            gripper = 0.0
            tip_goal = self._to_base(np.array([basket[0], basket[1], carry_z]), base)
            if self._tip_reached(tip_goal, base, 0.01):
                self._enter("lower")
        elif phase == "lower":
            gripper = 0.0
            low = basket[2] + GEOM.basket_floor + PLACE_CLEARANCE + spec.grasp_height
            tip_goal = self._to_base(np.array([basket[0], basket[1], low]), base)
            if self._tip_reached(tip_goal, base, 0.008) or self._phase_time > 3.0:
                self._enter("release")
        elif phase == "release":
            tip_goal = self._tip.copy()
            if self._phase_time > 0.4:
                self._enter("retreat")
        elif phase == "retreat":
            tip_goal = self._tip.copy()
            tip_goal[2] = max(tip_goal[2], rim_z + 0.06)
            if self._tip[2] >= rim_z + 0.06 - 1e-3:
                self._enter("done")
        elif phase == "done":
            self.done = True
            tip_goal = STOW_TIP.copy()

        return self._command(base, tip_goal, gripper)

    # -- helpers ---------------------------------------------------------------------------------------
    def _enter(self, phase: str) -> None:
        self.phase = phase
        self._phase_time = 0.0

    def _retry(self, item: str, base) -> None:
        if self._regrasps >= MAX_REGRASPS:
            self._enter("done")
            return
        self._regrasps += 1
        self._base_goal = (STANDOFF_X, float(self.world.item_pos(item)[1]), 0.0)
        self._enter("approach")

    def _plan_grasp(self, item: str, base) -> None:
        spec = ITEM_SPECS[item]
        p = self.world.item_pos(item)
        bottom = GEOM.shelf_height
        self._grasp_tip = np.array([p[0], p[1], bottom + spec.grasp_height])
        tip_b = self._to_base(self._grasp_tip, base)
        pan = np.arctan2(tip_b[1], tip_b[0] - GEOM.arm_mount_x)
        if item == "chocolate_bar":
            # Close across the bar's short side (its local y axis).
            self._finger_yaw = self.world.item_yaw(item) + np.pi / 2 - base[2]
        else:
            # Cylinders: close along the arm's reach, so the open fingers never sweep the neighbours.
            self._finger_yaw = pan

    def _roll_goal(self, tip_b: np.ndarray) -> float:
        pan = np.arctan2(tip_b[1], tip_b[0] - GEOM.arm_mount_x)
        return kinematics.roll_for_finger_yaw(pan, self._finger_yaw)

    @staticmethod
    def _to_base(point_world, base) -> np.ndarray:
        return kinematics.world_to_base(np.asarray(point_world, dtype=float), base)

    def _tip_reached(self, tip_goal_b: np.ndarray, base, tol: float) -> bool:
        """The commanded target has arrived at the goal and the real grasp point followed it."""
        actual_b = self._to_base(self.world.grasp_pos(), base)
        return np.linalg.norm(self._tip - tip_goal_b) < 1e-4 and np.linalg.norm(actual_b - tip_goal_b) < tol

    def _base_at_goal(self, base, tol: float, tol_deg: float) -> bool:
        gx, gy, gyaw = self._base_goal
        return np.hypot(gx - base[0], gy - base[1]) < tol and abs(_wrap(gyaw - base[2])) < np.radians(tol_deg)

    def _base_velocity(self, base) -> tuple[float, float, float]:
        if self._base_goal is None:
            return 0.0, 0.0, 0.0
        gx, gy, gyaw = self._base_goal
        ex, ey = gx - base[0], gy - base[1]
        v = 2.5 * np.array([ex, ey])
        speed = np.linalg.norm(v)
        cap = 0.9 * MAX_LINEAR_SPEED
        if speed > cap:
            v *= cap / speed
        c, s = np.cos(base[2]), np.sin(base[2])
        vx, vy = c * v[0] + s * v[1], -s * v[0] + c * v[1]
        wz = np.clip(np.degrees(3.0 * _wrap(gyaw - base[2])), -0.9 * MAX_ANGULAR_SPEED_DEG, 0.9 * MAX_ANGULAR_SPEED_DEG)
        return float(vx), float(vy), float(wz)

    def _command(self, base, tip_goal: np.ndarray, gripper: float) -> dict[str, float]:
        step = tip_goal - self._tip
        dist = np.linalg.norm(step)
        max_step = TIP_SPEED * DT
        self._tip = tip_goal.copy() if dist <= max_step else self._tip + step * (max_step / dist)
        sol = kinematics.solve(self._tip, self._finger_yaw)
        roll_goal = sol.joints[4] if self.phase not in ("approach", "done") else self._roll
        self._roll += float(np.clip(roll_goal - self._roll, -ROLL_SPEED * DT, ROLL_SPEED * DT))
        joints = np.degrees(sol.joints)
        joints[4] = np.degrees(self._roll)
        vx, vy, wz = self._base_velocity(base)
        action = {f"arm_{j}.pos": float(q) for j, q in zip(ARM_JOINTS, joints)}
        action["arm_gripper.pos"] = float(gripper)
        action.update({"x.vel": vx, "y.vel": vy, "theta.vel": wz})
        return action


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)
