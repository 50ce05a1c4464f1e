"""Observation age when the robot's clock is off ours (link/clock.py): the estimator on synthetic stamps,
then over real ZMQ sockets on 127.0.0.1 against fake hosts whose wall clock is skewed by up to two hours:
ages, the stale guard with a paused host, latency compensation, a clock step mid-run, a stock host."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from lekiwi_drift.control.loop import ControlLoop
from lekiwi_drift.control.preset import Preset
from lekiwi_drift.link.client import RobotLink
from lekiwi_drift.link.clock import HostClock, observation_age
from lekiwi_drift.link.wire import Observation
from lekiwi_drift.robots.fake import FakeLeKiwi, FakeRobotConfig
from tests.link_helpers import host_thread, loopback_config
from tests.malformed import observation
from tests.test_control_loop_scripted import ScriptedRuntime, moving

SKEWS = (-7200.0, -30.0, 30.0, 7200.0)  # host clock minus real time: a Pi behind or ahead
TOLERANCE_S = 0.05  # a loaded 2-core CI box; on an idle one the error is well under a millisecond


# ---------------------------------------------------------------- the estimator on synthetic stamps


def feed(clock: HostClock, captures, delays, skew: float) -> list[float]:
    """Observations captured at `captures` (local time), stamped on a host clock `skew` ahead, received
    `delays` later; returns the offset estimate after each."""
    return [clock.update(c + skew, c + d) for c, d in zip(captures, delays)]


def test_constant_offset_with_jitter_reads_the_offset_less_the_smallest_delay():
    rng = np.random.default_rng(0)
    captures = np.arange(600) / 30.0  # 20 s at 30 Hz
    delays = 0.002 + rng.exponential(0.02, size=captures.size)  # 2 ms wire + queueing jitter
    delays[::7] += 0.5  # and now and then a message stuck behind something
    clock = HostClock(window_s=10.0, min_samples=60)
    offsets = feed(clock, captures, delays, skew=7200.0)
    for i, (c, d, off) in enumerate(zip(captures, delays, offsets)):
        # The window always holds the newest 60 samples and never more than all of them so far.
        d_all, d_recent = delays[: i + 1].min(), delays[max(0, i - 59) : i + 1].min()
        assert d_all - 1e-6 <= 7200.0 - off <= d_recent + 1e-6
        now = c + d + 0.1  # 100 ms after receipt
        age = observation_age(now, c + d, c + 7200.0, off)
        true_age = now - c
        assert 0.0 <= true_age - age <= d_recent + 1e-6  # reads low by at most the smallest delay


def test_forward_step_is_followed_at_once_backward_step_reads_old_until_the_window_passes():
    captures = np.arange(900) / 30.0  # 30 s
    delays = np.full(captures.size, 0.003)
    skew = np.where(captures < 10.0, -30.0, 0.0)  # 10 s in, host NTP jumps the clock forward 30 s
    skew = np.where(captures >= 20.0, -60.0, skew)  # 20 s in, it is pulled back 60 s
    clock = HostClock(window_s=5.0, min_samples=30)
    offsets = [clock.update(c + s, c + d) for c, d, s in zip(captures, delays, skew)]
    i_fwd, i_back = 300, 600
    assert offsets[i_fwd - 1] == pytest.approx(-30.003)
    assert offsets[i_fwd] == pytest.approx(-0.003)  # the first observation after a forward step
    # Backward: the estimate stays too high (ages read too old: the stale guard holds the robot)...
    stuck = offsets[i_back : i_back + 145]
    assert all(o == pytest.approx(-0.003) for o in stuck)
    age = observation_age(captures[i_back] + 0.1, captures[i_back] + 0.003, captures[i_back] - 60.0, offsets[i_back])
    assert age > 59.0
    # ... and follows once the pre-step samples left the window (5 s, 150 samples).
    assert offsets[i_back + 155] == pytest.approx(-60.003)
    assert offsets[-1] == pytest.approx(-60.003)


def test_a_late_message_after_a_silence_does_not_set_the_offset_alone():
    clock = HostClock(window_s=2.0, min_samples=10)
    feed(clock, np.arange(90) / 30.0, np.full(90, 0.002), skew=100.0)
    # 20 s of silence, then the first message arrives a whole second late.
    assert clock.update(23.0 + 100.0, 24.0) == pytest.approx(100.0 - 0.002)


def test_no_stamp_means_receipt_age_and_the_age_never_undercuts_receipt_age():
    assert observation_age(now=100.25, recv_time=100.0) == pytest.approx(0.25)
    obs = Observation(state=np.zeros(9, np.float32), images={}, recv_time=100.0, clock_offset_s=3600.0)
    assert obs.age_s(now=100.25) == pytest.approx(0.25)  # no stamp: the offset plays no part
    # A wildly wrong offset (host ahead by an hour more than estimated) cannot make it younger than
    # the time since receipt.
    assert observation_age(now=100.25, recv_time=100.0, stamp=3700.0, offset_s=0.0) == pytest.approx(0.25)


def test_estimator_rejects_a_useless_window():
    with pytest.raises(ValueError):
        HostClock(window_s=0.0)
    assert HostClock().offset_s is None


# ---------------------------------------------------------------- over the wire, skewed hosts


def skewed_robot(cfg, skew: float) -> FakeLeKiwi:
    cam = cfg.cameras[0]
    robot = FakeLeKiwi(FakeRobotConfig(tuple(cfg.camera_names), cam.width, cam.height, clock_skew_s=skew))
    robot.connect()
    return robot


def age_error(obs: Observation, skew: float, later_s: float = 0.0) -> float:
    """True age minus reported age, both at the same instant, `later_s` from now (capture on our clock =
    stamp - skew)."""
    now = time.time() + later_s
    return (now - (obs.stamp - skew)) - obs.age_s(now)


@pytest.mark.parametrize("skew", SKEWS)
def test_ages_are_true_whatever_the_host_clock(tmp_path, skew):
    cfg, _ = loopback_config(tmp_path)
    robot = skewed_robot(cfg, skew)
    with host_thread(robot, cfg), RobotLink(cfg) as link:
        obs = link.connect()
        errors = []
        for _ in range(20):
            obs = link.wait_for(obs, 2.0)
            assert obs is not None
            # As a tick 250 ms later would see it: an age stuck at zero (host ahead) shows too.
            errors.append(age_error(obs, skew, later_s=0.25))
        assert link.stats.clock_offset_s == pytest.approx(skew, abs=TOLERANCE_S)
        assert obs.clock_offset_s == link.stats.clock_offset_s
    assert min(errors) >= -1e-3 and max(errors) < TOLERANCE_S, errors
    assert max(link.stats.age_ms) < 500.0  # as decoded: never hours


class SlowCameras(FakeLeKiwi):
    """Camera read and encode take a while, as on a Pi: time the age must count, not call transit."""

    def get_observation(self) -> dict:
        time.sleep(0.08)
        return super().get_observation()


def test_host_work_between_capture_and_send_counts_in_the_age(tmp_path):
    cfg, _ = loopback_config(tmp_path)
    cam = cfg.cameras[0]
    robot = SlowCameras(FakeRobotConfig(tuple(cfg.camera_names), cam.width, cam.height, clock_skew_s=-30.0))
    robot.connect()
    with host_thread(robot, cfg), RobotLink(cfg) as link:
        obs = link.connect()
        errors = []
        for _ in range(8):
            obs = link.wait_for(obs, 2.0)
            assert obs.sent - obs.stamp >= 0.08
            errors.append(age_error(obs, -30.0))
    assert min(errors) >= -1e-3 and max(errors) < TOLERANCE_S, errors


class RecordingRuntime(ScriptedRuntime):
    """The scripted runtime, noting the observation time the loop hands it and the observation's stamp."""

    def __init__(self):
        super().__init__(delay_s=0.02)
        self.seen: list[tuple[float, float]] = []

    def infer(self, obs, t_obs):
        self.seen.append((t_obs, obs.stamp))
        return super().infer(obs, t_obs)


