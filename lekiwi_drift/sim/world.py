"""The physics core of the simulated LeKiwi: one MuJoCo model + data, LeRobot units in and out.

No threads, no rendering: `SimLeKiwi` adds the clocks and cameras, the expert and the tests use this
directly. Everything here is deterministic: the same layout and the same actions give bit-identical
states (MuJoCo is deterministic on one machine with one thread).
"""

from __future__ import annotations

import numpy as np

from lekiwi_drift.robots.features import (
    ARM_KEYS,
    JOINT_LIMITS_DEG,
    MAX_ANGULAR_SPEED_DEG,
    MAX_LINEAR_SPEED,
    STATE_KEYS,
)
from lekiwi_drift.sim.config import CONTROL_HZ, ITEMS, SimConfig
from lekiwi_drift.sim.gl import import_mujoco
from lekiwi_drift.sim.model import GEOM, ITEM_SPECS, build_mjcf
from lekiwi_drift.sim.scene import SceneLayout, quat_yaw, scene_layout, yaw_quat

mujoco = import_mujoco()

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
FINGERS = ("finger_left", "finger_right")
BASE_JOINTS = ("base_x", "base_y", "base_yaw")
HOME_ACTION = {k: 0.0 for k in STATE_KEYS} | {"arm_gripper.pos": 50.0}
_SETTLE_S = 0.3  # after a reset the scene settles (items onto the shelf) before the clock starts at 0


def clip_action(action: dict[str, float]) -> dict[str, float]:
    """The action the robot can carry out: every key present, each value clipped to its limit.
    Missing keys raise KeyError (the host validates commands; a partial action is a bug)."""
    out = {}
    for key in ARM_KEYS:
        lo, hi = JOINT_LIMITS_DEG[key]
        out[key] = float(np.clip(float(action[key]), lo, hi))
    for key in ("x.vel", "y.vel"):
        out[key] = float(np.clip(float(action[key]), -MAX_LINEAR_SPEED, MAX_LINEAR_SPEED))
    out["theta.vel"] = float(np.clip(float(action["theta.vel"]), -MAX_ANGULAR_SPEED_DEG, MAX_ANGULAR_SPEED_DEG))
    return out


