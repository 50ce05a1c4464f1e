"""Shared helpers for link tests: free loopback ports, configs, a host running in a thread or a process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from lekiwi_drift.config.robot import RobotConfig, load_config
from lekiwi_drift.link.host import RobotHost
from lekiwi_drift.link.ports import free_loopback_ports
from lekiwi_drift.robots.fake import FakeLeKiwi, FakeRobotConfig


def loopback_config(tmp_path: Path, size=(160, 120), **host_overrides) -> tuple[RobotConfig, Path]:
    """A config file on free loopback ports with small cameras (the wire is the same at any size)."""
    cmd, obs = free_loopback_ports(2)
    w, h = size
    data = {
        "cameras": [
            {"name": n, "device": f"/dev/video{i}", "width": w, "height": h}
            for i, n in enumerate(("front", "wrist", "top"))
        ],
        "host": {
            "address": "127.0.0.1",
            "bind": "127.0.0.1",
            "port_cmd": cmd,
            "port_obs": obs,
            "connect_timeout_s": 3,
            **host_overrides,
        },
    }
    path = tmp_path / f"lekiwi-{cmd}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path), path


def fake_for(cfg: RobotConfig) -> FakeLeKiwi:
    cam = cfg.cameras[0]
    robot = FakeLeKiwi(FakeRobotConfig(tuple(cfg.camera_names), cam.width, cam.height))
    robot.connect()
    return robot


@contextmanager
def host_thread(robot, cfg: RobotConfig):
    host = RobotHost(robot, cfg)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", host.run()), daemon=True)
    thread.start()
    try:
        yield host, result
    finally:
        host.stop()
        thread.join(timeout=5)
        host.close()


def start_host_process(config_path: Path, *extra: str, verbose: bool = False) -> subprocess.Popen:
    """`lekiwi-drift host --robot fake` in a process; `verbose`: debug logging (the fake's base stops and
    torque release, robots/fake.py)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lekiwi_drift.cli.main",
            *(["-v"] if verbose else []),
            "host",
            "--robot",
            "fake",
            "--config",
            str(config_path),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def wait_for_line(proc: subprocess.Popen, needle: str, timeout_s: float = 20.0, drain: bool = True) -> float:
    """Read the process output until a line contains `needle`; return the time it was seen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"host process exited with {proc.returncode} before {needle!r}")
            continue
        if needle in line:
            seen = time.monotonic()
            if drain:  # keep reading in the background so a chatty host never blocks on a full pipe
                threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return seen
    raise TimeoutError(f"{needle!r} not seen within {timeout_s} s")
