"""Live teleop against the sim over the wire: the expert header, the real-time loop and its status line,
and the setup errors (unreachable host, no expert on the host)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import io

import pytest

from lekiwi_drift.config.robot import load_config
from lekiwi_drift.robots.features import STATE_KEYS


def test_expert_header_resets_and_drives_in_lockstep():
    from lekiwi_drift.link.client import RobotLink
    from lekiwi_drift.sim.local import start_local_sim_host

    with start_local_sim_host(load_config(), clock="lockstep", size="32x24", expert=True) as local:
        with RobotLink(local.config) as link:
            obs = link.connect()
            first = obs.extras["_expert"]
            assert set(first) == set(STATE_KEYS)
            for _ in range(10):
                obs = link.step(obs.extras["_expert"])
            assert obs.extras["_expert_phase"] == "approach"
            assert link.request({"op": "reset", "seed": 0})["ok"]
            assert link.latest().extras["_expert"] == first  # the expert restarted with the scene


def test_live_realtime_teleop_status_line():
    from lekiwi_drift.teleop.app import TeleopOptions, run_teleop

    out = io.StringIO()
    result = run_teleop(TeleopOptions(sim=True, size="32x24", keyboard=False, max_time_s=2.5), out=out)
    text = out.getvalue()
    assert result.stopped_by == "max time"
    assert "teleop: scripted expert; real time; no keyboard" in text
    status = [line for line in text.splitlines() if line.startswith("live |")]
    assert status, text
    last = status[-1]
    assert "obs" in last and "Hz age" in last and "loop" in last and "base x" in last
    loop_hz = float(last.split("loop")[1].split("Hz")[0])
    assert 20.0 <= loop_hz <= 35.0, last


def test_unreachable_host_and_missing_expert(tmp_path):
    from lekiwi_drift.link.ports import free_loopback_ports
    from lekiwi_drift.sim.local import start_local_sim_host
    from lekiwi_drift.teleop.app import TeleopError, TeleopOptions, run_teleop
    from lekiwi_drift.teleop.sources import SourceError

    port_cmd, port_obs = free_loopback_ports(2)
    config = tmp_path / "lekiwi.yaml"
    config.write_text(f"host: {{port_cmd: {port_cmd}, port_obs: {port_obs}, connect_timeout_s: 0.5}}\n")
    with pytest.raises(TeleopError, match=r"cannot reach the robot host.*lekiwi-drift host.*--sim"):
        run_teleop(
            TeleopOptions(config=str(config), host="127.0.0.1", keyboard=False, max_time_s=0.1), out=io.StringIO()
        )

    # A sim host started without --expert: scripted teleop says how to start it.
    with start_local_sim_host(load_config(), clock="lockstep", size="32x24", expert=False) as local:
        config.write_text(f"host: {{port_cmd: {local.config.host.port_cmd}, port_obs: {local.config.host.port_obs}}}\n")
        with pytest.raises(SourceError, match=r"lekiwi-drift host --robot sim --expert"):
            run_teleop(
                TeleopOptions(config=str(config), host="127.0.0.1", sim=True, keyboard=False, max_time_s=0.1),
                out=io.StringIO(),
            )


def test_realtime_loop_shows_the_overruns_of_a_stalling_source():
    """Every 10th action takes 100 ms (a slow leader-arm read): the loop rate drops below 30 Hz and the
    status line counts the overruns and the lost slots (the old rate counted lost slots as ticks)."""
    import time

    from lekiwi_drift.link.client import RobotLink
    from lekiwi_drift.robots.features import BASE_KEYS
    from lekiwi_drift.sim.local import start_local_sim_host
    from lekiwi_drift.teleop.session import SessionConfig, TeleopSession

    class StallingSource:
        calls = 0

        def action(self, obs):
            self.calls += 1
            if self.calls % 10 == 0:
                time.sleep(0.1)
            return {**dict(zip(STATE_KEYS, map(float, obs.state))), **{k: 0.0 for k in BASE_KEYS}}

    out = io.StringIO()
    with start_local_sim_host(load_config(), clock="realtime", size="32x24") as local:
        with RobotLink(local.config) as link:
            link.connect()
            session = TeleopSession(SessionConfig(sim=True, max_time_s=3.0), link, StallingSource(), out=out)
            session.run()
    k = session.counters
    assert k.overruns >= 6 and k.skipped_ticks >= 12 and k.overrun_max_ms > 50.0
    # every slot of the 3 s either ran or is counted as lost (a last stall may run past the end by 3 slots)
    assert 90 <= k.ticks + k.skipped_ticks <= 93
    last = [line for line in out.getvalue().splitlines() if line.startswith("live |")][-1]
    assert float(last.split("loop")[1].split("Hz")[0]) < 26.0, last
    assert "overruns" in last and int(last.split("overruns")[1].split()[0]) >= 3, last
