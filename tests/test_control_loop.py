"""The control loop (lekiwi_drift/control): presets, scheduler, the e-stop keys; then end to end with a tiny
policy against the lockstep sim over the wire. The loop against a scripted link and runtime is in
test_control_loop_scripted.py."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from lekiwi_drift.config.robot import ConfigError
from lekiwi_drift.control.loop import ControlLoop
from lekiwi_drift.control.preset import load_preset
from lekiwi_drift.control.scheduler import ActionSchedule, Chunk

HZ = 30.0


# ---------------------------------------------------------------- presets


def test_shipped_presets_load():
    for name in ("drift", "drift1", "fm10", "fm1"):
        p = load_preset(name)
        assert p.name == name and p.control_hz == 30.0 and p.checkpoint.endswith("_small")
    d, f = load_preset("drift"), load_preset("fm10")
    assert (d.sampler, d.keystone_samples, d.keystone_clusters, d.keystone_tau) == ("drift", 8, 4, 0.3)
    assert (f.sampler, f.flow_steps, f.keystone) == ("flow", 10, False)
    assert load_preset("drift1").keystone is False and load_preset("fm1").flow_steps == 1


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("checkpoint: x\nmode: fast\n", "mode"),
        ("checkpoint: x\nkeystone_samples: 8\nsampler: flow\n", "keystone_samples"),
        ("checkpoint: x\ncontrol_hz: true\n", "control_hz"),
        ("checkpoint: x\nsafety: {max_joint_step_deg: -1}\n", "safety.max_joint_step_deg"),
        ("checkpoint: x\nsafety: {max_linear_speed: 2.0}\n", "safety"),
        ("checkpoint: x\ncamera: {front: front}\n", "unknown field"),
        ("sampler: drift\n", "checkpoint"),
    ],
)
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


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (b" ", ["stop"]),
        (b"\x1b", ["stop"]),  # a lone Esc: the e-stop once the terminal has been quiet for 50 ms
        (b"\x1b[A\x1b[B\x1b[C\x1b[D\x1bOA", []),  # arrow keys start with ESC and are not the e-stop
        (b"x\x1b[A q", ["stop", "quit"]),
    ],
)
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


class SteppedLink:
    """The link as the loop sees it, keeping the sim time of the observation each lockstep step returned (and
    of the one the first step started from)."""

    def __init__(self, link):
        self.link = link
        self.sim_t0: float | None = None
        self.sim_times: list[float] = []

    def step(self, action):
        if self.sim_t0 is None:
            self.sim_t0 = self.link.latest().extras["_sim_time"]
        obs = self.link.step(action)
        self.sim_times.append(obs.extras["_sim_time"])
        return obs

    def __getattr__(self, name):
        return getattr(self.link, name)


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_loop_end_to_end_against_the_lockstep_sim(tiny_checkpoint, tiny_vlm_dir, tmp_path, mode):
    """On the sim's clock with the paper's GPU latency charged in sim time (control/sim_time.py): the
    episode's length does not depend on how loaded this machine is."""
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.control.runtime import PolicyRuntime
    from lekiwi_drift.control.sim_time import LatencyProfile
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
            stepped = SteppedLink(link)
            loop = ControlLoop(
                stepped, runtime, p, local.config, run_dir=tmp_path / "run", latency=LatencyProfile.parse("paper-gpu")
            )
            result = loop.run_episode(max_time_s=2.0)
            loop.close()
        finally:
            link.close()
    t = result.telemetry
    ticks = round(2.0 * HZ)
    # A random tiny policy on a fresh scene cannot put the bottle in the basket in 2 s: the sim says so.
    assert result.outcome == "timeout" and result.auto_success is False, result.error
    # The prime's hold (one step: the observation the first tick acts on), then exactly 2 s of 30 Hz ticks,
    # one step each.
    assert t["ticks"] == len(stepped.sim_times) - 1 == ticks
    assert stepped.sim_times[-1] - stepped.sim_times[0] == pytest.approx(ticks / HZ, abs=1e-5)
    assert np.diff([stepped.sim_t0, *stepped.sim_times]) == pytest.approx(1 / HZ, abs=1e-5)
    assert t["chunks"] >= 3 and t["charged_ms_p50"] == pytest.approx(50.6 + 2.9)  # drift + KeyStone, paper GPU
    records = [json.loads(line) for line in (tmp_path / "run" / "telemetry.jsonl").read_text().splitlines()]
    chunks = [r for r in records if r["kind"] == "chunk"]
    assert len(chunks) == t["chunks"] and chunks[0]["samples"] == 4
    assert {"prefix_ms", "expert_ms", "keystone_ms", "spread", "guard", "obs_age_ms"} <= set(chunks[0])
    assert records[-1]["kind"] == "episode" and records[-1]["outcome"] == result.outcome
