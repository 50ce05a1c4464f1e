"""`ControlLoop`: the 30 Hz onboard loop from observations to safe commands.

Each tick, on a monotonic clock: take the newest observation; refuse to act on a stale one (base
stopped, arm held); install a chunk that has landed; start the next inference when the schedule asks
(in a worker thread, so the loop keeps ticking while the policy thinks); send this tick's action
through the safety filter (or a hold when there is none: a stall); record telemetry. Every exit —
time limit, success, stop event, e-stop, a policy exception, Ctrl-C — sends a safe stop first.

Lockstep hosts (the deterministic sim) need nothing special: the loop sends exactly one command per
tick and each command advances the sim by one control period. With a `latency` profile the episode runs
on the sim's clock instead, and inference latency is charged in sim time (control/sim_time.py).
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from lekiwi_drift.config.robot import RobotConfig
from lekiwi_drift.control.episode import OUTCOMES, EpisodeResult, TickStatus  # noqa: F401 (re-exported)
from lekiwi_drift.control.preset import Preset
from lekiwi_drift.control.runtime import PolicyRuntime
from lekiwi_drift.control.safety import SafetyFilter, joint_limits
from lekiwi_drift.control.scheduler import ActionSchedule
from lekiwi_drift.control.sim_time import LatencyProfile, SimTimeEpisode
from lekiwi_drift.control.telemetry import Telemetry
from lekiwi_drift.control.watchers import EpisodeWatchers
from lekiwi_drift.control.worker import InferenceWorker
from lekiwi_drift.link.wire import Observation
from lekiwi_drift.robots.features import STATE_KEYS

log = logging.getLogger(__name__)

# While the loop runs, let a waking control thread take the GIL from the inference thread within
# 1 ms instead of CPython's default 5 ms (torch drops the GIL inside ops, but not in the Python glue
# between them). Restored when the episode ends.
SWITCH_INTERVAL_S = 0.001


class ControlLoop:
    def __init__(
        self,
        link,
        runtime: PolicyRuntime,
        preset: Preset,
        robot_config: RobotConfig | None = None,
        run_dir: str | Path | None = None,
        status_hz: float = 4.0,
        latency: LatencyProfile | None = None,
        video=None,
        taps=(),
    ):
        """`latency`: run episodes on the lockstep sim's clock with this inference-latency profile
        (control/sim_time.py); None: wall-clock ticks, the robot's way."""
        self.link = link
        self.latency = latency
        self.watchers = EpisodeWatchers(video, taps)  # the rollout MP4 and per-tick taps (control/watchers.py)
        self.runtime = runtime
        self.preset = preset
        self.period = 1.0 / preset.control_hz
        limits, self.limits_source = joint_limits(robot_config)
        self.safety = SafetyFilter(preset.safety, limits)
        self.telemetry = Telemetry(run_dir)
        self.status_period = 1.0 / status_hz
        self._estop = threading.Event()
        self._estop_held = False  # the e-stop's one hold has gone out
        self._send_lock = threading.Lock()  # the loop and estop() both send; safety state is shared
        self._worker: InferenceWorker | None = None
        self._episode = 0
        self._last_obs: Observation | None = None

    # -- the e-stop ----------------------------------------------------------------------------------
    def estop(self) -> None:
        """Thread-safe: stop the base and hold the arm now, and end the running episode ("estop"). Exactly
        one hold goes out (from here, or from the loop's next tick when it could not be sent from here);
        after it, nothing: no policy action and no second hold."""
        obs = self.link.latest()
        with self._send_lock:
            if self._estop.is_set():
                return
            self._estop.set()
            try:
                self.link.send_action(self.safety.hold(obs.state if obs is not None else None))
                self._estop_held = True
            except Exception as exc:  # not connected yet / before reset: the loop sends it on its next tick
                log.debug("e-stop command not sent from the caller's thread: %s", exc)

    def clear_estop(self) -> None:
        with self._send_lock:
            self._estop.clear()
            self._estop_held = False

    def estop_requested(self) -> bool:
        return self._estop.is_set()

    def close(self, wait_s: float = 0.0) -> None:
        """End the inference thread (after up to `wait_s` for a chunk still in flight) and telemetry."""
        if self._worker is not None:
            if wait_s > 0:
                self._worker.wait_idle(wait_s)
            self._worker.close()
            self._worker = None
        self.telemetry.close()

    # -- helpers --------------------------------------------------------------------------------------
    def _send(self, action: dict[str, float], obs: Observation | None = None) -> None:
        """Send a command (an e-stop wins); `obs`: the tick's observation, for the taps."""
        with self._send_lock:
            if self._estop.is_set():  # an e-stop raced this tick's command: it wins
                if self._estop_held:
                    return
                action, self._estop_held = self.safety.hold(), True
            self.link.send_action(action)
        self.watchers.sent(obs, action)

    def step(self, action: dict[str, float], obs: Observation | None = None) -> Observation:
        """Lockstep sim: send this tick's command (an e-stop wins) and return the observation after it."""
        with self._send_lock:
            if self._estop.is_set():
                if self._estop_held:
                    return self.link.latest()
                action, self._estop_held = self.safety.hold(), True
            after = self.link.step(action)
        self.watchers.sent(obs, action)
        return after

    def command_for(self, sched: ActionSchedule, popped, have_chunk: bool) -> tuple[dict[str, float], bool]:
        """This tick's command from what the schedule popped: the policy's action through the safety filter,
        or a hold when there is none (a stall once a chunk has run, start-up before). Counts the stall or
        start-up tick and records a boundary jump; returns (command, stalled). Wall-clock and sim-time
        episodes both come through here."""
        c = self.telemetry.c
        if popped.jump is not None:
            self.telemetry.boundary(sched.chunk_index, sched.jump_summary(popped.jump))
        if popped.action is None:
            if have_chunk:
                c.stall_ticks += 1
            else:
                c.startup_ticks += 1
            return self.safety.keep(), have_chunk
        with self._send_lock:
            return self.safety.filter(dict(zip(STATE_KEYS, popped.action.tolist()))), False

    def status(
        self,
        elapsed: float,
        now: float,
        tel: Telemetry,
        obs: Observation,
        sched: ActionSchedule,
        last_info: dict | None,
    ) -> TickStatus:
        """The live figures; `now` on the schedule's clock (monotonic, or sim time)."""
        age_ms = obs.age_s() * 1e3
        success = obs.extras.get("_success")
        c = tel.c
        left = sched.remaining(now)
        return TickStatus(
            elapsed,
            tel.hz(),
            age_ms,
            tel.last_infer_ms,
            c.stall_ticks,
            c.late_actions,
            left,
            None if success is None else bool(success),
            obs.images,
            c.chunks,
            tel.last_latency_ms,
            tel.status_line(elapsed, age_ms, left, last_info),
            c.skipped_actions,
            c.overruns,
        )

    def hold_idle(self, obs: Observation) -> None:
        """Between episodes: one hold at the pose measured now (a scene reset may have moved the arm since
        the last episode's stop fixed its pose)."""
        with self._send_lock:
            self.safety.reset(obs.state_dict())
        self.hold(obs)

    def hold(self, obs: Observation | None = None) -> None:
        """Send one hold through the safety layer: base stopped, arm held at `obs`'s measured pose (or the
        pose a previous stop fixed). Every stop of this loop ends here."""
        with self._send_lock:
            try:
                self.link.send_action(self.safety.hold(obs.state if obs is not None else None))
            except Exception as exc:
                log.error("could not send the safe stop: %s", exc)

    def _prime(self) -> Observation:
        """A fresh observation to start from: send one hold at the measured pose (on a lockstep host this
        also produces a new frame) and wait for the observation after it."""
        obs = self.link.latest()
        if obs is None:
            raise ConnectionError("no observation from the robot; connect the link first")
        self.safety.reset(obs.state_dict())
        if self.latency is not None and obs.extras.get("_clock") == "lockstep":
            # Sim time: the observation this hold produces, however long a loaded host takes; returning the
            # older one would put every later step one observation behind (another episode under load).
            return self.step(self.safety.hold(obs.state))
        self._send(self.safety.hold(obs.state))
        fresh = self.link.wait_for(obs, max(1.0, 3 * self.period))
        return fresh if fresh is not None else obs

    # -- one episode ----------------------------------------------------------------------------------
    def run_episode(
        self,
        max_time_s: float = 60.0,
        stop: threading.Event | None = None,
        on_status: Callable[[TickStatus], None] | None = None,
    ) -> EpisodeResult:
        """Run the policy until success (sim auto-score), the time limit, `stop`, the e-stop, an error
        or a stale link. Blocks; always leaves the robot stopped with the arm held."""
        self._episode += 1
        episode = self._episode
        self.clear_estop()
        if self._worker is None:
            self._worker = InferenceWorker(self.runtime)
        elif self._worker.busy:  # an inference from the previous episode is still running: let it end
            self._worker.wait_idle(30.0)
        while self._worker.poll() is not None:
            pass
        tel = self.telemetry
        tel.start_episode(episode)
        sched = ActionSchedule(
            self.preset.control_hz, self.runtime.n_action_steps, self.preset.mode, self.preset.latency_margin_ticks
        )
        if not math.isnan(self.runtime.warmup_ms):  # seed the latency estimate with the warm-up chunk
            sched.observe_latency(self.runtime.warmup_ms / 1e3)
        saved_switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        t_start = time.monotonic()
        outcome, error, interrupted = "timeout", None, False
        obs: Observation | None = None
        try:
            obs = self._prime()
            self.watchers.start()
            if self.latency is not None:
                if obs.extras.get("_clock") != "lockstep":
                    raise RuntimeError("latency charged in sim time needs the lockstep sim (--sim --clock lockstep)")
                outcome, error, obs = SimTimeEpisode(
                    self, episode, sched, self.latency, max_time_s, stop, on_status
                ).run(obs)
            else:
                outcome, error, obs = self._ticks(episode, sched, t_start, max_time_s, stop, on_status)
        except KeyboardInterrupt:
            outcome, error, interrupted = "stopped", "interrupted (Ctrl-C)", True
        except Exception as exc:
            log.error("control loop error: %s", traceback.format_exc())
            outcome, error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            if not self._estop_held:  # an e-stop already sent this episode's one hold
                self.hold(obs)
            sys.setswitchinterval(saved_switch)
        obs = self.link.latest()
        success = obs.extras.get("_success") if obs is not None else None
        auto = bool(success) if success is not None else None
        summary = tel.summary()
        summary["safety_events"] = dict(self.safety.events)
        if self.watchers.video is not None:
            summary["video"] = self.watchers.save_video(episode, obs, outcome, f"{self.preset.name}: {outcome}")
        result = EpisodeResult(outcome, time.monotonic() - t_start, auto, error, summary, episode, interrupted)
        tel.write(
            {
                "kind": "episode",
                "episode": episode,
                "outcome": outcome,
                "duration_s": result.duration_s,
                "auto_success": auto,
                "error": error,
                "preset": self.preset.name,
                "checkpoint_hash": self.runtime.checkpoint_hash,
                "mode": self.preset.mode,
                **summary,
            }
        )
        self.safety.events.clear()
        return result

    def _ticks(self, episode, sched: ActionSchedule, t_start, max_time_s, stop, on_status):
        tel, worker, preset = self.telemetry, self._worker, self.preset
        c = tel.c
        next_tick = time.monotonic()
        # Lateness is measured on the ideal grid t_grid + k·period, which never re-anchors: a tick that
        # starts more than a period after its slot is an overrun, and the ideal ticks whose slots
        # passed meanwhile are counted as skipped (the loop itself re-anchors and does not catch up, so
        # after an overrun its ticks may keep a phase of under one period against the grid).
        t_grid, k = next_tick, -1
        last_tick_start: float | None = None
        last_status = 0.0
        stale_since: float | None = None
        have_chunk = False
        stall_since_replan = late_since_replan = skipped_since_replan = 0
        chunk_index = 0
        last_info: dict | None = None
        while True:
            now = time.monotonic()
            obs = self.link.latest()
            age = obs.age_s()
            k += 1
            lateness = now - (t_grid + k * self.period)
            overrun, skipped_ticks = lateness > self.period, 0
            if overrun:  # the ideal ticks up to the one whose slot holds `now` never run
                k_now = int(math.floor((now - t_grid) / self.period))
                skipped_ticks, k = max(k_now - k, 0), max(k_now, k)
            tel.tick(
                now - next_tick,
                None if last_tick_start is None else now - last_tick_start,
                age,
                lateness,
                overrun,
                skipped_ticks,
            )
            last_tick_start = now
            elapsed = now - t_start
            # -- endings -----------------------------------------------------------------------------
            if self._estop.is_set():
                return "estop", None, obs
            if stop is not None and stop.is_set():
                return "stopped", None, obs
            if preset.end_on_success and obs.extras.get("_success") is True:
                return "success", None, obs
            if elapsed >= max_time_s:
                return "timeout", None, obs
            # -- a chunk landed? --------------------------------------------------------------------------
            landed = worker.poll()
            if landed is not None:
                tag, result = landed
                if isinstance(result, BaseException):
                    trace = getattr(result, "trace", "")
                    log.error("policy inference failed; robot stopped:\n%s", trace)
                    return "error", f"policy: {type(result).__name__}: {result}", obs
                if tag == episode:
                    # Compute time, not observation-to-ready: the trigger must start the next chunk early
                    # enough for it to land before this one runs out, and from the trigger to landing
                    # takes compute only (the observation's age decides which actions are dropped).
                    sched.observe_latency(result.t_ready - result.t_start)
                    result.index = chunk_index
                    chunk_index += 1
                    installed = sched.install(result, now)
                    offset = getattr(getattr(self.link, "stats", None), "clock_offset_s", None)
                    tel.chunk(
                        result,
                        installed,
                        stall_since_replan,
                        late_since_replan,
                        (result.t_start - result.t_obs) * 1e3,
                        preset.mode,
                        startup=not have_chunk,
                        host_clock_offset_s=offset,
                        skipped_actions=skipped_since_replan,
                    )
                    last_info = result.info
                    have_chunk = True
                    stall_since_replan = late_since_replan = skipped_since_replan = 0
            self.watchers.frame(obs, elapsed, new_chunk=landed is not None)
            # -- stale observation: stop the base, hold the arm, do not infer on it ---------------------
            if age * 1e3 > preset.safety.max_obs_age_ms:
                stale_since = stale_since if stale_since is not None else now
                c.stale_obs_ticks += 1
                self.hold(obs)
                if now - stale_since >= preset.safety.stale_timeout_s:
                    return (
                        "stale",
                        f"observation older than {preset.safety.max_obs_age_ms:.0f} ms for {now - stale_since:.1f} s",
                        obs,
                    )
            else:
                stale_since = None
                if not worker.busy and sched.wants_chunk(now):
                    worker.submit(episode, obs, now - age)
                popped = sched.pop(now, sent_at=time.monotonic())
                c.skipped_actions += popped.skipped
                skipped_since_replan += popped.skipped
                c.late_actions += popped.late  # never late without an action
                late_since_replan += popped.late
                command, stalled = self.command_for(sched, popped, have_chunk)
                stall_since_replan += stalled
                self._send(command, obs)
            # -- status ---------------------------------------------------------------------------------
            if now - last_status >= self.status_period:
                last_status = now
                if on_status is not None:
                    on_status(self.status(elapsed, now, tel, obs, sched, last_info))
            # -- wait for the next tick -----------------------------------------------------------------
            next_tick += self.period
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -self.period:
                next_tick = time.monotonic()  # overran by more than a tick: re-anchor, no catch-up burst
