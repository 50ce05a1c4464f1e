"""The paper's protocol in the sim: one fixed scene with per-trial reset noise (sim/scene.py), and the
recovery demonstrations that perturb the executed action but record the expert's (teleop/noise.py)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from lekiwi_drift.robots.features import ARM_KEYS, BASE_KEYS
from lekiwi_drift.sim.scene import JITTER, parse_scene, sample_layout, scene_layout
from lekiwi_drift.teleop.noise import ActionNoise, NoiseConfig


def test_jitter_moves_items_and_robot_within_the_documented_bounds():
    base = sample_layout(0)
    moved = [scene_layout(seed, scene=0) for seed in range(200)]
    for lay in moved:
        assert lay.scene == 0 and lay.basket == base.basket
        assert abs(lay.robot.x - base.robot.x) <= JITTER.robot_xy + 1e-12
        assert abs(lay.robot.y - base.robot.y) <= JITTER.robot_xy + 1e-12
        assert abs(lay.robot.yaw - base.robot.yaw) <= np.radians(JITTER.robot_yaw_deg) + 1e-12
        for name, pose in lay.items.items():
            assert abs(pose.x - base.items[name].x) <= JITTER.item_xy + 1e-12
            assert abs(pose.y - base.items[name].y) <= JITTER.item_xy + 1e-12
    # Noise, not a constant offset: the positions spread over most of the allowed range.
    dx = np.array([lay.items["salt_bottle"].x - base.items["salt_bottle"].x for lay in moved])
    assert dx.max() > 0.8 * JITTER.item_xy and dx.min() < -0.8 * JITTER.item_xy
    assert scene_layout(3, scene=0) == scene_layout(3, scene=0)  # a seed is a reproducible reset
    assert scene_layout(3, scene=0) != scene_layout(4, scene=0)
    assert scene_layout(3) == sample_layout(3)  # scene None: the seed draws a whole layout, as before


def test_scene_argument():
    assert parse_scene("0") == 0 and parse_scene("random") is None
    with pytest.raises(ValueError, match="--scene"):
        parse_scene("kitchen")


def test_reset_request_carries_the_scene_and_the_header_reports_it():
    from lekiwi_drift.sim.config import SimConfig
    from lekiwi_drift.sim.robot import SimLeKiwi

    sim = SimLeKiwi(SimConfig(clock="lockstep", width=32, height=24, render=False))
    sim.connect()
    try:
        assert sim.handle_request({"op": "reset", "seed": 1001, "scene": 0})["scene"] == 0
        assert (sim.header_extras()["_scene"], sim.header_extras()["_seed"]) == (0, 1001)
        bottle = sim.world.item_pos("salt_bottle")[:2]
        expected = scene_layout(1001, scene=0).items["salt_bottle"]
        assert np.allclose(bottle, (expected.x, expected.y), atol=3e-3)
        assert sim.handle_request({"op": "reset", "seed": 1001})["scene"] == 0  # the scene is kept
        assert sim.handle_request({"op": "reset", "scene": None})["scene"] is None
    finally:
        sim.disconnect()


def test_expert_solves_jittered_scenes_under_recovery_noise():
    """The demos' recipe: scene 0, jitter seeds, DART noise on what is executed; the expert still finishes."""
    from lekiwi_drift.sim.config import SimConfig
    from lekiwi_drift.sim.expert import ScriptedExpert
    from lekiwi_drift.sim.robot import SimLeKiwi
    from lekiwi_drift.teleop.sources import clamp_action

    sim = SimLeKiwi(SimConfig(clock="lockstep", render=False, scene=0))
    sim.connect()
    try:
        for seed in (1000, 1001):
            sim.handle_request({"op": "reset", "seed": seed, "scene": 0})
            expert, noise = ScriptedExpert(sim), ActionNoise(NoiseConfig(), seed)
            for _ in range(40 * 30):
                sim.send_action(clamp_action(noise.perturb(clamp_action(expert.act()))))
                if sim.task.success:
                    break
            assert sim.task.success and noise.bursts >= 1
    finally:
        sim.disconnect()


def test_noise_comes_in_bursts_on_joints_and_base_never_on_the_gripper():
    noise = ActionNoise(NoiseConfig(), seed=3)
    clean = {k: 10.0 for k in (*ARM_KEYS, *BASE_KEYS)}
    diffs = []
    for _ in range(3000):
        out = noise.perturb(clean)
        diffs.append({k: out[k] - clean[k] for k in clean})
    perturbed = [d for d in diffs if any(abs(v) > 0 for v in d.values())]
    assert all(d["arm_gripper.pos"] == 0.0 for d in diffs)
    assert 0.1 < len(perturbed) / len(diffs) < 0.5  # bursts, not every tick
    assert noise.perturbed_ticks == len(perturbed) and noise.bursts > 30
    joint = np.array([d["arm_elbow_flex.pos"] for d in perturbed])
    assert 1.5 < joint.std() < 6.0  # about the documented 3 degrees
    assert ActionNoise(NoiseConfig(scale=0.0), 3).perturb(clean) == clean


class _Link:
    """A lockstep link in miniature: remembers what was executed; the expert header is a ramp."""

    def __init__(self):
        from types import SimpleNamespace

        self.sent, self.tick = [], 0
        self.stats = SimpleNamespace(received=0)

    def _obs(self):
        from lekiwi_drift.link.wire import Observation

        ramp = float(self.tick % 40)  # inside every joint's limits
        expert = {k: ramp for k in ARM_KEYS} | {"arm_gripper.pos": 0.0, "x.vel": 0.0, "y.vel": 0.0, "theta.vel": 0.0}
        return Observation(
            state=np.zeros(9, np.float32),
            images={},
            seq=self.tick,
            extras={"_expert": expert, "_success": False, "_sim_time": self.tick / 30},
        )

    def latest(self):
        return self._obs()

    def request(self, req):
        return {"ok": True, **req}

    def step(self, action):
        self.sent.append(dict(action))
        self.tick += 1
        return self._obs()


class _Recorder:
    root = "memory"

    def __init__(self):
        self.actions, self.num_episodes, self.total_frames = [], 0, 0

    @property
    def frames(self):  # frames in the open episode, as EpisodeRecorder reports them
        return len(self.actions)

    def add(self, state, images, action):
        self.actions.append(np.asarray(action).copy())

    def save_episode(self):
        self.num_episodes += 1
        return len(self.actions)

    def discard_episode(self):
        pass


def test_recorded_label_is_the_experts_action_and_the_robot_executes_the_perturbed_one():
    import io

    from lekiwi_drift.teleop.session import SessionConfig, TeleopSession
    from lekiwi_drift.teleop.sources import ScriptedSource, action_vector

    link, rec = _Link(), _Recorder()
    cfg = SessionConfig(lockstep=True, sim=True, episodes=1, episode_time_s=10.0, scene=0, expert_noise=1.0, seed=1000)
    TeleopSession(cfg, link, ScriptedSource(), recorder=rec, out=io.StringIO()).run()
    labels = np.stack(rec.actions)
    executed = np.stack([action_vector(a) for a in link.sent])
    ticks = np.arange(len(labels), dtype=np.float32) % 40
    elbow = ARM_KEYS.index("arm_elbow_flex.pos")
    assert np.allclose(labels[:, elbow], ticks)  # every label is the expert's ramp, untouched
    off = np.abs(executed[:, elbow] - ticks) > 1e-6
    assert 0.0 < off.mean() < 0.5  # the robot executed perturbed commands on some of the ticks
    assert np.allclose(executed[:, ARM_KEYS.index("arm_gripper.pos")], 0.0)  # never the gripper
