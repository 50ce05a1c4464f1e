"""Build the simulated LeKiwi that `lekiwi-drift host --robot sim` serves, from the robot config and
the host's sim options (item, seed, clock, camera size, expert)."""

from __future__ import annotations

import argparse
import functools

from lekiwi_drift.config.robot import ConfigError, RobotConfig


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None
    return w, h


def build_sim_robot(
    cfg: RobotConfig,
    item: str = "salt_bottle",
    seed: int = 0,
    clock: str = "realtime",
    size: str | tuple[int, int] | None = None,
    expert: bool = False,
    scene: int | None = None,
):
    """A SimLeKiwi (an `ExpertSimLeKiwi` when `expert`) with the config's camera names.
    `size`: "WxH" or (w, h); None takes the config's first camera size."""
    from lekiwi_drift.sim.config import SimConfig

    if isinstance(size, str):
        size = parse_size(size)
    width, height = size if size else (cfg.cameras[0].width, cfg.cameras[0].height)
    try:
        sim_cfg = SimConfig(
            item=item,
            seed=seed,
            scene=scene,
            clock=clock,
            width=width,
            height=height,
            camera_names=tuple(cfg.camera_names),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if expert:
        return _expert_class()(sim_cfg)
    from lekiwi_drift.sim.robot import SimLeKiwi

    return SimLeKiwi(sim_cfg)


def make_sim_robot(cfg: RobotConfig, args: argparse.Namespace | None = None):
    return build_sim_robot(
        cfg,
        item=getattr(args, "item", None) or "salt_bottle",
        seed=getattr(args, "seed", None) or 0,
        clock=getattr(args, "clock", None) or "realtime",
        size=getattr(args, "size", None),
        expert=bool(getattr(args, "expert", False)),
        scene=getattr(args, "scene", None),
    )


@functools.cache
def _expert_class():
    """Defined lazily: importing SimLeKiwi imports MuJoCo, which this module must not do at import time."""
    from lekiwi_drift.robots.features import STATE_KEYS
    from lekiwi_drift.sim.expert import ScriptedExpert
    from lekiwi_drift.sim.robot import SimLeKiwi

    class ExpertSimLeKiwi(SimLeKiwi):
        """A SimLeKiwi that also publishes what the scripted expert would do now, as the header key
        `_expert` ({9 action keys: float}). The expert needs privileged sim state, which only the host
        has; a client (`lekiwi-drift teleop --teleop scripted`) sends it back as its own action, through
        the same safety clamp and link a policy uses, so a recording sees exactly the policy's path.

        The expert advances its plan once per published observation: the host captures one observation
        per control tick (real time) or per applied command/request (lockstep), and calls
        `header_extras()` once per capture."""

        def __init__(self, config):
            super().__init__(config)
            self.expert = ScriptedExpert(self)

        def header_extras(self) -> dict:
            extras = super().header_extras()
            with self._lock:  # the real-time physics thread moves the world meanwhile
                action = self.expert.act()
            extras["_expert"] = {k: round(float(action[k]), 6) for k in STATE_KEYS}
            extras["_expert_phase"] = self.expert.phase
            return extras

        def handle_request(self, request: dict) -> dict:
            reply = super().handle_request(request)
            with self._lock:
                self.expert.reset()
            return reply

    return ExpertSimLeKiwi
