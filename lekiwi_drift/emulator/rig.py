"""The whole emulated robot in one process: the MuJoCo LeKiwi, its follower bus (arm + wheels on the sim)
and an SO-101 leader bus, each on its own pty; plus the robot config that points LeRobot at them.

`lekiwi-drift sim buses` runs one; tests build one in-process.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lekiwi_drift.emulator.bus import BusConfig, EmulatedBus
from lekiwi_drift.emulator.hands import Playback, SweepPlan, SweepResult, play, sweep, wave_value
from lekiwi_drift.emulator.layouts import (
    ARM_HALF_RANGE,
    ARM_JOINTS,
    ARM_MIDDLE,
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
    cameras: tuple[str, ...] = ()  # sim cameras to render and serve to LeRobot (front, wrist, top)
    camera_size: tuple[int, int] = (320, 240)  # width, height
    camera_fps: float = 15.0
    frames_dir: str = "/dev/shm"  # where the shared frame files live (emulator/camera.py)
    # Servos keep their calibration in EEPROM across power cycles; an emulator restart is a fresh set of
    # factory servos. True: write <calibration_dir>/<id>.json into them at start, as if they were the
    # servos that file was made on.
    restore_calibration: bool = True


class EmulatorRig:
    def __init__(self, config: RigConfig | None = None):
        self.config = config or RigConfig()
        self.sim = None
        self.follower_sim = None
        self.follower: EmulatedBus | None = None
        self.leader: EmulatedBus | None = None
        self.slots: dict = {}  # camera name -> FrameSlot
        self.leader_playback: Playback | None = None
        self.restored: dict[str, str | None] = {}  # bus name -> calibration file written into its servos
        self._publish_stop = threading.Event()
        self._publisher: threading.Thread | None = None

    def start(self) -> EmulatorRig:
        from lekiwi_drift.emulator.sim_drive import SimFollower
        from lekiwi_drift.sim.config import SimConfig
        from lekiwi_drift.sim.robot import SimLeKiwi

        cfg = self.config
        w, h = cfg.camera_size
        sim_cfg = SimConfig(item=cfg.item, seed=cfg.seed, clock="realtime", render=bool(cfg.cameras))
        if cfg.cameras:
            sim_cfg = SimConfig(
                item=cfg.item, seed=cfg.seed, clock="realtime", camera_names=tuple(cfg.cameras), width=w, height=h,
                camera_fps=cfg.camera_fps,
            )  # fmt: skip
        self.sim = SimLeKiwi(sim_cfg)
        self.sim.connect()
        if cfg.cameras:
            from lekiwi_drift.emulator.camera import FrameSlot

            for name in cfg.cameras:
                path = Path(cfg.frames_dir) / f"lekiwi_emu_{os.getpid()}_{name}"
                self.slots[name] = FrameSlot(path, h, w, create=True)
            self._publisher = threading.Thread(target=self._publish, name="emu-cameras", daemon=True)
            self._publisher.start()
        self.follower_sim = SimFollower(self.sim)
        self.follower = EmulatedBus(
            follower_servos(self.follower_sim.drive), BusConfig("follower", cfg.follower_link)
        ).start()
        self.leader = EmulatedBus(leader_servos(), BusConfig("leader", cfg.leader_link)).start()
        if cfg.restore_calibration:
            for bus, device_id in ((self.follower, cfg.robot_id), (self.leader, cfg.leader_id)):
                self.restored[bus.config.name] = self._restore(bus, Path(cfg.calibration_dir) / f"{device_id}.json")
        return self

    @staticmethod
    def _restore(bus: EmulatedBus, path: Path) -> str | None:
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        with bus.lock:
            for name, c in data.items():
                try:
                    servo = bus.servo(int(c["id"]))
                    servo.set("Lock", 0)
                    servo.set("Homing_Offset", int(c["homing_offset"]))
                    servo.set("Min_Position_Limit", int(c["range_min"]))
                    servo.set("Max_Position_Limit", int(c["range_max"]))
                    servo.set("Lock", 1)
                except (KeyError, TypeError, ValueError) as exc:
                    raise ValueError(f"{path}: entry {name!r} is not a LeRobot motor calibration ({exc})") from exc
        return str(path)

    def _publish(self) -> None:
        """Copy the sim's newest frames into the shared slots, at the cameras' rate."""
        period = 1.0 / self.config.camera_fps
        while not self._publish_stop.wait(period):
            obs = self.sim.get_observation()
            for name, slot in self.slots.items():
                slot.write(obs[name])

    def close(self) -> None:
        self._publish_stop.set()
        if self._publisher is not None:
            self._publisher.join(timeout=5.0)
        for slot in self.slots.values():
            slot.close()
            slot.path.unlink(missing_ok=True)
        self.slots = {}
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

    def play_leader(self, script: str = "wave") -> Playback:
        """A demonstrator moves the leader along `hands.WAVE` (LeRobot degrees / gripper percent, for a
        leader calibrated around `ARM_MIDDLE`); "stop" stops it where it is."""
        if self.leader_playback is not None:
            self.leader_playback.stop.set()
            self.leader_playback = None
        if script == "stop":
            return Playback()
        if script != "wave":
            raise ValueError(f"unknown leader script {script!r}; use 'wave' or 'stop'")
        steps_per_deg = 4096 / 360

        def path(t: float) -> dict[int, float]:
            out = {}
            for joint, sid in LEADER_IDS.items():
                value = wave_value(joint, t)
                if joint == "gripper":
                    lo = ARM_MIDDLE[joint] - ARM_HALF_RANGE[joint]
                    out[sid] = lo + value / 100 * 2 * ARM_HALF_RANGE[joint]
                else:
                    out[sid] = ARM_MIDDLE[joint] + value * steps_per_deg
            return out

        self.leader_playback = play(self.leader, path)
        return self.leader_playback

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
            "cameras": [
                {
                    "name": name,
                    "device": f"emu:{slot.path}",
                    "width": cfg.camera_size[0],
                    "height": cfg.camera_size[1],
                    "fps": int(cfg.camera_fps),
                }
                for name, slot in self.slots.items()
            ],
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