@pytest.mark.parametrize("skew", (-7200.0, 7200.0))
def test_stale_guard_stops_the_base_when_a_skewed_host_pauses(tmp_path, skew):
    # max_failures: the host keeps serving (and applying commands) through the pause, publishing nothing.
    cfg, _ = loopback_config(tmp_path, max_failures=1_000_000)
    robot = skewed_robot(cfg, skew)
    runtime = RecordingRuntime()
    paused: dict[str, float] = {}

    def pause() -> None:
        paused["at"] = time.monotonic()
        robot.inject_read_failures(1_000_000)

    with host_thread(robot, cfg), RobotLink(cfg) as link:
        link.connect()
        loop = ControlLoop(link, runtime, Preset(name="test", checkpoint="unused"))
        timer = threading.Timer(1.0, pause)
        timer.start()
        result = loop.run_episode(max_time_s=8.0)
        timer.cancel()
        loop.close()
    wall_minus_mono = time.time() - time.monotonic()
    assert result.outcome == "stale", result  # +2 h unfixed: never stale (timeout); -2 h: stale at once
    t_pause = paused["at"]
    before = [a for t, a in robot.events.actions if t < t_pause]
    assert any(moving(a) for a in before), "the base should have been driven before the pause"
    # The loop's own holds reach the robot (the host still applies commands): the client's guard
    # stopped the base, not the host's watchdog. 200 ms max age plus slack for a loaded box.
    after = [a for t, a in robot.events.actions if t > t_pause + 0.45]
    assert after and not any(moving(a) for a in after)
    assert not robot.base_moving
    # Latency compensation: the observation time the loop charged each chunk to is the capture time.
    assert len(runtime.seen) >= 3
    for t_obs, stamp in runtime.seen:
        capture_mono = stamp - skew - wall_minus_mono
        assert -1e-3 <= t_obs - capture_mono < TOLERANCE_S, t_obs - capture_mono


