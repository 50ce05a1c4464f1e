"""The control loop (lekiwi_drift/control): presets, scheduler, and the loop's safety behaviour against a
scripted link and runtime; then end to end with a tiny policy against the lockstep sim over the wire."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from lekiwi_drift.config.robot import ConfigError
from lekiwi_drift.control.loop import ControlLoop
from lekiwi_drift.control.preset import Preset, load_preset
from lekiwi_drift.control.scheduler import ActionSchedule, Chunk
from lekiwi_drift.link.wire import Observation
from lekiwi_drift.robots.features import STATE_KEYS

HZ = 30.0
BASE = ("x.vel", "y.vel", "theta.vel")


# ---------------------------------------------------------------- presets


def test_shipped_presets_load():
    for name in ("drift", "drift1", "fm10", "fm1"):
        p = load_preset(name)
        assert p.name == name and p.control_hz == 30.0 and p.checkpoint.endswith("_small")
    d, f = load_preset("drift"), load_preset("fm10")
    assert (d.sampler, d.keystone_samples, d.keystone_clusters, d.keystone_tau) == ("drift", 8, 4, 0.3)
    assert (f.sampler, f.flow_steps, f.keystone) == ("flow", 10, False)
    assert load_preset("drift1").keystone is False and load_preset("fm1").flow_steps == 1


@pytest.mark.parametrize(("text", "field"), [
    ("checkpoint: x\nmode: fast\n", "mode"),
    ("checkpoint: x\nkeystone_samples: 8\nsampler: flow\n", "keystone_samples"),
    ("checkpoint: x\ncontrol_hz: true\n", "control_hz"),
    ("checkpoint: x\nsafety: {max_joint_step_deg: -1}\n", "safety.max_joint_step_deg"),
    ("checkpoint: x\nsafety: {max_linear_speed: 2.0}\n", "safety"),
    ("checkpoint: x\ncamera: {front: front}\n", "unknown field"),
    ("sampler: drift\n", "checkpoint"),
])
def test_bad_preset_names_the_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=field):
        load_preset(path)


def test_unknown_preset_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="drift"):
        load_preset("no_such_policy")


# ---------------------------------------------------------------- scheduler


def chunk_of(n: int, t_obs: float, value: float = 0.0) -> Chunk:
    actions = np.tile(np.arange(n, dtype=np.float32)[:, None], (1, 9)) + value
    return Chunk(actions=actions, t_obs=t_obs, t_start=t_obs, t_ready=t_obs)


def test_async_drops_actions_whose_time_passed():
    s = ActionSchedule(HZ, n_action_steps=10, mode="async", margin_ticks=1)
    landed = s.install(chunk_of(10, t_obs=100.0), now=100.0 + 3.2 / HZ)  # 3.2 ticks of latency
    assert (landed.dropped, landed.usable) == (3, 7)
    p = s.pop(100.0 + 3.2 / HZ)
    assert p.action[0] == 3.0 and not p.late and p.skipped == 0  # the action due now, never an older one
    # An overrun tick skips to the action due at that time instead of replaying the missed one.
    p = s.pop(100.0 + 6.0 / HZ)
    assert p.action[0] == 6.0 and not p.late and p.skipped == 2  # actions 4 and 5 never ran
    assert s.skipped_actions == 2
    # Chosen on time but sent late (the tick stalled between its start and the send): late.
    p = s.pop(100.0 + 7.0 / HZ, sent_at=100.0 + 7.6 / HZ)
    assert p.action[0] == 7.0 and p.late and s.late_actions == 1


def test_sync_actions_run_late_after_an_overrun():
    s = ActionSchedule(HZ, n_action_steps=10, mode="sync")
    s.install(chunk_of(10, t_obs=0.0), now=5.0)
    assert not s.pop(5.0).late and not s.pop(5.0 + 1.4 / HZ).late  # within half a period of its slot
    p = s.pop(5.0 + 3.0 / HZ)  # the loop lost a tick: sync replays action 2 one period late
    assert p.action[0] == 2.0 and p.late and p.skipped == 0 and s.late_actions == 1


def test_boundary_jump_is_the_change_between_chunks():
    s = ActionSchedule(HZ, n_action_steps=4, mode="sync")
    s.install(chunk_of(4, t_obs=0.0, value=1.0), now=0.0)
    assert s.pop(0.0).jump is None  # nothing executed before the first chunk
    for i in range(1, 4):
        assert s.pop(i / HZ).jump is None
    s.install(chunk_of(4, t_obs=1.0, value=11.0), now=1.0)  # its action 0 (11) follows action 3 (4)
    jump = s.pop(1.0).jump
    assert jump is not None and np.allclose(jump, 7.0)
    assert ActionSchedule.jump_summary(jump) == {"arm_deg": 7.0, "x_mps": 7.0, "y_mps": 7.0, "theta_dps": 7.0}
    assert s.pop(1.0 + 1 / HZ).jump is None  # only the first action of a chunk


def test_sync_starts_at_the_first_action_and_waits_for_an_empty_queue():
    s = ActionSchedule(HZ, n_action_steps=4, mode="sync")
    assert s.wants_chunk(0.0)
    s.install(chunk_of(10, t_obs=0.0), now=5.0)
    got = [s.pop(5.0 + i / HZ)[0][0] for i in range(4)]
    assert got == [0.0, 1.0, 2.0, 3.0]
    assert s.pop(5.2)[0] is None and s.wants_chunk(5.2)


def test_async_triggers_at_latency_plus_margin():
    s = ActionSchedule(HZ, n_action_steps=10, mode="async", margin_ticks=2)
    s.observe_latency(3.5 / HZ)  # 4 ticks, rounded up
    s.install(chunk_of(10, t_obs=0.0), now=0.0)
    ticks = 0
    while not s.wants_chunk(ticks / HZ):
        s.pop(ticks / HZ)
        ticks += 1
    assert s.remaining(ticks / HZ) == 6


# ---------------------------------------------------------------- the loop with a scripted link


class ScriptedLink:
    """Stands in for RobotLink: fresh observations unless `freeze` is set (then they age)."""

    def __init__(self, success_after_s: float | None = None):
        self.sent: list[tuple[float, dict]] = []
        self.freeze = threading.Event()
        self.frozen_at: float | None = None
        self.t0 = time.time()
        self.success_after_s = success_after_s
        self._seq = 0

    def latest(self) -> Observation:
        self._seq += 1
        now = time.time()
        if self.freeze.is_set():
            self.frozen_at = self.frozen_at or now
            stamp = self.frozen_at - 0.5  # the last observation, already half a second old
        else:
            stamp = now
        extras = {}
        if self.success_after_s is not None:
            extras["_success"] = now - self.t0 > self.success_after_s
        return Observation(state=np.zeros(9, np.float32), images={}, seq=self._seq, stamp=stamp, extras=extras)

    def wait_for(self, after, timeout_s):
        return self.latest()

    def send_action(self, action):
        self.sent.append((time.monotonic(), dict(action)))


class StallingLink(ScriptedLink):
    """A ScriptedLink whose `latest()` (call `stall_at` of the episode) or every `send_every`-th send of a
    moving command sleeps: the loop overruns."""

    def __init__(self, stall_at: int | None = None, stall_s: float = 0.5, send_every: int | None = None,
                 send_sleep_s: float = 0.0):
        super().__init__()
        self.stall_at, self.stall_s = stall_at, stall_s
        self.send_every, self.send_sleep_s = send_every, send_sleep_s
        self.calls = self.moving_sends = 0

    def latest(self) -> Observation:
        self.calls += 1
        if self.calls == self.stall_at:
            time.sleep(self.stall_s)
        return super().latest()

    def send_action(self, action):
        super().send_action(action)
        if self.send_every and moving(action):
            self.moving_sends += 1
            if self.moving_sends % self.send_every == 0:
                time.sleep(self.send_sleep_s)


class ScriptedRuntime:
    """Stands in for PolicyRuntime: chunks that drive the base forward; optionally fails."""

    n_action_steps = 10
    warmup_ms = 5.0
    checkpoint_hash = "0" * 12

    def __init__(self, fail_after: int | None = None, delay_s: float = 0.01, stepped: bool = False):
        self.calls = 0
        self.stepped = stepped
        self.fail_after = fail_after
        self.delay_s = delay_s

    def infer(self, obs, t_obs):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("the policy blew up")
        t_start = time.monotonic()
        time.sleep(self.delay_s)
        actions = np.zeros((10, 9), np.float32)
        actions[:, STATE_KEYS.index("x.vel")] = 0.1
        if self.stepped:  # chunk c holds pan 10·c, x.vel 0.1 + 0.05·c, theta.vel 2·c
            c = self.calls - 1
            actions[:, STATE_KEYS.index("arm_shoulder_pan.pos")] = 10.0 * c
            actions[:, STATE_KEYS.index("x.vel")] = 0.1 + 0.05 * c
            actions[:, STATE_KEYS.index("theta.vel")] = 2.0 * c
        return Chunk(actions, t_obs, t_start, time.monotonic(), {"infer_ms": self.delay_s * 1e3})


def preset(**kw) -> Preset:
    return Preset(name="test", checkpoint="unused", **kw)


def moving(cmd: dict) -> bool:
    return any(abs(cmd[k]) > 0 for k in BASE)


def test_stale_observation_stops_the_base_within_one_tick():
    link = ScriptedLink()
    loop = ControlLoop(link, ScriptedRuntime(), preset())
    threading.Timer(0.5, link.freeze.set).start()
    result = loop.run_episode(max_time_s=5.0)
    loop.close()
    assert result.outcome == "stale"
    assert any(moving(c) for _, c in link.sent), "the base should have been driven before the freeze"
    frozen_mono = time.monotonic() - (time.time() - link.frozen_at)
    after = [c for t, c in link.sent if t >= frozen_mono]
    assert after and not moving(after[0]), "the first command after the observation went stale must stop"
    assert not any(moving(c) for c in after)
    assert result.telemetry["stale_obs_ticks"] >= 25  # ~1 s at 30 Hz before giving up


def test_policy_exception_stops_the_base():
    link = ScriptedLink()
    loop = ControlLoop(link, ScriptedRuntime(fail_after=2), preset())
    result = loop.run_episode(max_time_s=5.0)
    loop.close()
    assert result.outcome == "error" and "blew up" in result.error
    assert any(moving(c) for _, c in link.sent)
    assert not moving(link.sent[-1][1])


def test_estop_from_another_thread():
    link = ScriptedLink()
    loop = ControlLoop(link, ScriptedRuntime(), preset())
    threading.Timer(0.4, loop.estop).start()
    t0 = time.monotonic()
    result = loop.run_episode(max_time_s=5.0)
    loop.close()
    assert result.outcome == "estop" and time.monotonic() - t0 < 1.0
    assert not moving(link.sent[-1][1])


def test_stop_event_and_auto_success():
    link = ScriptedLink(success_after_s=0.3)
    loop = ControlLoop(link, ScriptedRuntime(), preset())
    result = loop.run_episode(max_time_s=5.0)
    assert result.outcome == "success" and result.auto_success is True
    stop = threading.Event()
    stop.set()
    result = loop.run_episode(max_time_s=5.0, stop=stop)
    loop.close()
    assert result.outcome == "stopped"


def test_async_loop_neither_stalls_nor_replays():
    link = ScriptedLink()
    statuses = []
    loop = ControlLoop(link, ScriptedRuntime(delay_s=0.08), preset(mode="async"))
    result = loop.run_episode(max_time_s=2.0, on_status=statuses.append)
    loop.close()
    t = result.telemetry
    assert result.outcome == "timeout" and t["chunks"] >= 4
    assert t["stall_ticks"] == 0
    # Unloaded, nothing runs late or is skipped (the tests below show both counts do move when it does).
    assert t["late_actions"] == 0 and t["skipped_actions"] == 0 and t["overruns"] == 0
    assert t["lateness_ms_max"] < 1e3 / HZ and t["skipped_ticks"] == 0
    assert t["dropped_actions"] >= t["chunks"] - 1  # ~3 ticks of latency compensated per chunk
    assert statuses and statuses[-1].hz > 20


def test_sync_loop_stalls_while_inferring():
    link = ScriptedLink()
    loop = ControlLoop(link, ScriptedRuntime(delay_s=0.08), preset(mode="sync"))
    result = loop.run_episode(max_time_s=2.0)
    loop.close()
    t = result.telemetry
    assert t["stall_ticks"] >= 2 * (t["chunks"] - 1)
    # The chunk's clock is re-anchored when it lands, so an unloaded sync run sends nothing late and
    # never skips (test_sync_late_actions_when_ticks_are_delayed shows the count moving).
    assert t["late_actions"] == 0 and t["skipped_actions"] == 0


def test_a_stall_shows_as_lateness_overrun_and_skipped_ticks():
    link = StallingLink(stall_at=20, stall_s=0.5)  # one 0.5 s stall, ~0.6 s into the episode
    statuses = []
    loop = ControlLoop(link, ScriptedRuntime(delay_s=0.03), preset(mode="async"))
    result = loop.run_episode(max_time_s=2.0, on_status=statuses.append)
    loop.close()
    t = result.telemetry
    assert result.outcome == "timeout"
    assert t["lateness_ms_max"] >= 400 and t["overrun_max_ms"] >= 400
    assert t["overruns"] >= 1 and t["skipped_ticks"] >= 10
    assert t["lateness_ms_p50"] < 1e3 / HZ  # after the stall the grid is rejoined, not dragged along
    # The stalled tick chose its action on time and sent it 0.5 s late; the next tick skipped past
    # the rest of the chunk instead of replaying it.
    assert t["late_actions"] >= 1 and t["skipped_actions"] >= 1
    assert any("overruns 1" in s.line for s in statuses)


def test_sync_late_actions_when_ticks_are_delayed():
    link = StallingLink(send_every=4, send_sleep_s=0.07)  # every 4th policy command takes 70 ms to send
    loop = ControlLoop(link, ScriptedRuntime(delay_s=0.03), preset(mode="sync"))
    result = loop.run_episode(max_time_s=2.0)
    loop.close()
    t = result.telemetry
    assert t["late_actions"] > 0 and t["late_actions_per_replan"] > 0
    assert t["skipped_actions"] == 0  # sync never skips: it replays late instead
    assert t["overruns"] >= 1


def test_async_overrun_inside_a_chunk_skips_actions():
    link = StallingLink(send_every=3, send_sleep_s=0.1)  # ~3 ticks lost on every 3rd policy command
    loop = ControlLoop(link, ScriptedRuntime(delay_s=0.03), preset(mode="async"))
    result = loop.run_episode(max_time_s=2.0)
    loop.close()
    t = result.telemetry
    assert t["skipped_actions"] > 0 and t["skipped_actions_per_replan"] > 0
    assert t["overruns"] >= 1 and t["skipped_ticks"] >= 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_boundary_jump_recorded_per_replan(tmp_path, mode):
    link = ScriptedLink()
    loop = ControlLoop(link, ScriptedRuntime(delay_s=0.03, stepped=True), preset(mode=mode), run_dir=tmp_path)
    result = loop.run_episode(max_time_s=1.5)
    loop.close()
    t = result.telemetry
    assert t["chunks"] >= 3
    assert t["boundary_jump_arm_deg_p50"] == pytest.approx(10.0)
    assert t["boundary_jump_arm_deg_max"] == pytest.approx(10.0)
    assert t["boundary_jump_x_mps_max"] == pytest.approx(0.05, abs=1e-6)
    assert t["boundary_jump_y_mps_max"] == 0.0 and t["boundary_jump_theta_dps_p50"] == pytest.approx(2.0)
    records = [json.loads(line) for line in (tmp_path / "telemetry.jsonl").read_text().splitlines()]
    jumps = [r for r in records if r["kind"] == "boundary"]
    assert len(jumps) >= 2 and all(r["jump_arm_deg"] == pytest.approx(10.0) for r in jumps)
    chunk_ids = [r["chunk"] for r in jumps]
    assert chunk_ids[0] >= 1 and chunk_ids == sorted(set(chunk_ids))
    episode = records[-1]
    assert episode["kind"] == "episode" and {"late_actions", "skipped_actions", "overruns", "skipped_ticks",
                                             "lateness_ms_p99", "boundary_jump_arm_deg_max"} <= set(episode)


@pytest.mark.parametrize(("typed", "expected"), [
    (b" ", ["stop"]),
    (b"\x1b", ["stop"]),  # a lone Esc: the e-stop once the terminal has been quiet for 50 ms
    (b"\x1b[A\x1b[B\x1b[C\x1b[D\x1bOA", []),  # arrow keys start with ESC and are not the e-stop
    (b"x\x1b[A q", ["stop", "quit"]),
])
def test_estop_keys_on_a_real_terminal(typed, expected):
    """Through a pseudo-terminal and the project's one key reader (teleop/terminal.py)."""
    import os

    from lekiwi_drift.control.keys import EstopKeys

    master, slave = os.openpty()
    hits: list[str] = []
    try:
        with EstopKeys(lambda: hits.append("stop"), on_quit=lambda: hits.append("quit"), fd=slave) as keys:
            assert keys.active
            os.write(master, typed)
            time.sleep(0.4)
        assert hits == expected
    finally:
        os.close(slave)
        os.close(master)


