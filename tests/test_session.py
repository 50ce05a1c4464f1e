"""RobotSession (control/session.py): the one object `run`, `trials` and `bench loop` set up, stop and
tear down with. Real sim host, real wire, a tiny random policy."""

from __future__ import annotations

import threading
import time

import pytest

from lekiwi_drift.config.robot import load_config
from lekiwi_drift.control.preset import load_preset
from lekiwi_drift.control.session import RobotSession, SessionError, SimSpec
from lekiwi_drift.robots.features import ARM_KEYS, BASE_KEYS


@pytest.fixture(scope="module")
def runtime(tiny_checkpoint, tiny_vlm_dir):
    from lekiwi_drift.control.runtime import PolicyRuntime

    path = tiny_checkpoint / "session_preset.yaml"
    path.write_text(
        f"checkpoint: {tiny_checkpoint / 'model'}\nvlm_dir: {tiny_vlm_dir}\nsim_size: 64x48\n"
        "mode: async\nend_on_success: false\n"
    )
    return PolicyRuntime.load(load_preset(path), load_config(None))


class Spy:
    """Records every command the session's real link sends, in order."""

    def __init__(self, link):
        self.sent: list[dict] = []
        self._send = link.send_action
        link.send_action = self

    def __call__(self, action):
        self.sent.append(dict(action))
        return self._send(action)


def is_hold(action: dict) -> bool:
    return all(action[k] == 0.0 for k in BASE_KEYS)


def test_one_estop_is_one_hold_then_nothing(runtime):
    with RobotSession(load_config(None), sim=SimSpec(clock="realtime", size="64x48")) as session:
        session.open()
        session.add_policy("tiny", runtime)
        session.reset("salt_bottle", seed=1, scene=0)
        spy = Spy(session.link)
        stopped_at: list[int] = []

        def estop():
            session.stop()
            stopped_at.append(len(spy.sent))  # the e-stop's hold went out under the loop's send lock

        timer = threading.Timer(1.5, estop)
        timer.start()
        result = session.run_episode("tiny", max_time_s=10.0)
        timer.join()
        time.sleep(0.3)  # anything still coming (a chunk in flight, a second hold) would arrive now
        assert result.outcome == "estop"
        n = stopped_at[0]
        assert n > 10 and not all(is_hold(a) for a in spy.sent[: n - 1])  # the policy was driving before
        assert is_hold(spy.sent[n - 1])
        assert len(spy.sent) == n, f"{len(spy.sent) - n} command(s) after the e-stop's hold"

        # Between episodes a stop is one hold at the pose measured now.
        state = session.link.latest().state_dict()
        session.stop()
        assert len(spy.sent) == n + 1 and is_hold(spy.sent[-1])
        assert all(abs(spy.sent[-1][k] - state[k]) < 1.0 for k in ARM_KEYS)


def test_estop_before_any_policy_and_close_are_holds():
    with RobotSession(load_config(None), sim=SimSpec(clock="realtime", size="64x48")) as session:
        first = session.open()
        assert session.is_sim and session.clock == "realtime"
        spy = Spy(session.link)
        session.stop()
        assert len(spy.sent) == 1 and is_hold(spy.sent[0])
        assert all(abs(spy.sent[0][k] - first.state_dict()[k]) < 1.0 for k in ARM_KEYS)
    assert len(spy.sent) == 2 and is_hold(spy.sent[1]) and session.link is None  # close() stops first


def test_sim_time_latency_needs_the_lockstep_sim():
    session = RobotSession(load_config(None), sim=SimSpec(clock="realtime", size="64x48"), latency="paper-gpu")
    with pytest.raises(SessionError, match="lockstep"):
        try:
            session.open()
        finally:
            session.close()
    with pytest.raises(SessionError, match="latency"):
        RobotSession(load_config(None), latency="fast").open()


def test_lockstep_session_runs_scores_and_resets(runtime, tmp_path):
    with RobotSession(
        load_config(None), sim=SimSpec(clock="lockstep", size="64x48"), latency="paper-gpu", run_dir=tmp_path
    ) as session:
        session.open()
        session.add_policy("tiny", runtime)
        reply = session.reset("salt_bottle", seed=4, scene=0)
        assert (reply["scene"], reply["seed"]) == (0, 4)
        result = session.run_episode("tiny", max_time_s=1.0)
    assert result.outcome == "timeout" and result.auto_success is False
    assert result.telemetry["charged_ms_p50"] > 0 and (tmp_path / "telemetry.jsonl").exists()
