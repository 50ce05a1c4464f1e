"""`lekiwi-drift host`: serve a robot over the stock LeKiwi wire, at 30 Hz, until stopped.

Differences from LeRobot 0.6.1's host, each on purpose: no 30 s session limit; a malformed command is
rejected whole and counted (stock applies what it can, or raises inside the loop); a camera or bus read
error skips that observation instead of killing the host, up to a configured number in a row; optional
CurveZMQ; observation headers carry `_seq`, `_stamp`, `_sent`, `_proto`; a lockstep mode for deterministic
sims.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import zmq

from lekiwi_drift.config.robot import RobotConfig
from lekiwi_drift.link import keys as curve
from lekiwi_drift.link.wire import PROTO, WireError, decode_command, encode_jpeg, encode_observation
from lekiwi_drift.robots.base import HostedRobot

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_READ_FAILURES = 3
LOCKSTEP_REPUBLISH_S = 0.1  # idle lockstep hosts re-send the current observation for late joiners


@dataclass
class HostStats:
    commands: int = 0
    requests: int = 0
    bad_commands: Counter = field(default_factory=Counter)
    observations: int = 0
    dropped_observations: int = 0  # no client connected, or the client's queue was full
    read_failures: int = 0
    watchdog_stops: int = 0


class RobotHost:
    def __init__(self, robot: HostedRobot, config: RobotConfig, context: zmq.Context | None = None):
        self.robot = robot
        self.config = config
        self.hc = config.host
        self.stats = HostStats()
        self.lockstep = bool(getattr(robot, "lockstep", False))
        self._clock = getattr(robot, "clock", time.monotonic)
        # Stamps `_stamp`/`_sent`; it need not agree with the client's clock (link/clock.py).
        self._wall_clock = getattr(robot, "wall_clock", time.time)
        self._stop = threading.Event()
        self._seq = 0
        self._failures_in_row = 0
        self._reply: dict | None = None
        self._last_frames: list[bytes] | None = None
        self._ctx = context or zmq.Context()
        self._own_ctx = context is None
        self._auth = None
        try:
            self._make_sockets()
        except BaseException:  # e.g. an unreadable key file: release what was opened, then report
            self.close()
            raise

    # -- sockets ---------------------------------------------------------------------------------
    def _make_sockets(self) -> None:
        hc = self.hc
        self.cmd = self._ctx.socket(zmq.PULL)
        self.obs = self._ctx.socket(zmq.PUSH)
        if self.config.keys.host_enabled:
            self._auth = curve.start_authenticator(self._ctx, self.config.keys)
            for sock in (self.cmd, self.obs):
                curve.make_server(sock, self.config.keys)
        elif hc.bind in ("127.0.0.1", "localhost", "::1"):
            log.info("no CurveZMQ keys: plain stock wire on loopback only")
        else:
            log.warning(
                "no CurveZMQ keys configured: plain stock wire, anyone on the network can drive the "
                "robot; run `lekiwi-drift keys` to lock it down"
            )
        # Stock LeKiwi uses CONFLATE here, but CONFLATE mangles multipart messages (a malformed peer could
        # get a fragment applied). We drain the queue instead and, in real time, apply only the newest
        # valid action; lockstep needs every command anyway (one command = one step).
        self.cmd.setsockopt(zmq.RCVHWM, 16)
        self.cmd.setsockopt(zmq.MAXMSGSIZE, 1024 * 1024)
        self.obs.setsockopt(zmq.SNDHWM, 2)
        self.obs.setsockopt(zmq.LINGER, 0)
        self.cmd.setsockopt(zmq.LINGER, 0)
        self.cmd.bind(f"tcp://{hc.bind}:{hc.port_cmd}")
        self.obs.bind(f"tcp://{hc.bind}:{hc.port_obs}")

    def close(self) -> None:
        for sock in (getattr(self, "cmd", None), getattr(self, "obs", None)):
            if sock is not None:
                sock.close(0)
        if self._auth is not None:
            self._auth.stop()
        if self._own_ctx:
            self._ctx.term()

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler or another thread)."""
        self._stop.set()

    # -- one command -----------------------------------------------------------------------------
    def _answer(self, request: dict) -> None:
        self.stats.requests += 1
        handler = getattr(self.robot, "handle_request", None)
        if handler is None:
            reply = {"ok": False, "error": f"this robot takes no requests (got {request.get('op')!r})"}
        else:
            try:
                reply = {"ok": True, **(handler(request) or {})}
            except Exception as exc:  # a bad request must not stop the robot's host
                log.error("request %r failed: %s", request, exc)
                reply = {"ok": False, "error": str(exc)}
        self._reply = {**reply, "id": request.get("id")}

    def _handle_command(self, raw: list[bytes]) -> tuple[bool, bool]:
        """Apply one raw command -> (an action was applied, a request was answered)."""
        try:
            action, request = decode_command(raw)
        except WireError as exc:
            self.stats.bad_commands[exc.kind] += 1
            log.warning("rejected command (%s); nothing applied", exc)
            return False, False
        if request is not None:
            self._answer(request)
        if action is None:
            return False, request is not None
        self.robot.send_action(action)
        self.stats.commands += 1
        return True, request is not None

    def _drain_commands(self) -> bool:
        """Real time: read every queued command, apply only the newest valid action. True if one was."""
        newest = None
        while True:
            try:
                raw = self.cmd.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                action, request = decode_command(raw)
            except WireError as exc:
                self.stats.bad_commands[exc.kind] += 1
                log.warning("rejected command (%s); nothing applied", exc)
                continue
            if request is not None:
                self._answer(request)
            if action is not None:
                newest = action
        if newest is None:
            return False
        self.robot.send_action(newest)
        self.stats.commands += 1
        return True

    # -- one observation -------------------------------------------------------------------------
    def _capture(self) -> list[bytes] | None:
        stamp = self._wall_clock()
        try:
            obs = self.robot.get_observation()
        except Exception as exc:  # camera timeout, bus error: skip this observation, keep serving
            self.stats.read_failures += 1
            self._failures_in_row += 1
            log.error("robot read failed (%d in a row): %s", self._failures_in_row, exc)
            return None
        self._failures_in_row = 0
        self._seq += 1
        jpegs = {name: encode_jpeg(obs[name]) for name in self.robot.cameras}
        extras = {"_seq": self._seq, "_stamp": stamp, "_proto": PROTO}
        extras_fn = getattr(self.robot, "header_extras", None)
        if extras_fn is not None:
            extras.update(extras_fn())
        if self._reply is not None:
            # Kept on every header until the next request, so a client that skips to the newest
            # observation cannot miss it; the client matches it by the request's id.
            extras["_reply"] = self._reply
        # Last, after the JPEG encode: clients estimate our clock offset from it, so the time spent here
        # (capture + encode) counts in the age instead of passing for transit.
        extras["_sent"] = self._wall_clock()
        return encode_observation(obs, jpegs, extras)

    def _publish(self, frames: list[bytes]) -> None:
        try:
            self.obs.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            self.stats.observations += 1
        except zmq.Again:
            self.stats.dropped_observations += 1

    # -- loops -----------------------------------------------------------------------------------
    def run(self, max_time_s: float | None = None) -> int:
        """Serve until stop() or max_time_s; stops the base on the way out. Returns an exit code."""
        self._failures_in_row = 0
        deadline = None if max_time_s is None else time.monotonic() + max_time_s
        hc = self.hc
        log.info(
            "host serving on %s (commands :%d, observations :%d)%s",
            hc.bind,
            hc.port_cmd,
            hc.port_obs,
            " [lockstep]" if self.lockstep else "",
        )
        try:
            loop = self._run_lockstep if self.lockstep else self._run_realtime
            return loop(deadline)
        finally:
            self.robot.stop_base()
            log.info("host stopped: %s", self.stats)

    def _too_many_failures(self) -> bool:
        if self._failures_in_row >= self.hc.max_failures:
            log.critical(
                "%d robot reads failed in a row: stopping the base and exiting. Check the cameras and "
                "the motor bus (cables, power, `lekiwi-drift host -v` for details).",
                self._failures_in_row,
            )
            return True
        return False

    def _run_realtime(self, deadline: float | None) -> int:
        period = 1.0 / self.hc.loop_hz
        watchdog_s = self.hc.watchdog_ms / 1000.0
        last_cmd = self._clock()
        base_stopped = False
        next_tick = time.monotonic()
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if self._drain_commands():
                last_cmd, base_stopped = self._clock(), False
            if not base_stopped and self._clock() - last_cmd > watchdog_s:
                self.robot.stop_base()
                base_stopped = True
                self.stats.watchdog_stops += 1
                if self.stats.commands:  # before any client has driven, there is nothing to warn about
                    log.warning("no command for %.0f ms: base stopped, arm holds its goal", self.hc.watchdog_ms)
            frames = self._capture()
            if frames is not None:
                self._publish(frames)
            elif self._too_many_failures():
                return EXIT_READ_FAILURES
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.monotonic()  # overran: do not try to catch up with a burst
        return EXIT_OK

    def _run_lockstep(self, deadline: float | None) -> int:
        """One observation per command; the robot advances one control period per applied action."""
        frames = None
        while frames is None:
            frames = self._capture()
            if frames is None and self._too_many_failures():
                return EXIT_READ_FAILURES
        self._publish(frames)
        last_pub = time.monotonic()
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if not self.cmd.poll(LOCKSTEP_REPUBLISH_S * 1000.0):
                if time.monotonic() - last_pub >= LOCKSTEP_REPUBLISH_S:
                    self._publish(frames)  # same _seq: a late client gets the current state
                    last_pub = time.monotonic()
                continue
            raw = self.cmd.recv_multipart()
            applied, answered = self._handle_command(raw)
            if not (applied or answered):
                continue
            # The world has moved one step (or a request was answered) and the client waits for exactly
            # that observation: retry a failed read rather than drop it, which would leave the client to
            # time out although nothing is wrong but a slow camera render on a loaded machine.
            new = self._capture()
            while new is None:
                if self._too_many_failures():
                    return EXIT_READ_FAILURES
                if self._stop.is_set():
                    return EXIT_OK
                new = self._capture()
            frames = new
            self._publish(frames)
            last_pub = time.monotonic()
        return EXIT_OK