# ---------------------------------------------------------------- end to end: tiny policy, lockstep sim


def write_preset(root, vlm_dir, **fields):
    lines = [f"checkpoint: {root / 'model'}", f"vlm_dir: {vlm_dir}", "sim_size: 64x48"]
    lines += [f"{k}: {v}" for k, v in fields.items()]
    path = root / f"p_{abs(hash(tuple(fields.items())))}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_preset(path)


def test_runtime_checks_cameras_before_anything_moves(tiny_checkpoint, tiny_vlm_dir):
    from lekiwi_drift.config.robot import CameraConfig, RobotConfig
    from lekiwi_drift.control.runtime import PolicyRuntime
    from lekiwi_drift.policy.checkpoint import PolicyMismatchError

    p = write_preset(tiny_checkpoint, tiny_vlm_dir)
    two_cams = RobotConfig(cameras=[CameraConfig("front"), CameraConfig("wrist")])
    with pytest.raises(PolicyMismatchError, match="cameras"):
        PolicyRuntime.load(p, two_cams, warmup=False)


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_loop_end_to_end_against_the_lockstep_sim(tiny_checkpoint, tiny_vlm_dir, tmp_path, mode):
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.control.runtime import PolicyRuntime
    from lekiwi_drift.link.client import RobotLink
    from lekiwi_drift.sim.local import start_local_sim_host

    p = write_preset(tiny_checkpoint, tiny_vlm_dir, mode=mode, keystone_samples=4, keystone_clusters=2)
    cfg = load_config(None)
    runtime = PolicyRuntime.load(p, cfg)
    assert len(runtime.checkpoint_hash) == 12 and runtime.warmup_ms > 0
    with start_local_sim_host(cfg, clock="lockstep", size="64x48") as local:
        link = RobotLink(local.config)
        link.connect()
        try:
            link.request({"op": "reset", "item": "salt_bottle", "seed": 3})
            sim_t0 = link.latest().extras["_sim_time"]
            loop = ControlLoop(link, runtime, p, local.config, run_dir=tmp_path / "run")
            result = loop.run_episode(max_time_s=2.0)
            loop.close()
            sim_t1 = link.latest().extras["_sim_time"]
        finally:
            link.close()
    t = result.telemetry
    assert result.outcome in ("timeout", "success"), result.error
    assert result.auto_success is not None
    assert t["chunks"] >= 3 and t["hz"] > 20
    assert sim_t1 - sim_t0 > 1.0  # one sim step per tick
    records = [json.loads(line) for line in (tmp_path / "run" / "telemetry.jsonl").read_text().splitlines()]
    chunks = [r for r in records if r["kind"] == "chunk"]
    assert len(chunks) == t["chunks"] and chunks[0]["samples"] == 4
    assert {"prefix_ms", "expert_ms", "keystone_ms", "spread", "guard", "obs_age_ms"} <= set(chunks[0])
    assert records[-1]["kind"] == "episode" and records[-1]["outcome"] == result.outcome