class SimWorld:
    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        cfg = self.config
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(cfg.width, cfg.height, cfg.physics_dt))
        self.model.opt.timestep = cfg.physics_dt
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._arm_qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in ARM_JOINTS])
        self._finger_qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in FINGERS])
        self._base_qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in BASE_JOINTS])
        self._base_dadr = np.array([m.jnt_dofadr[m.joint(j).id] for j in BASE_JOINTS])
        self._arm_act = np.array([m.actuator(j).id for j in ARM_JOINTS])
        self._finger_act = np.array([m.actuator(j).id for j in FINGERS])
        self._base_act = np.array([m.actuator(j).id for j in BASE_JOINTS])
        self._item_body = {n: m.body(n).id for n in ITEMS}
        self._item_qadr = {n: m.jnt_qposadr[m.joint(n).id] for n in ITEMS}
        self._item_dadr = {n: m.jnt_dofadr[m.joint(n).id] for n in ITEMS}
        self._item_geoms = {n: {g for g in range(m.ngeom) if m.geom_bodyid[g] == m.body(n).id} for n in ITEMS}
        self._finger_geoms = {m.geom(f).id for f in FINGERS}
        self.grasp_site = m.site("grasp").id
        self.basket_mocap = m.body_mocapid[m.body("basket").id]
        self._body_cmd = np.zeros(3)  # commanded base body velocity (vx, vy m/s; wz rad/s)
        self.applied = dict(HOME_ACTION)
        self.layout: SceneLayout = scene_layout(cfg.seed, cfg.scene)
        self.item = cfg.item
        self.reset(cfg.item, cfg.seed, cfg.scene)

    # -- scene --------------------------------------------------------------------------------------
    def reset(self, item: str, seed: int, scene: int | None = None) -> None:
        """A fresh scene: layout from the seed (or fixed scene `scene` with reset noise from the seed, see
        scene.py), arm at home, base still, then settle and zero the clock."""
        if item not in ITEMS:
            raise ValueError(f"unknown item {item!r}; choose one of {', '.join(ITEMS)}")
        m, d = self.model, self.data
        self.item, self.layout = item, scene_layout(int(seed), scene)
        mujoco.mj_resetData(m, d)
        lay = self.layout
        d.qpos[self._base_qadr] = (lay.robot.x, lay.robot.y, lay.robot.yaw)
        d.mocap_pos[self.basket_mocap] = (lay.basket.x, lay.basket.y, GEOM.shelf_height)
        for name, pose in lay.items.items():
            adr = self._item_qadr[name]
            z = GEOM.shelf_height + ITEM_SPECS[name].height / 2.0 + 0.001
            d.qpos[adr : adr + 3] = (pose.x, pose.y, z)
            d.qpos[adr + 3 : adr + 7] = yaw_quat(pose.yaw)
        self.apply(HOME_ACTION)
        d.qpos[self._arm_qadr] = d.ctrl[self._arm_act]
        d.qpos[self._finger_qadr] = d.ctrl[self._finger_act]
        mujoco.mj_forward(m, d)
        self.step(int(round(_SETTLE_S / m.opt.timestep)))
        d.time = 0.0

    # -- actions -------------------------------------------------------------------------------------
    def apply(self, action: dict[str, float]) -> dict[str, float]:
        """Set actuator targets from a 9-key action (LeRobot units); return the clipped action applied."""
        a = clip_action(action)
        d = self.data
        d.ctrl[self._arm_act] = np.radians([a[f"arm_{j}.pos"] for j in ARM_JOINTS])
        d.ctrl[self._finger_act] = GEOM.finger_travel * a["arm_gripper.pos"] / 100.0
        self._body_cmd = np.array([a["x.vel"], a["y.vel"], np.radians(a["theta.vel"])])
        self.applied = a
        self._update_base_ctrl()
        return dict(a)

    def stop_base(self) -> None:
        self._body_cmd = np.zeros(3)
        self.applied = self.applied | {"x.vel": 0.0, "y.vel": 0.0, "theta.vel": 0.0}
        self._update_base_ctrl()

    def _update_base_ctrl(self) -> None:
        # The base takes body-frame velocities but its slide joints are world-aligned: rotate by the
        # current heading (done every physics step so a turning base still drives straight in its frame).
        yaw = self.data.qpos[self._base_qadr[2]]
        c, s = np.cos(yaw), np.sin(yaw)
        vx, vy, wz = self._body_cmd
        self.data.ctrl[self._base_act] = (c * vx - s * vy, s * vx + c * vy, wz)

    def step(self, n: int) -> None:
        """Advance n physics steps."""
        m, d = self.model, self.data
        for _ in range(n):
            self._update_base_ctrl()
            mujoco.mj_step(m, d)

    def step_control_period(self) -> None:
        """Advance exactly one control period (1/30 s)."""
        self.step(self.config.substeps)

    @property
    def control_period(self) -> float:
        return 1.0 / CONTROL_HZ

    # -- state ---------------------------------------------------------------------------------------
    def state(self) -> dict[str, float]:
        """The 9 measured state values in LeRobot units (arm deg, gripper 0-100, base body velocity)."""
        d = self.data
        arm = np.degrees(d.qpos[self._arm_qadr])
        out = {f"arm_{j}.pos": float(v) for j, v in zip(ARM_JOINTS, arm)}
        out["arm_gripper.pos"] = float(100.0 * np.mean(d.qpos[self._finger_qadr]) / GEOM.finger_travel)
        yaw = d.qpos[self._base_qadr[2]]
        vx_w, vy_w, wz = d.qvel[self._base_dadr]
        c, s = np.cos(yaw), np.sin(yaw)
        out["x.vel"] = float(c * vx_w + s * vy_w)
        out["y.vel"] = float(-s * vx_w + c * vy_w)
        out["theta.vel"] = float(np.degrees(wz))
        return {k: out[k] for k in STATE_KEYS}

    # -- privileged state (expert, task, tests) --------------------------------------------------------
    def base_pose(self) -> tuple[float, float, float]:
        x, y, yaw = self.data.qpos[self._base_qadr]
        return float(x), float(y), float(yaw)

    def arm_qpos(self) -> np.ndarray:
        """Arm joint angles (rad), in ARM_JOINTS order."""
        return self.data.qpos[self._arm_qadr].copy()

    def item_pos(self, name: str) -> np.ndarray:
        return self.data.xpos[self._item_body[name]].copy()

    def item_quat(self, name: str) -> np.ndarray:
        adr = self._item_qadr[name]
        return self.data.qpos[adr + 3 : adr + 7].copy()

    def item_yaw(self, name: str) -> float:
        return quat_yaw(self.item_quat(name))

    def item_speed(self, name: str) -> tuple[float, float]:
        """Linear (m/s) and angular (rad/s) speed of an item."""
        adr = self._item_dadr[name]
        v = self.data.qvel[adr : adr + 6]
        return float(np.linalg.norm(v[:3])), float(np.linalg.norm(v[3:]))

    def basket_pos(self) -> np.ndarray:
        return self.data.mocap_pos[self.basket_mocap].copy()

    def grasp_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.grasp_site].copy()

    def item_touches_fingers(self, name: str) -> bool:
        geoms = self._item_geoms[name]
        d = self.data
        for i in range(d.ncon):
            g1, g2 = int(d.contact.geom1[i]), int(d.contact.geom2[i])
            if (g1 in geoms and g2 in self._finger_geoms) or (g2 in geoms and g1 in self._finger_geoms):
                return True
        return False

    def item_fingers_both(self, name: str) -> bool:
        """True when both fingers touch the item (a pinch)."""
        geoms = self._item_geoms[name]
        touching = set()
        d = self.data
        for i in range(d.ncon):
            g1, g2 = int(d.contact.geom1[i]), int(d.contact.geom2[i])
            if g1 in geoms and g2 in self._finger_geoms:
                touching.add(g2)
            elif g2 in geoms and g1 in self._finger_geoms:
                touching.add(g1)
        return len(touching) == 2

    @property
    def time(self) -> float:
        return float(self.data.time)
