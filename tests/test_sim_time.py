"""Inference latency charged in sim time (control/sim_time.py): the profiles, the schedule it produces
against a scripted lockstep link, and determinism under load with a real policy on the lockstep sim."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from types import SimpleNamespace

import numpy as np
import pytest

from lekiwi_drift.control.loop import ControlLoop
from lekiwi_drift.control.preset import Preset
from lekiwi_drift.control.scheduler import Chunk
from lekiwi_drift.control.sim_time import LatencyError, LatencyProfile
from lekiwi_drift.link.wire import Observation
from lekiwi_drift.robots.features import STATE_KEYS

PAN = STATE_KEYS.index("arm_shoulder_pan.pos")


def cfg(sampler="drift", flow_steps=10, keystone_samples=1):
    return SimpleNamespace(sampler=sampler, flow_steps=flow_steps, keystone_samples=keystone_samples)


def test_paper_profiles_reproduce_the_papers_figures():
    laptop, gpu = LatencyProfile.parse("paper-laptop"), LatencyProfile.parse("paper-gpu")
    assert laptop.latency_ms(cfg(), 1.0) == pytest.approx(132.0)
    assert laptop.latency_ms(cfg(keystone_samples=8), 1.0) == pytest.approx(172.0)
    assert laptop.latency_ms(cfg("flow", 10), 1.0) == pytest.approx(246.0)
    assert laptop.latency_ms(cfg("flow", 1), 1.0) == pytest.approx(132.0)  # FM-1: one pass, like drift
    assert gpu.latency_ms(cfg(), 1.0) == pytest.approx(50.6)
    assert gpu.latency_ms(cfg("flow", 10), 1.0) == pytest.approx(232.9)
    assert gpu.latency_ms(cfg(keystone_samples=8), 1.0) == pytest.approx(53.5)
    assert LatencyProfile.parse("measured").latency_ms(cfg(), 87.5) == 87.5
    assert LatencyProfile.parse("40").latency_ms(cfg("flow", 10), 999.0) == 40.0
    for bad in ("fast", "-3", "1e9"):
        with pytest.raises(LatencyError, match="latency"):
            LatencyProfile.parse(bad)


class LockstepLink:
    """A lockstep host in miniature: each step() advances one tick; the state's pan joint is the last
    commanded pan, so the test can read back exactly which action ran at every tick."""

    def __init__(self):
        self.tick = 0
        self.sent: list[dict] = []
        self.pan = 0.0

    def _obs(self) -> Observation:
        state = np.zeros(9, np.float32)
        state[PAN] = self.pan
        return Observation(
            state=state, images={}, seq=self.tick, extras={"_clock": "lockstep", "_seed": 7, "_success": False}
        )

    def latest(self):
        return self._obs()

    def wait_for(self, after, timeout_s):
        return self._obs()

    def send_action(self, action):  # the prime's hold and the final safe stop
        self.sent.append(dict(action))

    def step(self, action):
        self.sent.append(dict(action))
        self.pan = action["arm_shoulder_pan.pos"]
        self.tick += 1
        return self._obs()


class SlotRuntime:
    """Chunk c's action i commands pan = (c+1) + i/50 (inside the pan joint's limits): every executed action
    names its chunk and slot.
    Each call takes a random wall time, which sim time must ignore."""

    n_action_steps = 20
    warmup_ms = float("nan")
    checkpoint_hash = "0" * 12
    policy = SimpleNamespace(config=cfg())

    def __init__(self):
        self.calls = 0
        self.ticks_seen: list[float] = []

    def infer(self, obs, t_obs, noise_seed=None):
        time.sleep(random.uniform(0.0, 0.02))
        self.ticks_seen.append(t_obs)
        actions = np.zeros((20, 9), np.float32)
        actions[:, PAN] = (self.calls + 1) + np.arange(20) / 50.0
        self.calls += 1
        return Chunk(actions, t_obs, t_obs, t_obs, {"infer_ms": 5.0})


def decode(pan: float) -> tuple[int, int]:
    chunk = int(np.floor(pan + 1e-3))
    return chunk, int(round((pan - chunk) * 50.0))


def run_scripted(latency_ms: float, mode: str = "async", seconds: float = 3.0):
    link, runtime = LockstepLink(), SlotRuntime()
    p = Preset(name="t", checkpoint="unused", mode=mode, latency_margin_ticks=2)
    p.safety.max_joint_step_deg = 1e6  # let the commanded values through unchanged
    loop = ControlLoop(link, runtime, p, latency=LatencyProfile.parse(str(latency_ms)))
    result = loop.run_episode(max_time_s=seconds)
    loop.close()
    pans = [a["arm_shoulder_pan.pos"] for a in link.sent[1:-1]]  # drop the prime hold and the safe stop
    return result, pans, runtime


def test_async_chunk_lands_after_its_latency_and_drops_exactly_the_missed_actions():
    result, pans, runtime = run_scripted(100.0)  # 3 ticks of latency
    assert result.outcome == "timeout" and len(pans) == 90  # 3 s of sim time = 90 ticks, whatever the wall
    assert pans[:3] == [0.0, 0.0, 0.0]  # start-up: nothing to execute until the first chunk lands
    executed = [decode(p) for p in pans[3:]]
    assert executed[0] == (1, 3)  # chunk 1 landed at tick 3: slots 0-2 had passed and were dropped
    for (c0, i0), (c1, i1) in zip(executed, executed[1:]):
        assert (c1 == c0 and i1 == i0 + 1) or (c1 == c0 + 1), "an action was replayed or skipped"
        if c1 == c0 + 1:  # the next chunk starts at its own slot for this tick: its latency is dropped
            t_obs_tick = round(runtime.ticks_seen[c0] * 30)
            assert i1 == (executed.index((c1, i1)) + 3) - t_obs_tick
    assert result.telemetry["stall_ticks"] == 0
    assert result.telemetry["dropped_actions"] == 3 * result.telemetry["chunks"]


def test_sync_mode_holds_still_for_the_latency():
    result, pans, _ = run_scripted(200.0, mode="sync", seconds=2.0)  # 6 ticks per inference
    assert pans[:6] == [0.0] * 6 and decode(pans[6]) == (1, 0)  # chunk 1 from slot 0 after 6 held ticks
    assert result.telemetry["stall_ticks"] >= 6 * (result.telemetry["chunks"] - 1) - 6


def test_wall_time_and_load_do_not_change_a_scripted_episode():
    assert run_scripted(150.0)[1] == run_scripted(150.0)[1]


def _burn(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


@pytest.fixture(scope="module")
def tiny_preset(tiny_checkpoint, tiny_vlm_dir):
    from lekiwi_drift.control.preset import load_preset

    root = tiny_checkpoint
    path = root / "p.yaml"
    path.write_text(
        f"checkpoint: {root / 'model'}\nvlm_dir: {tiny_vlm_dir}\nsim_size: 64x48\n"
        "keystone_samples: 4\nkeystone_clusters: 2\nend_on_success: false\n"
    )
    return load_preset(path)


def test_same_seed_and_profile_give_the_same_episode_under_load(tiny_preset):
    """The acceptance check: a real policy on the real lockstep sim, twice, the second time with two
    processes burning the CPU: the robot's trajectory is identical."""
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.control.runtime import PolicyRuntime
    from lekiwi_drift.link.client import RobotLink
    from lekiwi_drift.sim.local import start_local_sim_host

    cfg_ = load_config(None)
    runtime = PolicyRuntime.load(tiny_preset, cfg_)

    def episode() -> tuple[str, list[list[float]], dict]:
        with start_local_sim_host(cfg_, clock="lockstep", size="64x48", scene=0) as local:
            link = RobotLink(local.config)
            link.connect()
            try:
                link.request({"op": "reset", "item": "salt_bottle", "seed": 5, "scene": 0})
                loop = ControlLoop(
                    link, runtime, tiny_preset, local.config, latency=LatencyProfile.parse("paper-laptop")
                )
                states = []
                result = loop.run_episode(max_time_s=1.5, on_status=lambda st: None)
                states.append(link.latest().state.round(4).tolist())
                loop.close()
            finally:
                link.close()
        t = result.telemetry
        # The error text too: a loaded episode that ends in "error" must say why in the assertion.
        counts = {k: t[k] for k in ("chunks", "ticks", "dropped_actions", "stall_ticks")}
        return result.outcome, result.error, states, counts

    quiet = episode()
    runtime.warmup_ms *= 7.0  # a busier machine measures a slower warm-up chunk: it must not matter
    ctx = mp.get_context("spawn")
    burners = [ctx.Process(target=_burn, args=(time.time() + 60,), daemon=True) for _ in range(2)]
    for b in burners:
        b.start()
    try:
        loaded = episode()
    finally:
        for b in burners:
            b.terminate()
            b.join(10)
    assert quiet == loaded
    assert quiet[3]["ticks"] == 45 and quiet[3]["dropped_actions"] > 0  # latency was charged, in sim ticks