def test_host_clock_step_mid_run_is_followed(tmp_path):
    cfg, _ = loopback_config(tmp_path)
    robot = skewed_robot(cfg, -30.0)
    with host_thread(robot, cfg), RobotLink(cfg) as link:
        link.host_clock = HostClock(window_s=0.5, min_samples=5)  # a short window keeps the test short
        obs = link.connect()

        def settle(skew: float, within_s: float) -> float:
            nonlocal obs
            deadline = time.monotonic() + within_s
            while time.monotonic() < deadline:
                obs = link.wait_for(obs, 1.0)
                if obs is not None and abs(link.stats.clock_offset_s - skew) < TOLERANCE_S:
                    return age_error(obs, skew)
            raise AssertionError(f"offset {link.stats.clock_offset_s} never reached {skew}")

        assert abs(settle(-30.0, 2.0)) < TOLERANCE_S
        robot.config.clock_skew_s = 0.0  # NTP kicks in on the Pi: a forward step, followed at once
        assert abs(settle(0.0, 1.0)) < TOLERANCE_S
        robot.config.clock_skew_s = -60.0  # and a backward one: ages read old (safe) for a window
        while obs.stamp > time.time() - 50.0:  # skip what was stamped before the step
            obs = link.wait_for(obs, 1.0)
        assert obs.age_s() > 50.0
        assert abs(settle(-60.0, 3.0)) < TOLERANCE_S


def test_stock_host_without_stamp_ages_from_receipt(tmp_path):
    cfg, _ = loopback_config(tmp_path)
    rogue = zmq.Context.instance().socket(zmq.PUSH)  # plays a stock host: no `_stamp`
    rogue.bind(f"tcp://127.0.0.1:{cfg.host.port_obs}")
    connected = threading.Event()

    def offer() -> None:  # a PUSH blocks until a peer connects, so offer from a thread
        while not connected.is_set():
            try:
                rogue.send_multipart(observation(), flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
            time.sleep(0.02)

    sender = threading.Thread(target=offer, daemon=True)
    sender.start()
    try:
        with RobotLink(cfg) as link:
            obs = link.connect(timeout_s=3)
            connected.set()
            sender.join()
            now = time.time()
            assert obs.stamp is None and link.stats.clock_offset_s is None
            assert obs.age_s(now) == pytest.approx(now - obs.recv_time)
            assert 0.0 <= obs.age_s(now) < 1.0
    finally:
        connected.set()
        rogue.close(0)
