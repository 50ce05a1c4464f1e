"""The link over real ZMQ sockets on 127.0.0.1: fault injection on both sockets, watchdog, restart, age."""

import os
import re
import signal
import threading
import time

import pytest
import zmq

from lekiwi_drift.link.client import LinkTimeout, RobotLink
from lekiwi_drift.link.host import EXIT_READ_FAILURES
from lekiwi_drift.robots.features import STATE_KEYS
from tests.link_helpers import fake_for, host_thread, loopback_config, start_host_process, wait_for_line
from tests.malformed import bad_commands, bad_observations, observation


def action(**overrides):
    return {**{k: 0.0 for k in STATE_KEYS}, "arm_gripper.pos": 50.0, **overrides}


def test_client_receives_decodes_and_ages(tmp_path):
    cfg, _ = loopback_config(tmp_path)
    robot = fake_for(cfg)
    with host_thread(robot, cfg), RobotLink(cfg) as link:
        first = link.connect()
        later = link.wait_for(first, 2.0)
        assert later.seq > first.seq
        assert set(later.images) == {"front", "wrist", "top"}
        assert later.images["top"].shape == (120, 160, 3)
        assert 0 <= later.age_s() < 0.5
        link.send_action(action(**{"arm_elbow_flex.pos": 30.0}))
        deadline = time.monotonic() + 3
        while link.latest().state_dict()["arm_elbow_flex.pos"] < 29.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.latest().state_dict()["arm_elbow_flex.pos"] == pytest.approx(30.0, abs=1.0)


def test_connect_timeout_names_endpoint_and_fix(tmp_path):
    cfg, _ = loopback_config(tmp_path)
    with pytest.raises(LinkTimeout, match=rf"tcp://127.0.0.1:{cfg.host.port_obs}.*lekiwi-drift host"):
        RobotLink(cfg).connect(timeout_s=0.3)


