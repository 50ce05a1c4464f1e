"""The simulated shop as a gymnasium env (`LeKiwiShopEnv`), the form LeRobot's `lerobot-eval` drives.

One episode: `reset(seed=s)` builds the fixed shop layout `scene` with reset noise drawn from `s`
(sim/scene.py: the trials' "one initial scene, reset noise" protocol); each `step(action)` applies one
9-D LeKiwi action (`STATE_KEYS` order and units: arm degrees, gripper 0-100, base m/s and deg/s) and
advances exactly 1/30 s of physics on the lockstep clock, so an episode is deterministic. The episode
ends (`terminated`, reward 1) when the sim's success detector scores the requested item as in the
basket, released and at rest; a time limit comes from `gym.make(..., max_episode_steps=N)`.

Observations use the keys LeRobot's `preprocess_observation` maps onto a policy's inputs:
`pixels/<camera>` (HxWx3 uint8) -> `observation.images.<camera>`, `agent_pos` (9 floats) ->
`observation.state`, the names our checkpoints were trained on. `info["is_success"]` is what
`lerobot-eval` counts; `task_description` is the language instruction it hands the policy.
`render()` returns the cameras of the latest observation side by side (no extra rendering).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lekiwi_drift.robots.features import (
    JOINT_LIMITS_DEG,
    MAX_ANGULAR_SPEED_DEG,
    MAX_LINEAR_SPEED,
    STATE_KEYS,
)
from lekiwi_drift.sim.config import CAMERA_NAMES, CONTROL_HZ, ITEMS, SimConfig

GYM_ID = "LeKiwiShop-v0"
DEFAULT_SCENE = 0  # the trials' scene_seed: every episode jitters this one layout


def task_description(item: str) -> str:
    """The instruction the demos, presets and trial protocols use for `item`."""
    return f"pick up the {item.replace('_', ' ')} and place it in the basket"


def action_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Per-key (low, high) of a LeKiwi action in STATE_KEYS order (the sim clips to the same limits)."""
    speed = {"x.vel": MAX_LINEAR_SPEED, "y.vel": MAX_LINEAR_SPEED, "theta.vel": MAX_ANGULAR_SPEED_DEG}
    lims = [JOINT_LIMITS_DEG[k] if k in JOINT_LIMITS_DEG else (-speed[k], speed[k]) for k in STATE_KEYS]
    low, high = zip(*lims)
    return np.array(low, np.float32), np.array(high, np.float32)


class LeKiwiShopEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": int(CONTROL_HZ)}

    def __init__(
        self,
        item: str = "salt_bottle",
        scene: int | None = DEFAULT_SCENE,
        width: int = 128,
        height: int = 96,
        cameras: tuple[str, ...] | list[str] = CAMERA_NAMES,
        render_mode: str | None = "rgb_array",
    ):
        if item not in ITEMS:
            raise ValueError(f"unknown item {item!r}; the shop has {', '.join(ITEMS)}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array'")
        self.item = item
        self.scene = scene
        self.render_mode = render_mode
        self.task_description = task_description(item)
        self.task = self.task_description  # LeRobot falls back to `task` when there is no description
        # SimConfig validates cameras and size; the sim itself is built on the first reset, so making an
        # env (LeRobot makes one just to read its spaces) costs no GL context.
        self._sim_config = SimConfig(
            item=item, scene=scene, clock="lockstep", width=width, height=height, camera_names=tuple(cameras)
        )
        self._sim = None
        self._last_frames: dict[str, np.ndarray] | None = None
        low, high = action_bounds()
        self.action_space = spaces.Box(low, high, dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Dict(
                    {c: spaces.Box(0, 255, (height, width, 3), np.uint8) for c in self._sim_config.camera_names}
                ),
                "agent_pos": spaces.Box(-np.inf, np.inf, (len(STATE_KEYS),), np.float32),
            }
        )

    # -- gymnasium API ----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        # An explicit seed is the jitter seed itself (so lerobot-eval's --seed picks the scenes, like the
        # trials' jitter_seed); a reset without one (autoreset) draws the next from the seeded generator.
        jitter = int(seed) if seed is not None else int(self.np_random.integers(2**31 - 1))
        sim = self._ensure_sim()
        sim.handle_request({"op": "reset", "item": self.item, "seed": jitter, "scene": self.scene})
        return self._observe(), {"is_success": False, "jitter_seed": jitter}

    def step(self, action):
        if self._sim is None:
            raise RuntimeError("LeKiwiShopEnv.step() before reset()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (len(STATE_KEYS),):
            raise ValueError(f"action must have {len(STATE_KEYS)} values ({', '.join(STATE_KEYS)}), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action has non-finite values: {a.tolist()}")
        self._sim.send_action(dict(zip(STATE_KEYS, a.tolist())))  # advances 1/30 s (lockstep)
        success = bool(self._sim.task.success)
        obs = self._observe()
        return obs, float(success), success, False, {"is_success": success}

    def render(self) -> np.ndarray:
        if self._last_frames is None:
            raise RuntimeError("LeKiwiShopEnv.render() before reset()")
        return np.concatenate([self._last_frames[c] for c in self._sim_config.camera_names], axis=1)

    def close(self) -> None:
        if self._sim is not None:
            self._sim.disconnect()
            self._sim = None

    @property
    def sim(self):
        """The lockstep `SimLeKiwi` behind the env (built on the first reset): privileged state for the
        scripted expert and for tests. Acting through it bypasses the episode's bookkeeping."""
        if self._sim is None:
            raise RuntimeError("LeKiwiShopEnv.sim before reset(): the sim is built on the first reset")
        return self._sim

    # -- internals --------------------------------------------------------------------------------------
    def _ensure_sim(self):
        if self._sim is None:
            from lekiwi_drift.sim.robot import SimLeKiwi  # imports MuJoCo (and picks its GL backend)

            sim = SimLeKiwi(self._sim_config)
            sim.connect()
            self._sim = sim
        return self._sim

    def _observe(self) -> dict[str, Any]:
        obs = self._sim.get_observation()
        self._last_frames = {c: obs[c] for c in self._sim_config.camera_names}
        return {
            "pixels": dict(self._last_frames),
            "agent_pos": np.array([obs[k] for k in STATE_KEYS], dtype=np.float32),
        }


def register_gym_env() -> None:
    """Register `LeKiwiShop-v0` with gymnasium (once per process; a second call changes nothing)."""
    if GYM_ID not in gym.registry:
        gym.register(id=GYM_ID, entry_point=LeKiwiShopEnv, disable_env_checker=True)
