"""Pick the robot `lekiwi-drift host` serves: `lekiwi` (real), `fake`, or `sim` (MuJoCo)."""

from __future__ import annotations

import argparse

from lekiwi_drift.config.robot import RobotConfig

ROBOTS = ("lekiwi", "fake", "sim")


def make_robot(name: str, cfg: RobotConfig, args: argparse.Namespace | None = None):
    if name == "lekiwi":
        from lekiwi_drift.robots.lekiwi import make_lekiwi

        return make_lekiwi(cfg)
    if name == "fake":
        from lekiwi_drift.robots.fake import FakeLeKiwi, FakeRobotConfig

        cam = cfg.cameras[0]
        return FakeLeKiwi(
            FakeRobotConfig(
                camera_names=tuple(cfg.camera_names),
                width=cam.width,
                height=cam.height,
                release_on_exit=cfg.host.release_on_exit,
            )
        )
    if name == "sim":
        from lekiwi_drift.sim.serve import make_sim_robot

        return make_sim_robot(cfg, args)
    raise ValueError(f"unknown robot {name!r}; choose one of {ROBOTS}")