def test_rollout_video_marks_time_and_chunk_boundaries(tmp_path):
    import av

    from lekiwi_drift.control.rollout_video import BAR_PX, STRIP_PX, RolloutVideo

    class CameraLink(LockstepLink):
        def _obs(self):
            obs = super()._obs()
            # Odd widths: the MP4 must still come out with even dimensions.
            obs.images = {c: np.full((24, 31, 3), 3 * self.tick % 200, np.uint8) for c in ("front", "wrist", "top")}
            return obs

    link, runtime = CameraLink(), SlotRuntime()
    p = Preset(name="t", checkpoint="unused", mode="async")
    loop = ControlLoop(link, runtime, p, latency=LatencyProfile.parse("100"), video=RolloutVideo(tmp_path, every=1))
    result = loop.run_episode(max_time_s=1.0)
    loop.close()
    path = result.telemetry["video"]
    assert path.endswith("episode001_seed7_timeout.mp4")
    assert not list(tmp_path.glob(".rollout-*"))  # no partial file left behind
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        frames = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    # 30 ticks of sim time at 30 frames/s, then the last frame held for a second: real-time speed.
    assert len(frames) == 30 + 30
    assert frames[1][0] == pytest.approx(1 / 30) and frames[-1][0] == pytest.approx(59 / 30)
    assert frames[0][1].shape == (24 + STRIP_PX, 94, 3)  # three cameras side by side, padded even, a time strip
    bar = [f[STRIP_PX + BAR_PX // 2, 10] for _, f in frames[:30]]  # the pictures are grey: only the bar is red
    red = [i for i, (r, g, _) in enumerate(bar) if r > 180 and g < 100]
    assert red and red[0] == 3  # the first chunk landed after its 3 ticks of latency
    assert len(red) == result.telemetry["chunks"]  # one bar per chunk that took over
