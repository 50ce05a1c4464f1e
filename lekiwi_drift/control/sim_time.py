"""Inference latency charged in sim time: evaluations whose outcome does not depend on the machine's load.

On the lockstep sim the world only moves when a command arrives, so a policy evaluated there in wall
time gets its latency charged by whatever else the machine is doing. `SimTimeEpisode` instead runs the
episode on the sim's own clock (tick k is at k / hz) and charges each chunk a latency from a
`LatencyProfile`: when the schedule asks for a chunk at tick k, the policy computes it at once (the sim
waits), then the chunk only becomes available at k / hz + latency. Until then the robot keeps executing
what it would be executing (the rest of the previous chunk, or a hold in `sync` mode and at start-up);
when the chunk lands, the async scheduler drops the actions whose time has passed, exactly as on the
robot (control/scheduler.py). The sampler's noise is seeded from the scene seed and the chunk number, so
the same seed, profile and policy give the same episode on any machine, however loaded.

Profiles: `measured` (this machine's own inference time of each chunk, as measured while computing
it: realistic for this machine but load-dependent), `paper-laptop` and `paper-gpu` (the Drift-VLA
paper's per-chunk figures, with FM-n and KeyStone derived from its prefix + expert-pass split), or a
fixed number of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from lekiwi_drift.control.scheduler import ActionSchedule

# The paper's figures, split into the observation prefix (encoded once) and one action-expert pass:
# laptop GPU: drift (prefix + 1 pass) 132 ms, FM-10 (prefix + 10 passes) 246 ms -> pass 12.67 ms,
#   prefix 119.3 ms; drift + KeyStone (K = 8 from one batched pass, plus the selection) 172 ms.
# datacenter GPU (LIBERO): drift 50.6 ms, FM-10 232.9 ms -> pass 20.26 ms, prefix 30.3 ms;
#   KeyStone +2.9 ms.
PROFILES = {
    "paper-laptop": {"prefix_ms": 132.0 - (246.0 - 132.0) / 9, "pass_ms": (246.0 - 132.0) / 9, "keystone_ms": 40.0},
    "paper-gpu": {"prefix_ms": 50.6 - (232.9 - 50.6) / 9, "pass_ms": (232.9 - 50.6) / 9, "keystone_ms": 2.9},
}
PROFILE_NAMES = ("measured", *PROFILES)


class LatencyError(ValueError):
    """A `--latency` value that is none of the profiles and no number of milliseconds."""


@dataclass(frozen=True)
class LatencyProfile:
    name: str  # "measured", "paper-laptop", "paper-gpu" or "<ms> ms"
    fixed_ms: float | None = None

    @classmethod
    def parse(cls, text: str) -> LatencyProfile:
        text = str(text).strip()
        if text in PROFILE_NAMES:
            return cls(text)
        try:
            ms = float(text.removesuffix("ms"))
        except ValueError:
            raise LatencyError(f"--latency {text!r}: choose {', '.join(PROFILE_NAMES)} or a number of ms") from None
        if not 0.0 <= ms < 60_000.0:
            raise LatencyError(f"--latency {text!r}: milliseconds must be in [0, 60000)")
        return cls(f"{ms:g} ms", ms)

    def latency_ms(self, config, measured_ms: float) -> float:
        """The latency charged for one chunk of a policy with this `config` (sampler, flow_steps,
        keystone_samples), `measured_ms` being what computing it took here."""
        if self.fixed_ms is not None:
            return self.fixed_ms
        if self.name == "measured":
            return float(measured_ms)
        p = PROFILES[self.name]
        if config.sampler == "flow":
            return p["prefix_ms"] + int(config.flow_steps) * p["pass_ms"]
        keystone = p["keystone_ms"] if int(config.keystone_samples) > 1 else 0.0
        return p["prefix_ms"] + p["pass_ms"] + keystone


class SimTimeEpisode:
    """One episode of `loop` (a ControlLoop) on the lockstep sim's clock; see the module doc.

    `run()` returns (outcome, error, last observation), like ControlLoop's wall-clock ticks."""

    def __init__(
        self,
        loop,
        episode: int,
        sched: ActionSchedule,
        profile: LatencyProfile,
        max_time_s: float,
        stop=None,
        on_status=None,
    ):
        self.loop, self.episode, self.sched, self.profile = loop, episode, sched, profile
        self.max_time_s, self.stop, self.on_status = max_time_s, stop, on_status
        self.period = loop.period
        self.status_every = max(1, int(round(loop.status_period / self.period)))

    def run(self, obs):
        loop, sched, tel = self.loop, self.sched, self.loop.telemetry
        c = tel.c
        preset = loop.preset
        # The latency estimate that decides when to start the next chunk starts empty, not from the wall-clock
        # warm-up measurement (which depends on the machine's load); the first chunk's charged latency seeds it.
        sched.latency_ticks_ema = None
        pending = None  # a computed chunk waiting for its (sim) ready time
        have_chunk = False
        stall_since_replan = 0
        chunk_index = 0
        last_info = None
        tick = 0
        while True:
            now = tick * self.period
            if loop.estop_requested():
                return "estop", None, obs
            if self.stop is not None and self.stop.is_set():
                return "stopped", None, obs
            if preset.end_on_success and obs.extras.get("_success") is True:
                return "success", None, obs
            if now >= self.max_time_s - 1e-9:
                return "timeout", None, obs
            tel.tick(0.0, None, 0.0)  # sim time: no lateness or rate to measure (both exact by construction)
            chunks_before = c.chunks
            if pending is not None and now >= pending.t_ready - 1e-9:
                last_info, have_chunk, stall_since_replan, pending = self._land(
                    pending, now, stall_since_replan, have_chunk
                )
            if pending is None and sched.wants_chunk(now):
                # Noise seeded by the scene seed and the chunk number: the same episode on any machine.
                seed = int(obs.extras.get("_seed") or 0) * 100_003 + chunk_index
                pending = loop.runtime.infer(obs, t_obs=now, noise_seed=seed)
                latency_s = self.profile.latency_ms(loop.runtime.policy.config, pending.info["infer_ms"]) / 1e3
                pending.info["charged_ms"] = latency_s * 1e3
                pending.t_start, pending.t_ready, pending.index = now, now + latency_s, chunk_index
                chunk_index += 1
                sched.observe_latency(latency_s)
                if latency_s <= 1e-9:  # an instant policy: its chunk serves this very tick
                    last_info, have_chunk, stall_since_replan, pending = self._land(
                        pending, now, stall_since_replan, have_chunk
                    )
            loop.watchers.frame(obs, now, new_chunk=c.chunks > chunks_before)
            command, stalled = loop.command_for(sched, sched.pop(now), have_chunk)
            stall_since_replan += stalled
            obs = loop.step(command, obs)
            tick += 1
            if self.on_status is not None and tick % self.status_every == 0:
                self.on_status(loop.status(now, now, tel, obs, sched, last_info))

    def _land(self, chunk, now: float, stall_ticks: int, had_chunk: bool):
        """The pending chunk takes over: install it (async drops what passed) and log it. Returns the loop's
        new (last_info, have_chunk, stall_since_replan, pending)."""
        installed = self.sched.install(chunk, now)
        self.loop.telemetry.chunk(chunk, installed, stall_ticks, 0, 0.0, self.loop.preset.mode, startup=not had_chunk)
        return chunk.info, True, 0, None
