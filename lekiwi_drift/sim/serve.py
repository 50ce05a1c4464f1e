"""Build the simulated LeKiwi that `lekiwi-drift host --robot sim` serves, from the robot config and
the host's sim options (item, seed, clock, camera size)."""

from __future__ import annotations

import argparse

from lekiwi_drift.config.robot import ConfigError, RobotConfig


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None
    return w, h


def make_sim_robot(cfg: RobotConfig, args: argparse.Namespace | None = None):
    from lekiwi_drift.sim.config import SimConfig
    from lekiwi_drift.sim.robot import SimLeKiwi

    item = getattr(args, "item", None) or "salt_bottle"
    seed = getattr(args, "seed", None) or 0
    clock = getattr(args, "clock", None) or "realtime"
    size = getattr(args, "size", None)
    width, height = parse_size(size) if size else (cfg.cameras[0].width, cfg.cameras[0].height)
    try:
        sim_cfg = SimConfig(item=item, seed=seed, clock=clock, width=width, height=height,
                            camera_names=tuple(cfg.camera_names))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return SimLeKiwi(sim_cfg)
