"""`RobotSession`: one run's robot side, owned in one place.

`lekiwi-drift run`, the trials TUI and `bench loop` all need the same things in the same order: maybe
start a simulated LeKiwi in this process, connect one `RobotLink`, learn whether the robot is simulated
and on which clock, load one or more policies (a `PolicyRuntime` and a `ControlLoop` each), reset the
scene between episodes, stop the robot, and tear everything down in the right order. This object does
that, so those commands only decide *what* to run.

One stop path: `stop()` is what every e-stop calls (key, TUI, closing the app). While an episode runs it
is that loop's `estop()` (one hold through the safety layer, nothing from the policy after it); between
episodes it is one hold at the measured pose. `close()` ends with the same stop.

    with RobotSession(cfg, sim=SimSpec(item="salt_bottle", clock="lockstep")) as s:
        s.open(print)
        s.add_policy("drift", PolicyRuntime.load(preset, s.config))
        s.reset("salt_bottle", seed=0, scene=0)
        result = s.run_episode("drift", max_time_s=40)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lekiwi_drift.config.robot import RobotConfig

log = logging.getLogger(__name__)


class SessionError(RuntimeError):
    """The session cannot run as asked (e.g. sim-time latency on a robot that is not the lockstep sim)."""


@dataclass
class SimSpec:
    """Start a simulated LeKiwi in this process: its first scene and camera size."""

    item: str = "salt_bottle"
    seed: int = 0
    clock: str = "lockstep"
    size: str = "128x96"
    scene: int | None = 0


class RobotSession:
    def __init__(
        self,
        robot_config: RobotConfig,
        sim: SimSpec | None = None,
        latency: str | None = None,
        run_dir: str | Path | None = None,
    ):
        """`sim`: start the sim in this process (None: connect to the host in `robot_config`).
        `latency`: charge inference latency in sim time with this profile (control/sim_time.py); needs
        the lockstep sim. `run_dir`: where each loop writes telemetry.jsonl (None: no file)."""
        self.config = robot_config
        self.sim_spec = sim
        self.latency_name = latency
        self.run_dir = run_dir
        self.link = None
        self.is_sim = False  # known after open(): the robot reports the sim's success detector
        self.clock: str | None = None  # "lockstep" / "realtime" for a sim, None for a robot
        self.loops: dict[str, Any] = {}
        self._local = None
        self._latency = None
        self._active = None  # the loop running an episode now, for stop()
        self._lock = threading.Lock()

    # -- setup ------------------------------------------------------------------------------------------
    def open(self, progress: Callable[[str], None] = lambda _msg: None):
        """Start the sim (if asked), connect, check the latency profile against the robot. Returns the
        first observation."""
        from lekiwi_drift.link.client import RobotLink

        if self.latency_name is not None:
            from lekiwi_drift.control.sim_time import LatencyError, LatencyProfile

            try:
                self._latency = LatencyProfile.parse(self.latency_name)
            except LatencyError as exc:
                raise SessionError(str(exc)) from exc
        if self.sim_spec is not None:
            from lekiwi_drift.sim.local import start_local_sim_host

            s = self.sim_spec
            progress(f"starting the simulated LeKiwi ({s.item}, {s.clock} clock, cameras {s.size})")
            self._local = start_local_sim_host(
                self.config, item=s.item, seed=s.seed, clock=s.clock, size=s.size, scene=s.scene
            )
            self.config = self._local.config
        progress(f"connecting to the robot at {self.config.host.address}:{self.config.host.port_obs}")
        self.link = RobotLink(self.config)
        first = self.link.connect()
        # A sim served by `lekiwi-drift host --robot sim` elsewhere counts as a sim too.
        self.is_sim = "_success" in first.extras
        self.clock = first.extras.get("_clock") if self.is_sim else None
        if self._latency is not None and self.clock != "lockstep":
            raise SessionError(
                f"latency charged in sim time ({self.latency_name}) needs the lockstep sim "
                "(--sim with the lockstep clock); this robot runs in real time"
            )
        return first

    def add_policy(self, name: str, runtime, video_dir: str | Path | None = None, recorder=None, live=None):
        """A ControlLoop for `runtime` on this session's link, kept for the whole session. `video_dir`:
        save a rollout MP4 of every episode there. `recorder`: a RolloutRecorder (record/rollout.py) that
        collects each tick's observation and command (the caller saves each episode). `live`: a LiveView
        (live_view.py) shown every tick and every telemetry record."""
        from lekiwi_drift.control.loop import ControlLoop

        if self.link is None:
            raise SessionError("open() the session before adding policies")
        video = None
        if video_dir is not None:
            from lekiwi_drift.control.rollout_video import RolloutVideo

            video = RolloutVideo(Path(video_dir), hz=runtime.preset.control_hz)
        loop = ControlLoop(
            self.link,
            runtime,
            runtime.preset,
            self.config,
            run_dir=self.run_dir,
            latency=self._latency,
            video=video,
            taps=[tap for tap in (recorder, live) if tap is not None],
        )
        if live is not None:
            loop.telemetry.listeners.append(live.telemetry)
        self.loops[name] = loop
        return loop

    @property
    def latency(self):
        return self._latency

    # -- episodes ---------------------------------------------------------------------------------------
    def reset(self, item: str, seed: int, scene: int | None) -> dict:
        """Sim: a new scene (the reply names what was set). A real robot is reset by a person."""
        if not self.is_sim:
            raise SessionError("only the sim resets its own scene; reset the real one by hand")
        return self.link.request({"op": "reset", "item": item, "seed": seed, "scene": scene})

    def run_episode(
        self,
        name: str,
        max_time_s: float,
        stop: threading.Event | None = None,
        on_status: Callable[[Any], None] | None = None,
    ):
        """Run `name`'s loop for one episode; `stop()` meanwhile e-stops exactly this loop."""
        loop = self.loops[name]
        with self._lock:
            self._active = loop
        try:
            return loop.run_episode(max_time_s, stop=stop, on_status=on_status)
        finally:
            with self._lock:
                self._active = None

    # -- the one stop path ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Thread-safe e-stop: the running episode's loop e-stops (one hold, then nothing from the
        policy), or, between episodes, one hold at the measured pose."""
        with self._lock:
            active = self._active
        if active is not None:
            active.estop()
            return
        if self.link is None:
            return
        obs = self.link.latest()
        if obs is None:
            return
        loop = next(iter(self.loops.values()), None)
        if loop is not None:
            loop.hold_idle(obs)
            return
        try:
            self.link.send_action(_measured_hold(obs))
        except ConnectionError as exc:  # closed link: nothing is moving that we could still stop
            log.warning("stop command not sent: %s", exc)

    def close(self, wait_s: float = 0.0) -> None:
        """Stop the robot, end every loop (after up to `wait_s` for a chunk in flight), the link and the sim."""
        try:
            self.stop()
        finally:
            for loop in self.loops.values():
                loop.close(wait_s=wait_s)
            self.loops.clear()
            if self.link is not None:
                self.link.close()
                self.link = None
            if self._local is not None:
                self._local.stop()
                self._local = None

    def __enter__(self) -> RobotSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _measured_hold(obs) -> dict[str, float]:
    """Before any policy is loaded: base stopped, arm told to stay where it is measured."""
    from lekiwi_drift.robots.features import BASE_KEYS, STATE_KEYS

    action = {k: float(v) for k, v in zip(STATE_KEYS, obs.state)}
    action.update({k: 0.0 for k in BASE_KEYS})
    return action
