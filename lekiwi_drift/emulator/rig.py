"""The whole emulated robot in one process: the MuJoCo LeKiwi, its follower bus (arm + wheels on the sim)
and an SO-101 leader bus, each on its own pty; plus the robot config that points LeRobot at them.

`lekiwi-drift sim buses` runs one; tests build one in-process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lekiwi_drift.emulator.bus import BusConfig, EmulatedBus
from lekiwi_drift.emulator.hands import SweepPlan, SweepResult, sweep
from lekiwi_drift.emulator.layouts import (
    ARM_HALF_RANGE,
    ARM_JOINTS,
    FOLLOWER_IDS,
    LEADER_IDS,
    follower_servos,
    leader_servos,
)

log = logging.getLogger(__name__)


@dataclass
class RigConfig:
    follower_link: str | None = None  # also expose the follower bus at this path (symlink to its pty)
    leader_link: str | None = None
    robot_id: str = "lekiwi_emu"
    leader_id: str = "leader_emu"
    calibration_dir: str = "calibration"
    item: str = "salt_bottle"
    seed: int = 0
    host_ports: tuple[int, int] = (5555, 5556)  # port_cmd, port_obs written into the config
    extra: dict = field(default_factory=dict)  # more top-level config fields to write (tests, operators)


class EmulatorRig:
    def __init__(self, config: RigConfig | None = None):
        self.config = config or RigConfig()
        self.sim = None
        self.follower_sim = None
        self.follower: EmulatedBus | None = None
        self.leader: EmulatedBus | None = None

    def start(self) -> EmulatorRig:
        from lekiwi_drift.emulator.sim_drive import SimFollower
        from lekiwi_drift.sim.config import SimConfig
        from lekiwi_drift.sim.robot import SimLeKiwi

        cfg = self.config
        self.sim = SimLeKiwi(SimConfig(item=cfg.item, seed=cfg.seed, clock="realtime", render=False))
        self.sim.connect()
        self.follower_sim = SimFollower(self.sim)
        self.follower = EmulatedBus(
            follower_servos(self.follower_sim.drive), BusConfig("follower", cfg.follower_link)
        ).start()
        self.leader = EmulatedBus(leader_servos(), BusConfig("leader", cfg.leader_link)).start()
        return self

    def close(self) -> None:
        for bus in (self.follower, self.leader):
            if bus is not None:
                bus.close()
        if self.sim is not None:
            self.sim.disconnect()
            self.sim = None

    def __enter__(self) -> EmulatorRig:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what an operator does ------------------------------------------------------------------------
    def bus(self, which: str) -> EmulatedBus:
        bus = {"follower": self.follower, "leader": self.leader}.get(which)
        if bus is None:
            raise ValueError(f"no bus {which!r}; the rig has 'follower' and 'leader'")
        return bus

    def sweep(self, which: str) -> SweepResult:
        """Move each arm joint (not wrist roll: LeRobot records it as a full turn) through its whole
        mechanical range, as LeRobot's calibration asks a person to. The sim arm's joints have mass and
        follow the hand through their actuators, so they get a slower sweep and a longer hold at the ends."""
        bus = self.bus(which)
        ids = FOLLOWER_IDS if which == "follower" else LEADER_IDS
        ranges = {}
        for name, sid in ids.items():
            joint = name.removeprefix("arm_")
            if joint not in ARM_JOINTS or joint == "wrist_roll":
                continue
            with bus.lock:
                middle = bus.servo(sid).drive.actual()
            ranges[sid] = (middle - ARM_HALF_RANGE[joint], middle + ARM_HALF_RANGE[joint])
        if which == "follower":
            return sweep(bus, SweepPlan(ranges, seconds_per_joint=1.6, dwell_s=0.5))
        return sweep(bus, SweepPlan(ranges))

    def base_pose(self) -> tuple[float, float, float]:
        with self.sim._lock:
            return self.sim.world.base_pose()

    def robot_config(self) -> dict:
        """A lekiwi.yaml for `lekiwi-drift calibrate|host|teleop` against these buses."""
        cfg = self.config
        return {
            "id": cfg.robot_id,
            "port": self.follower.port,
            "leader_port": self.leader.port,
            "leader_id": cfg.leader_id,
            "calibration_dir": str(cfg.calibration_dir),
            "cameras": [],
            "host": {
                "address": "127.0.0.1",
                "bind": "127.0.0.1",
                "port_cmd": cfg.host_ports[0],
                "port_obs": cfg.host_ports[1],
            },
        } | cfg.extra

    def write_config(self, path: str | Path) -> Path:
        path = Path(path)
        header = "# Written by `lekiwi-drift sim buses`: the emulated LeKiwi's buses (valid while it runs).\n"
        path.write_text(header + yaml.safe_dump(self.robot_config(), sort_keys=False))
        return path
