"""The teleop loop: 30 Hz (or lockstep) action -> clamp -> send, optional recording, episode flow.

Each tick: take the newest observation, ask the source for an action, clamp it, send it, and (while an
episode records) store the pair (observation, sent action) as one frame. Real time: ticks follow the
wall clock; a tick whose observation is not newer than the previous tick's still records (so time stays
uniform) and counts as dropped, as does each tick lost to an overrun. Lockstep: `link.step(action)`
advances the sim by exactly one tick, so nothing drops and runs are reproducible.

Episodes (recording): `--episodes N` of `--episode-time` s; → / n ends one early and keeps it, ← / b
discards and re-records it, Esc / q (or Ctrl-C) stops, keeping every completed episode. Between real
episodes a `--reset-time` period runs teleop unrecorded. In sim each episode starts from a fresh scene
(`reset` request, seed = --seed + episode index in the dataset) and ends early once `_success` has held
for a short tail, so the demonstration shows the finished task.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field

from lekiwi_drift.link.client import LinkTimeout
from lekiwi_drift.link.wire import Observation
from lekiwi_drift.progress import Spinner
from lekiwi_drift.teleop import keyboard as kb
from lekiwi_drift.teleop.noise import ActionNoise, NoiseConfig
from lekiwi_drift.teleop.sources import SourceError, action_vector, clamp_action, stop_base_action

log = logging.getLogger(__name__)


@dataclass
class SessionConfig:
    fps: float = 30.0
    lockstep: bool = False  # the host is a lockstep sim: use link.step()
    sim: bool = False  # the host is a sim: reset scenes between episodes, end on `_success`
    item: str = "salt_bottle"
    seed: int = 0  # scene seed of the dataset's episode 0 (episode e uses seed + e)
    scene: int | None = None  # sim: the fixed layout the seeds jitter (sim/scene.py); None: seed = layout
    expert_noise: float = 0.0  # sim, scripted expert: DART perturbation scale (teleop/noise.py); 0 = off
    only_successes: bool = False  # sim: discard an episode that times out without success, try the next seed
    max_failures_in_a_row: int = 5  # ... and give up after this many in a row (the episode time is too short?)
    episodes: int = 1
    episode_time_s: float = 60.0
    reset_time_s: float = 10.0
    success_tail_s: float = 1.0  # sim: keep recording this long after `_success` first holds
    max_obs_age_s: float = 0.5  # real time: an older observation stops the base (the arm holds)
    max_time_s: float | None = None  # live teleop (no recording): stop after this long
    status_period_s: float = 0.25


@dataclass
class Counters:
    ticks: int = 0  # ticks that ran (the loop rate counts these, never the slots an overrun lost)
    frames: int = 0
    dropped: int = 0
    stale_stops: int = 0
    clamped: int = 0
    # Real time only (a lockstep sim waits for the loop, so these are zero there by construction):
    overruns: int = 0  # ticks that ended after the next tick's slot on the ideal 1/fps grid
    skipped_ticks: int = 0  # grid slots lost to overruns (not replayed in a burst)
    overrun_max_ms: float = 0.0  # the longest overrun: how far past the next slot a tick ended


@dataclass
class SessionResult:
    saved: list[int] = field(default_factory=list)  # frame counts of the episodes saved this session
    rerecorded: int = 0
    failed: int = 0  # sim: episodes that ran out of time without success (discarded, next seed tried)
    stopped_by: str = "done"  # done | stop key | interrupt | max time


class StopSession(Exception):
    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


class TeleopSession:
    def __init__(self, config: SessionConfig, link, source, keyboard=None, recorder=None, out=None, live=None):
        self.config = config
        self.live = live  # a LiveView (live_view.py, --display-data) or None
        self.link = link
        self.source = source
        self.keyboard = keyboard  # TerminalKeyboard (or anything with pop_commands/velocity/...)
        self.recorder = recorder  # EpisodeRecorder or None (live teleop)
        self.out = out if out is not None else sys.stdout
        self.period = 1.0 / config.fps
        self._obs: Observation | None = None
        self._last_action: dict[str, float] | None = None
        self._last_seq = None
        self._status_t = 0.0
        self._rate_mark = (time.monotonic(), 0, 0)  # (time, link.received, ticks) for the rates
        self._rates = (0.0, 0.0)  # observations/s, loop ticks/s
        self._label = ""
        self._seed: int | None = None
        self.noise: ActionNoise | None = None  # DART perturbation of the executed action (sim expert)
        self.counters = Counters()
        self.result = SessionResult()

    # -- public ------------------------------------------------------------------------------------
    def run(self) -> SessionResult:
        self._obs = self.link.latest()
        try:
            if self.recorder is None:
                self._label = "live"
                self._phase(self.config.max_time_s, record=False)
                self.result.stopped_by = "max time"
            else:
                self._record_all()
        except StopSession as stop:
            self.result.stopped_by = stop.why
        finally:
            self._newline()
        return self.result

    # -- episodes ------------------------------------------------------------------------------------
    def _record_all(self) -> None:
        c = self.config
        done = in_a_row = 0
        while done < c.episodes:
            if c.sim:
                self._reset_scene(self.recorder.num_episodes)
            self._label = f"episode {done + 1}/{c.episodes}"
            self._say(f"{self._label}: recording (→/n next, ←/b re-record, Esc/q stop)")
            try:
                why = self._phase(c.episode_time_s, record=True)
            except StopSession:
                self.recorder.discard_episode()  # an episode cut short by stop is not a demonstration
                raise
            if why == "time" and c.sim and c.only_successes:
                # A sim episode that never succeeded is no demonstration of the task: drop it and go on
                # with the next scene seed (the same seed would fail the same way).
                self.recorder.discard_episode()
                self.result.failed += 1
                in_a_row += 1
                self._say(
                    f"{self._label}: no success in {c.episode_time_s:g} s (seed {self._seed}); "
                    "discarded, trying the next seed"
                )
                if in_a_row >= c.max_failures_in_a_row:
                    raise SourceError(
                        f"{in_a_row} episodes in a row ended without success; is --episode-time "
                        f"({c.episode_time_s:g} s) long enough for the task?"
                    )
                continue
            in_a_row = 0
            if why == kb.RERECORD:
                self.recorder.discard_episode()
                self.result.rerecorded += 1
                self._say(f"{self._label}: discarded, recording it again")
                continue
            # Encoding the videos and writing parquet takes seconds (more on a Pi): say so on stderr.
            with Spinner(f"{self._label}: saving {self.recorder.frames} frames to {self.recorder.root}"):
                frames = self.recorder.save_episode()
            self.result.saved.append(frames)
            done += 1
            self._say(
                f"{self._label}: saved {frames} frames ({why}); dataset holds "
                f"{self.recorder.num_episodes} episodes, {self.recorder.total_frames} frames"
            )
            if not c.sim and done < c.episodes and c.reset_time_s > 0:
                self._label = f"reset {done}/{c.episodes}"
                self._say(f"reset the scene ({c.reset_time_s:.0f} s; → / n to skip)")
                self._phase(c.reset_time_s, record=False)

    def _reset_scene(self, episode_index: int) -> None:
        c = self.config
        seed = c.seed + episode_index + self.result.failed
        reply = self.link.request({"op": "reset", "item": c.item, "seed": seed, "scene": c.scene})
        if not reply.get("ok", False):
            raise SourceError(f"the sim host refused a scene reset: {reply.get('error')}")
        self._seed = seed
        self.noise = ActionNoise(NoiseConfig(scale=c.expert_noise), seed) if c.expert_noise > 0 else None
        self._obs = self.link.latest()
        self._last_action = None

    # -- one phase: an episode, a reset period, or live teleop -------------------------------------
    def _phase(self, duration_s: float | None, record: bool) -> str:
        """Tick until the time is up, a key ends it, or (sim recording) success held for the tail.
        Returns why it ended: "time", "success", kb.NEXT or kb.RERECORD."""
        c = self.config
        limit = None if duration_s is None else max(1, int(round(duration_s * c.fps)))
        tail = int(round(c.success_tail_s * c.fps))
        ticks = 0  # the slot on the ideal grid t_grid + ticks/fps (skipped slots included: time left stays true)
        success_since = None
        self.counters = Counters()
        if self.live is not None:
            self.live.start()  # each episode (and each reset period) on its own tick axis
        t_grid = time.monotonic()
        while limit is None or ticks < limit:
            self._tick(record, ticks, limit)
            ticks += 1
            self.counters.ticks += 1
            why = self._handle_keys()
            if why is not None:
                return why
            if record and c.sim and self._obs.extras.get("_success"):
                success_since = ticks if success_since is None else success_since
                if ticks - success_since >= tail:
                    return "success"
            if not c.lockstep:
                # The grid never re-anchors, so a stall shows as lateness and lost slots, not as a
                # shifted schedule that reads "on time" afterwards.
                delay = t_grid + ticks * self.period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    self.counters.overruns += 1
                    self.counters.overrun_max_ms = max(self.counters.overrun_max_ms, -delay * 1e3)
                    missed = int(-delay / self.period)
                    if missed:  # whole slots passed during this tick: lost, not replayed in a burst
                        ticks += missed
                        self.counters.skipped_ticks += missed
                        self.counters.dropped += missed if record else 0
        return "time"

    def _tick(self, record: bool, ticks: int, limit: int | None) -> None:
        c = self.config
        obs = self._obs if c.lockstep else self.link.latest()
        fresh = obs.seq is None or obs.seq != self._last_seq
        self._last_seq = obs.seq
        if not c.lockstep and obs.age_s() > c.max_obs_age_s:
            # Acting on an old picture of the world is how a robot drives into things: stop the base.
            action = stop_base_action(obs, self._last_action)
            self.counters.stale_stops += 1
        else:
            raw = self.source.action(obs)
            try:
                action = clamp_action(raw)
            except ValueError as exc:  # a glitched leader read or expert value: hold, do not guess
                log.warning("unusable action (%s): holding the arm, base stopped", exc)
                action = stop_base_action(obs, self._last_action)
            else:
                if any(abs(action[k] - float(raw[k])) > 1e-6 for k in action):
                    self.counters.clamped += 1
        self._last_action = action
        if record:
            # The label is the source's action; with DART noise the robot executes a perturbed one.
            self.recorder.add(obs.state, obs.images, action_vector(action))
            self.counters.frames += 1
            if not fresh:
                self.counters.dropped += 1
        if self.noise is not None:
            action = clamp_action(self.noise.perturb(action, c.fps))
        if self.live is not None:  # what the robot saw and the command it is sent (noise included)
            self.live.add(obs, action)
        if c.lockstep:
            try:
                self._obs = self.link.step(action)
            except LinkTimeout as exc:
                raise SourceError(f"the lockstep sim host stopped answering: {exc}") from None
        else:
            self.link.send_action(action)
            self._obs = obs
        self._status(record, ticks, limit)

    def _handle_keys(self) -> str | None:
        if self.keyboard is None:
            return None
        for cmd in self.keyboard.pop_commands():
            if cmd == kb.STOP:
                raise StopSession("stop key")
            if cmd == kb.INTERRUPT:
                raise KeyboardInterrupt
            if cmd in (kb.NEXT, kb.RERECORD) and self.recorder is not None:  # live teleop has no episodes
                return cmd
        return None

    # -- output ------------------------------------------------------------------------------------
    def _rates_now(self) -> tuple[float, float]:
        now = time.monotonic()
        t0, rx0, ticks0 = self._rate_mark
        if now - t0 >= 1.0:
            received = self.link.stats.received
            self._rates = (
                (received - rx0) / (now - t0),
                (self.counters.ticks - ticks0) / (now - t0) if self.counters.ticks >= ticks0 else 0.0,
            )
            self._rate_mark = (now, received, self.counters.ticks)
        return self._rates

    def status_line(self, record: bool, ticks: int, limit: int | None) -> str:
        obs_hz, loop_hz = self._rates_now()
        a = self._last_action or {}
        parts = [self._label]
        if limit is not None:
            left = (limit - ticks) / self.config.fps
            parts.append(f"{'REC ' if record else ''}{left:5.1f} s left")
        if record:
            parts.append(f"frames {self.counters.frames} dropped {self.counters.dropped}")
        age_ms = self._obs.age_s() * 1000.0 if self._obs is not None else float("nan")
        parts.append(f"obs {obs_hz:4.1f} Hz age {age_ms:4.0f} ms")
        parts.append(f"loop {loop_hz:4.1f} Hz")
        if not self.config.lockstep:
            k = self.counters
            parts.append(f"overruns {k.overruns} (longest {k.overrun_max_ms:.0f} ms) skipped {k.skipped_ticks}")
        parts.append(
            f"base x {a.get('x.vel', 0.0):+.2f} y {a.get('y.vel', 0.0):+.2f} m/s "
            f"th {a.get('theta.vel', 0.0):+3.0f} deg/s"
        )
        if self.keyboard is not None:
            parts.append(f"speed {self.keyboard.speed_level() + 1}/3  {self.keyboard.mode_text}")
        if self.counters.stale_stops:
            parts.append(f"STALE obs: base stopped x{self.counters.stale_stops}")
        return " | ".join(parts)

    def _status(self, record: bool, ticks: int, limit: int | None) -> None:
        now = time.monotonic()
        tty = getattr(self.out, "isatty", lambda: False)()
        # Not a terminal (a log, a test): one plain line a second instead of a redrawn line.
        if now - self._status_t < (self.config.status_period_s if tty else 1.0):
            return
        self._status_t = now
        line = self.status_line(record, ticks, limit)
        self.out.write(f"\r{line}\x1b[K" if tty else line + "\n")
        self.out.flush()

    def _say(self, text: str) -> None:
        self._newline()
        self.out.write(text + "\n")
        self.out.flush()
        self._status_t = 0.0

    def _newline(self) -> None:
        if getattr(self.out, "isatty", lambda: False)():
            self.out.write("\n")
