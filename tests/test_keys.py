"""CurveZMQ: with keys the host admits only listed clients; an unauthenticated peer's actions never apply."""

import copy
import time

import pytest
import zmq

from lekiwi_drift.cli.main import main
from lekiwi_drift.config.robot import ConfigError
from lekiwi_drift.link.client import LinkTimeout, RobotLink
from lekiwi_drift.link.wire import encode_command
from lekiwi_drift.robots.features import STATE_KEYS
from tests.link_helpers import fake_for, host_thread, loopback_config

ACTION = {k: 0.0 for k in STATE_KEYS} | {"arm_elbow_flex.pos": 40.0, "x.vel": 0.2}


@pytest.fixture
def keyed(tmp_path):
    assert (
        main(["keys", "--dir", str(tmp_path / "keys"), "--name", "host", "--name", "alice", "--name", "mallory"]) == 0
    )
    k = tmp_path / "keys"
    host_cfg, _ = loopback_config(tmp_path)
    host_cfg.keys.host_secret = str(k / "host.key_secret")
    host_cfg.keys.authorized_clients = [str(k / "alice.key")]

    def client_cfg(name):
        cfg = copy.deepcopy(host_cfg)
        cfg.keys.host_secret, cfg.keys.authorized_clients = "", []
        if name:
            cfg.keys.client_secret = str(k / f"{name}.key_secret")
            cfg.keys.host_public = str(k / "host.key")
        return cfg

    return host_cfg, client_cfg, k


def test_keys_refuses_to_overwrite(tmp_path):
    assert main(["keys", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "client.key_secret").stat().st_mode & 0o077 == 0
    with pytest.raises(FileExistsError, match="exists"):
        main(["keys", "--dir", str(tmp_path)])


def test_listed_client_is_served_and_drives(keyed):
    host_cfg, client_cfg, _ = keyed
    robot = fake_for(host_cfg)
    with host_thread(robot, host_cfg), RobotLink(client_cfg("alice")) as link:
        obs = link.connect(timeout_s=5)
        assert set(obs.images) == {"front", "wrist", "top"}
        link.send_action(ACTION)
        deadline = time.monotonic() + 3
        while not robot.events.actions and time.monotonic() < deadline:
            time.sleep(0.02)
        assert robot.events.actions and robot.events.actions[-1][1]["arm_elbow_flex.pos"] == 40.0


@pytest.mark.parametrize("who", [None, "mallory"])  # plain stock peer; a peer with an unlisted key
def test_unauthenticated_peer_gets_nothing_and_moves_nothing(keyed, who):
    host_cfg, client_cfg, _ = keyed
    robot = fake_for(host_cfg)
    with host_thread(robot, host_cfg) as (host, _):
        with pytest.raises(LinkTimeout):
            RobotLink(client_cfg(who)).connect(timeout_s=1.0)
        # Also push raw commands straight at the command port for a while.
        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        if who:
            from lekiwi_drift.link import keys as curve

            curve.make_client(sock, client_cfg(who).keys)
        sock.connect(f"tcp://127.0.0.1:{host_cfg.host.port_cmd}")
        for _ in range(20):
            try:
                sock.send(encode_command(ACTION), zmq.NOBLOCK)
            except zmq.Again:
                pass
            time.sleep(0.03)
        sock.close(0)
        assert host.stats.commands == 0
    assert robot.events.actions == []


def test_bad_key_path_is_a_config_error(keyed, tmp_path):
    host_cfg, _, _ = keyed
    host_cfg.keys.host_secret = str(tmp_path / "missing.key_secret")
    with pytest.raises(ConfigError, match="keys.host_secret.*lekiwi-drift keys"):
        from lekiwi_drift.link.host import RobotHost

        RobotHost(fake_for(host_cfg), host_cfg)