def test_malformed_observations_are_counted_and_never_crash_the_client(tmp_path):
    cfg, _ = loopback_config(tmp_path, max_message_bytes=64 * 1024)
    ctx = zmq.Context.instance()
    rogue = ctx.socket(zmq.PUSH)  # plays a broken host
    rogue.bind(f"tcp://127.0.0.1:{cfg.host.port_obs}")
    link = RobotLink(cfg)
    connected = threading.Event()

    def first_good():  # a PUSH blocks until a peer connects, so offer the first observation from a thread
        while not connected.is_set():
            try:
                rogue.send_multipart(observation(extras={"_seq": 1}), flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
            time.sleep(0.05)

    sender = threading.Thread(target=first_good, daemon=True)
    sender.start()
    try:
        good = link.connect(timeout_s=3)
        connected.set()
        sender.join()
        good = link.wait_for(None, 1)
        cases = bad_observations(cfg.host.max_message_bytes)
        for kind, frames in cases:
            before = link.stats.bad[kind]
            rogue.send_multipart(frames)
            deadline = time.monotonic() + 2
            while link.stats.bad[kind] == before and time.monotonic() < deadline:
                time.sleep(0.005)
            assert link.stats.bad[kind] == before + 1, kind
        assert link.stats.bad_total == len(cases) and len({k for k, _ in cases}) >= 10
        assert link.latest() is good  # the last good observation is kept
        rogue.send_multipart(observation(extras={"_seq": 2}))
        again = link.wait_for(good, 2)
        assert again is not None, (link.stats, good.seq)
        assert again.seq == 2  # and the client still works
    finally:
        link.close()
        rogue.close(0)


def test_malformed_commands_are_rejected_whole_and_counted(tmp_path):
    cfg, _ = loopback_config(tmp_path)
    robot = fake_for(cfg)
    rogue = zmq.Context.instance().socket(zmq.PUSH)  # plays a broken client
    rogue.connect(f"tcp://127.0.0.1:{cfg.host.port_cmd}")
    with host_thread(robot, cfg) as (host, _):
        cases = bad_commands(max_bytes=64 * 1024)
        for kind, raw in cases:
            before = host.stats.bad_commands[kind]
            deadline = time.monotonic() + 2
            # The real-time host keeps only the newest command (CONFLATE): resend until this one is seen.
            while host.stats.bad_commands[kind] == before and time.monotonic() < deadline:
                rogue.send_multipart(raw if isinstance(raw, list) else [raw])
                time.sleep(0.04)
            assert host.stats.bad_commands[kind] > before, kind
        assert robot.events.actions == []  # nothing applied, not even partially
        assert len(cases) >= 10 and len({k for k, _ in cases}) >= 9
        rogue.send(__import__("json").dumps(action(**{"x.vel": 0.1})).encode())
        deadline = time.monotonic() + 2
        while not robot.events.actions and time.monotonic() < deadline:
            time.sleep(0.01)
        assert robot.events.actions[-1][1]["x.vel"] == pytest.approx(0.1)
    rogue.close(0)


def test_watchdog_stops_base_within_550ms_of_last_command(tmp_path):
    cfg, _ = loopback_config(tmp_path)
    robot = fake_for(cfg)
    with host_thread(robot, cfg), RobotLink(cfg) as link:
        link.connect()
        for _ in range(5):
            link.send_action(action(**{"x.vel": 0.2, "theta.vel": 30.0}))
            time.sleep(0.05)
        time.sleep(1.0)
    last_cmd = robot.events.actions[-1][0]
    stops_after = [t for t in robot.events.base_stops if t > last_cmd]
    assert stops_after, "watchdog never stopped the base"
    delay = stops_after[0] - last_cmd
    assert 0.5 <= delay <= 0.55, f"base stopped {delay * 1000:.0f} ms after the last command"


def test_read_failures_skip_observations_then_exit_cleanly(tmp_path):
    cfg, _ = loopback_config(tmp_path, max_failures=5)
    robot = fake_for(cfg)
    with host_thread(robot, cfg) as (host, result), RobotLink(cfg) as link:
        first = link.connect()
        robot.inject_read_failures(3)  # below the limit: skipped, host keeps serving
        time.sleep(0.3)
        assert host.stats.read_failures == 3
        assert link.wait_for(link.latest(), 1.0) is not None
        robot.inject_read_failures(100)
        deadline = time.monotonic() + 3
        while "code" not in result and time.monotonic() < deadline:
            time.sleep(0.02)
    assert result["code"] == EXIT_READ_FAILURES
    # The watchdog's stops (no client drove it), and one more on the way out.
    assert len(robot.events.base_stops) == host.stats.watchdog_stops + 1
    assert first is not None


def test_host_killed_and_restarted_client_receives_within_1s(tmp_path):
    cfg, path = loopback_config(tmp_path)
    proc = start_host_process(path)
    try:
        wait_for_line(proc, "host serving")
        link = RobotLink(cfg)
        link.connect(timeout_s=10)
        proc.kill()  # kill -9: no clean shutdown
        proc.wait()
        time.sleep(1.5)
        before = link.latest()
        proc = start_host_process(path)
        back = wait_for_line(proc, "host serving")
        obs = link.wait_for(before, 5.0)
        assert obs is not None, "client never received from the restarted host"
        delay = time.monotonic() - back
        assert delay <= 1.0, f"client received {delay:.2f} s after the host was back"
        link.close()
    finally:
        proc.kill()
        proc.wait()


def test_paused_host_observation_flagged_stale_by_age(tmp_path):
    cfg, path = loopback_config(tmp_path)
    proc = start_host_process(path)
    try:
        wait_for_line(proc, "host serving")
        with RobotLink(cfg) as link:
            link.connect(timeout_s=10)
            assert link.latest().age_s() < 0.3
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(0.6)
            assert link.latest().age_s() >= 0.5  # the runner refuses anything older than its bound
            os.kill(proc.pid, signal.SIGCONT)
            fresh = link.wait_for(link.latest(), 3.0)
            assert fresh is not None and fresh.age_s() < 0.3
    finally:
        proc.kill()
        proc.wait()


FAKE_EVENT = re.compile(r"fake robot: (base stopped|torque released) \(clock ([0-9.]+)\)")


def test_sigterm_stops_base_and_releases(tmp_path):
    """SIGTERM while a client drives the base: the host process stops the base and releases the torque
    after the signal (the fake logs both with its clock, time.monotonic: one clock for every process here),
    then exits 0."""
    cfg, path = loopback_config(tmp_path)
    proc = start_host_process(path, verbose=True)
    lines: list[str] = []
    try:
        wait_for_line(proc, "host serving", drain=False)
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        with RobotLink(cfg) as link:
            link.connect(timeout_s=10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # drive until the host's observations show the base moving
                link.send_action(action(**{"x.vel": 0.2}))
                obs = link.wait_for(link.latest(), 1.0)
                if obs is not None and obs.state_dict()["x.vel"] == pytest.approx(0.2):
                    break
            else:
                pytest.fail("the host never applied the driving command")
            link.send_action(action(**{"x.vel": 0.2}))  # fresh: the 500 ms watchdog is nowhere near due
            t_signal = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        reader.join(timeout=5)
    finally:
        proc.kill()
        proc.wait()
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "SIGTERM" in out and "host stopped" in out
    events = [(m[1], float(m[2])) for m in map(FAKE_EVENT.search, lines) if m]
    after = [(what, t) for what, t in events if t >= t_signal]
    stops = [t for what, t in after if what == "base stopped"]
    releases = [t for what, t in after if what == "torque released"]
    assert stops, f"the base was not stopped after SIGTERM: {events}"
    assert releases, f"the torque was not released after SIGTERM: {events}"
    assert min(stops) <= min(releases)  # stopped first, then let go


def test_lockstep_host_retries_a_failed_read_instead_of_dropping_the_step(tmp_path):
    """A lockstep step moved the world and its client waits for that step's observation: a read that
    fails (a slow sim render on a loaded machine) is retried, not dropped, so the client's step returns."""
    cfg, _ = loopback_config(tmp_path, max_failures=5)
    robot = fake_for(cfg)
    robot.lockstep = True  # what the host checks: one command = one step = one observation
    with host_thread(robot, cfg) as (host, _result), RobotLink(cfg) as link:
        first = link.connect()
        robot.inject_read_failures(2)
        after = link.step(action(**{"arm_elbow_flex.pos": 10.0}), timeout_s=5.0)
        assert after.seq != first.seq
        assert host.stats.read_failures == 2 and host.stats.commands == 1
