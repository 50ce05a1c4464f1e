"""`--env.type=lekiwi_shop`: the simulated shop as a LeRobot env config (`lerobot-eval`, `lerobot-train`).

Importing this module registers the type with LeRobot's `EnvConfig` choice registry and the gymnasium id
`LeKiwiShop-v0`; the `lerobot_env_lekiwi_shop` plugin distribution (plugins/) imports it, and LeRobot's
scripts import that plugin through `register_third_party_plugins` before they parse their arguments.

LeRobot builds the vector env with the base class' `create_envs` (`gym.make(self.gym_id, **gym_kwargs)`
once per sub-env; `--eval.use_async_envs=true` puts each in its own process, which re-imports this module
when it unpickles the config and so registers the gym id there too). `features`/`features_map` give
the policy's feature names and shapes: `pixels/<camera>` -> `observation.images.<camera>` and
`agent_pos` -> `observation.state`, as the shipped checkpoints expect them (three 128x96 cameras).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig
from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE

from lekiwi_drift.robots.features import STATE_KEYS
from lekiwi_drift.sim.config import CAMERA_NAMES, CONTROL_HZ, ITEMS
from lekiwi_drift.sim.gym_env import DEFAULT_SCENE, GYM_ID, register_gym_env

ENV_TYPE = "lekiwi_shop"


@EnvConfig.register_subclass(ENV_TYPE)
@dataclass
class LeKiwiShopEnvConfig(EnvConfig):
    task: str | None = "salt_bottle"  # the item to put in the basket: salt_bottle, matcha_tin, chocolate_bar
    fps: int = int(CONTROL_HZ)
    episode_length: int = 1200  # control steps (1/30 s each): 40 s, the sim trials' time limit
    # The fixed layout every episode jitters (the trials' scene_seed); the episode's seed is the jitter
    # seed. None: every seed draws a whole new layout instead.
    scene: int | None = DEFAULT_SCENE
    observation_width: int = 128  # the shipped checkpoints' camera size (the demos were recorded at it)
    observation_height: int = 96
    cameras: list[str] = field(default_factory=lambda: list(CAMERA_NAMES))
    render_mode: str = "rgb_array"

    def __post_init__(self) -> None:
        if self.task not in ITEMS:
            raise ValueError(f"--env.task={self.task!r} is not an item of the shop; choose one of {', '.join(ITEMS)}")
        unknown = [c for c in self.cameras if c not in CAMERA_NAMES]
        if unknown or not self.cameras:
            raise ValueError(f"--env.cameras={self.cameras}: choose from {', '.join(CAMERA_NAMES)}")
        if self.episode_length < 1:
            raise ValueError(f"--env.episode_length={self.episode_length} must be at least 1 step")
        if self.fps != int(CONTROL_HZ):
            raise ValueError(f"--env.fps={self.fps}: the sim steps at {int(CONTROL_HZ)} Hz, one action per 1/30 s")
        # Derived from the fields above (a user's --env.features would be overwritten: they must agree
        # with what the env returns).
        hw3 = (self.observation_height, self.observation_width, 3)
        self.features = {
            ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(len(STATE_KEYS),)),
            "agent_pos": PolicyFeature(type=FeatureType.STATE, shape=(len(STATE_KEYS),)),
            **{f"pixels/{c}": PolicyFeature(type=FeatureType.VISUAL, shape=hw3) for c in self.cameras},
        }
        self.features_map = {
            ACTION: ACTION,
            "agent_pos": OBS_STATE,
            **{f"pixels/{c}": f"{OBS_IMAGES}.{c}" for c in self.cameras},
        }

    @property
    def package_name(self) -> str:
        # What LeRobot imports when the gym id is missing; importing it registers the id.
        return "lekiwi_drift.sim.lerobot_env"

    @property
    def gym_id(self) -> str:
        return GYM_ID

    @property
    def gym_kwargs(self) -> dict:
        return {
            "item": self.task,
            "scene": self.scene,
            "width": self.observation_width,
            "height": self.observation_height,
            "cameras": tuple(self.cameras),
            "render_mode": self.render_mode,
            "max_episode_steps": self.episode_length,
        }


register_gym_env()
