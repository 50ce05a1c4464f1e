"""Both directions against LeRobot 0.6.1's own LeKiwi code, over real sockets on 127.0.0.1."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lekiwi_drift.link.client import RobotLink
from lekiwi_drift.robots.features import STATE_KEYS
from tests.link_helpers import fake_for, host_thread, loopback_config, wait_for_line


def stock_client(cfg):
    from lerobot.cameras.opencv import OpenCVCameraConfig
    from lerobot.robots.lekiwi import LeKiwiClient, LeKiwiClientConfig

    cams = {
        c.name: OpenCVCameraConfig(index_or_path=c.device, width=c.width, height=c.height, fps=30) for c in cfg.cameras
    }
    return LeKiwiClient(
        LeKiwiClientConfig(
            remote_ip="127.0.0.1", port_zmq_cmd=cfg.host.port_cmd, port_zmq_observations=cfg.host.port_obs, cameras=cams
        )
    )


def test_our_host_serves_a_stock_lekiwi_client(tmp_path):
    cfg, _ = loopback_config(tmp_path)
    robot = fake_for(cfg)
    with host_thread(robot, cfg):
        client = stock_client(cfg)
        client.connect()
        try:
            deadline = time.monotonic() + 5
            obs = client.get_observation()
            while not all(n in obs for n in ("front", "wrist", "top")) and time.monotonic() < deadline:
                obs = client.get_observation()
            for name in ("front", "wrist", "top"):
                assert obs[name].shape == (120, 160, 3) and obs[name].dtype == np.uint8
            assert all(k in obs for k in STATE_KEYS)
            # Our extra `_` header keys must not leak into a stock client's state.
            assert not any(k.startswith("_") for k in obs)
            action = {k: 0.0 for k in STATE_KEYS} | {"arm_wrist_flex.pos": 12.5, "x.vel": 0.1}
            client.send_action(action)
            deadline = time.monotonic() + 3
            while not robot.events.actions and time.monotonic() < deadline:
                time.sleep(0.02)
            assert robot.events.actions[-1][1]["arm_wrist_flex.pos"] == pytest.approx(12.5)
            assert robot.events.actions[-1][1]["x.vel"] == pytest.approx(0.1)
        finally:
            client.disconnect()


def test_our_client_works_against_stock_lerobot_host(tmp_path):
    cfg, _ = loopback_config(tmp_path)
    # The stock host's default config has two cameras (front, wrist); our link expects what it is told.
    runner = Path(__file__).with_name("stock_host_runner.py")
    proc = subprocess.Popen(
        [sys.executable, str(runner), str(cfg.host.port_cmd), str(cfg.host.port_obs), "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    try:
        wait_for_line(proc, "stock host starting")
        with RobotLink(cfg, expected_cameras=["front", "wrist"]) as link:
            first = link.connect(timeout_s=15)
            assert first.seq is None and first.stamp is None  # stock: no `_seq`/`_stamp`, age from receipt
            assert set(first.images) == {"front", "wrist"} and first.images["front"].shape == (120, 160, 3)
            assert first.age_s() < 1.0
            # Drive the arm through the stock host: the fake's joints follow, and we see it in the state.
            target = {k: 0.0 for k in STATE_KEYS} | {"arm_shoulder_lift.pos": -20.0, "arm_gripper.pos": 80.0}
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                link.send_action(target)
                time.sleep(0.1)
                state = link.latest().state_dict()
                if abs(state["arm_shoulder_lift.pos"] + 20.0) < 0.5 and abs(state["arm_gripper.pos"] - 80) < 0.5:
                    break
            assert state["arm_shoulder_lift.pos"] == pytest.approx(-20.0, abs=0.5)
            assert state["arm_gripper.pos"] == pytest.approx(80.0, abs=0.5)
            assert link.stats.bad_total == 0
    finally:
        proc.kill()
        proc.wait()


def test_stock_lekiwi_client_receives_three_cameras_from_the_sim_host(tmp_path):
    from lekiwi_drift.sim.local import start_local_sim_host

    cfg, _ = loopback_config(tmp_path, size=(96, 72))
    with start_local_sim_host(cfg, clock="realtime", size="96x72") as sim:
        client = stock_client(sim.config)
        client.connect()
        try:
            deadline = time.monotonic() + 10
            obs = client.get_observation()
            while not all(n in obs for n in ("front", "wrist", "top")) and time.monotonic() < deadline:
                obs = client.get_observation()
            for name in ("front", "wrist", "top"):
                assert obs[name].shape == (72, 96, 3)
                assert obs[name].std() > 5  # a rendered scene, not a blank frame
            assert all(k in obs for k in STATE_KEYS) and not any(k.startswith("_") for k in obs)
        finally:
            client.disconnect()
