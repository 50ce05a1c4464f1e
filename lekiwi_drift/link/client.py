"""`RobotLink`: the onboard client the runner, teleop and trials use to talk to a LeKiwi host.

A background thread receives observations, keeps only the newest, decodes and validates it, and stores it
with its age. Malformed messages are counted by kind and logged, the last good observation is kept, and
nothing a peer sends can raise here. Works against our host and LeRobot 0.6.1's stock host alike.

Ages hold when the robot's clock is off ours: the link estimates the host clock's offset from the `_stamp`s
(link/clock.py), puts it on each observation and in `LinkStats.clock_offset_s`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import zmq

from lekiwi_drift.config.robot import RobotConfig
from lekiwi_drift.link import keys as curve
from lekiwi_drift.link.clock import HostClock
from lekiwi_drift.link.wire import Observation, WireError, decode_observation, encode_command

log = logging.getLogger(__name__)

# Silence from a host that was sending for this long means it is gone: rebuild the socket, which also
# clears a CURVE session that died with the old host process.
RECONNECT_AFTER_S = 1.0


# A lockstep step renders three cameras and steps the physics; on a machine under heavy load (CI running
# benchmarks alongside, two CPU burners in the determinism test) that has taken over 5 s, and a render
# that misses the sim renderer's own 30 s bound is retried by the host (link/host.py): wait for three.
LOCKSTEP_STEP_TIMEOUT_S = 95.0


class LinkTimeout(ConnectionError):
    """No observation arrived in time; the message says where we listened and what to check."""


@dataclass
class LinkStats:
    received: int = 0  # good observations decoded
    superseded: int = 0  # arrived but a newer one was already queued: skipped without decoding
    bad: Counter = field(default_factory=Counter)  # malformed observations by kind
    sent: int = 0
    send_dropped: int = 0
    reconnects: int = 0
    decode_ms: deque = field(default_factory=lambda: deque(maxlen=4096))
    age_ms: deque = field(default_factory=lambda: deque(maxlen=4096))  # age when decoded
    # Host clock minus ours (s), estimated from `_stamp`s; None until one came (a stock host sends none).
    clock_offset_s: float | None = None

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())


class RobotLink:
    def __init__(
        self, config: RobotConfig, expected_cameras: list[str] | None = None, context: zmq.Context | None = None
    ):
        self.config = config
        self.hc = config.host
        self.expected_cameras = list(expected_cameras) if expected_cameras is not None else config.camera_names
        self.stats = LinkStats()
        self.host_clock = HostClock()
        self._ctx = context or zmq.Context()
        self._own_ctx = context is None
        self._cond = threading.Condition()
        self._latest: Observation | None = None
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self._cmd_lock = threading.Lock()
        self._cmd: zmq.Socket | None = None
        self._pool = ThreadPoolExecutor(max_workers=len(self.expected_cameras) or 1, thread_name_prefix="jpeg")

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"tcp://{self.hc.address}:{self.hc.port_obs}"

    def connect(self, timeout_s: float | None = None) -> Observation:
        """Open both sockets and wait for the first good observation."""
        timeout_s = self.hc.connect_timeout_s if timeout_s is None else timeout_s
        self._cmd = self._socket(zmq.PUSH, self.hc.port_cmd)
        self._cmd.setsockopt(zmq.CONFLATE, 1)  # as stock: only the newest unsent command matters
        self._running.set()
        self._thread = threading.Thread(target=self._receive_loop, name="robot-link-rx", daemon=True)
        self._thread.start()
        obs = self.wait_for(None, timeout_s)
        if obs is None:
            self.close()
            bad = f"; {self.stats.bad_total} malformed messages ({dict(self.stats.bad)})" if self.stats.bad else ""
            raise LinkTimeout(
                f"no observation from {self.endpoint} within {timeout_s:.1f} s{bad}. Is `lekiwi-drift host` "
                f"running on the robot, and do host.address/port_obs in {self.config.source} point at it?"
                + (
                    " With CurveZMQ keys, check that this client's public key is in the host's keys.authorized_clients."
                    if self.config.keys.client_enabled
                    else ""
                )
            )
        return obs

    def close(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        with self._cmd_lock:
            if self._cmd is not None:
                self._cmd.close(0)
                self._cmd = None
        self._pool.shutdown(wait=False)
        if self._own_ctx:
            self._ctx.term()

    def __enter__(self) -> RobotLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _socket(self, kind: int, port: int) -> zmq.Socket:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if self.config.keys.client_enabled:
            curve.make_client(sock, self.config.keys)
        if kind == zmq.PULL:
            sock.setsockopt(zmq.RCVHWM, 2)
            # Hard cap well above our own limit: ZMQ drops a peer that sends something absurd.
            sock.setsockopt(zmq.MAXMSGSIZE, 8 * self.hc.max_message_bytes)
        sock.connect(f"tcp://{self.hc.address}:{port}")
        return sock

    # -- receiving -------------------------------------------------------------------------------
    def _receive_loop(self) -> None:
        sock = self._socket(zmq.PULL, self.hc.port_obs)
        last_msg = time.monotonic()
        heard = False
        try:
            while self._running.is_set():
                if not sock.poll(50):
                    if heard and time.monotonic() - last_msg > RECONNECT_AFTER_S:
                        sock.close(0)
                        sock = self._socket(zmq.PULL, self.hc.port_obs)
                        self.stats.reconnects += 1
                        heard = False
                        log.warning("no observation for %.1f s from %s: reconnecting", RECONNECT_AFTER_S, self.endpoint)
                    continue
                frames = None
                while True:  # drain to the newest; older ones are never decoded
                    try:
                        msg = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    # Receipt time before decoding: the age must include our own decode time.
                    recv_time = time.time()
                    if frames is not None:
                        self.stats.superseded += 1
                    frames = msg
                if frames is None:
                    continue
                last_msg, heard = time.monotonic(), True
                self._ingest(frames, recv_time)
        finally:
            sock.close(0)

    def _ingest(self, frames: list[bytes], recv_time: float | None = None) -> None:
        t0 = time.perf_counter()
        try:
            obs = decode_observation(
                frames, self.expected_cameras, self.hc.max_message_bytes, recv_time=recv_time, pool=self._pool
            )
        except WireError as exc:
            self.stats.bad[exc.kind] += 1
            log.warning("dropped a malformed observation (%s); keeping the last good one", exc)
            return
        except Exception as exc:  # belt and braces: nothing from the wire may kill the link
            self.stats.bad["other"] += 1
            log.error("dropped an observation that failed to decode: %r", exc)
            return
        self.stats.decode_ms.append((time.perf_counter() - t0) * 1000.0)
        if obs.stamp is not None:  # only good observations feed the clock estimate
            sent = obs.sent if obs.sent is not None else obs.stamp  # `_sent`: host work is not transit
            obs.clock_offset_s = self.stats.clock_offset_s = self.host_clock.update(sent, obs.recv_time)
        self.stats.age_ms.append(obs.age_s() * 1000.0)
        with self._cond:
            self._latest = obs
            self.stats.received += 1
            self._cond.notify_all()

    # -- the API the runner uses -----------------------------------------------------------------
    def latest(self) -> Observation | None:
        """The newest good observation (check `age_s()` before acting on it)."""
        with self._cond:
            return self._latest

    def wait_for(self, after: Observation | None, timeout_s: float) -> Observation | None:
        """Wait for an observation other than `after` (None: any). A lockstep host re-sends its current
        observation while idle, so "other" means a newly received one whose `_seq` differs (a restarted
        host numbers from 1 again, so no ordering is assumed). Returns at once if one already came after
        `after`. None on timeout."""

        def ready() -> bool:
            obs = self._latest
            if obs is None or after is None:
                return obs is not None
            return obs is not after and (obs.seq is None or obs.seq != after.seq)

        with self._cond:
            if not self._cond.wait_for(ready, timeout=timeout_s):
                return None
            return self._latest

    def send_action(self, action: Mapping[str, float]) -> None:
        self._send(encode_command(action=action))

    def step(self, action: Mapping[str, float], timeout_s: float = LOCKSTEP_STEP_TIMEOUT_S) -> Observation:
        """Lockstep: send one action and wait for the observation it produced. Nothing moves while we wait
        (the sim advances only on our command), so a host slowed by a loaded machine is safe to wait for;
        the timeout only catches a host that died."""
        before = self.latest()
        self.send_action(action)
        obs = self.wait_for(before, timeout_s)
        if obs is None:
            raise LinkTimeout(f"no observation within {timeout_s:.1f} s after a lockstep action")
        return obs

    def request(self, request: Mapping[str, Any], timeout_s: float = 10.0) -> dict:
        """Send a host request (e.g. a sim reset) and return the host's `_reply`."""
        request = {**request, "id": uuid.uuid4().hex[:12]}
        before = self.latest()
        self._send(encode_command(request=request))
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            obs = self.wait_for(before, left)
            if obs is None:
                break
            reply = obs.extras.get("_reply")
            if isinstance(reply, dict) and reply.get("id") == request["id"]:
                return reply
            before = obs
        raise LinkTimeout(
            f"the host did not answer request {dict(request)} within {timeout_s:.1f} s "
            "(a stock LeRobot host does not take requests)"
        )

    def _send(self, payload: bytes) -> None:
        with self._cmd_lock:
            if self._cmd is None:
                raise ConnectionError("RobotLink is not connected; call connect() first")
            try:
                self._cmd.send(payload, zmq.NOBLOCK)
                self.stats.sent += 1
            except zmq.Again:
                self.stats.send_dropped += 1
