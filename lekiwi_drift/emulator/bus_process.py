"""An emulated bus served from a child process, for tests that drive LeRobot in their own process.

LeRobot's scservo_sdk waits for a status packet by busy-polling the port, holding the GIL, and gives up
after ~50 ms. An `EmulatedBus` thread in that same process needs the GIL to answer: on a loaded machine
the poller is often preempted while holding it, and the reply waits for both threads to be scheduled.
On a loaded 2-core machine (numbers in docs/emulator.md) sync reads timed out several times as often
with the bus in the test's process; from its own process the emulator was never the late side (each
timeout left had the whole reply already waiting: the poller itself had been off the CPU for 50 ms).

`BusProcess(servos, config)` takes the same servos and config as `EmulatedBus` and keeps the part of
its API tests use: `port`, `close()` (the cable-out unplug), `servo(id)` / `servos` with `get`, `set`,
`get_raw`, `error_byte()`, `torque_on`, fault injection (`servo.faults.silent = True`), `counts` and
`unplugged`. Every call is a round trip to the child, handled under the bus lock between packets. The
servos are pickled into the child: their drives must be self-contained (`IdealDrive`, not the MuJoCo
sim; `sim buses` keeps its buses in its own process anyway, apart from the host's).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import fields
from multiprocessing.connection import Connection
from typing import Any

from lekiwi_drift.emulator.bus import BusConfig, EmulatedBus
from lekiwi_drift.emulator.servo import Servo, ServoFaults

_START_TIMEOUT_S = 120.0  # spawning a Python child on a loaded machine can take a while
_CALL_TIMEOUT_S = 30.0
_FAULTS = {f.name for f in fields(ServoFaults)}
_SERVO_CALLS = {"get", "set", "get_raw", "error_byte", "hand_move", "power_cycle"}
_SERVO_PROPERTIES = {"torque_on", "homing_offset"}


def _child(conn: Connection) -> None:
    # Ctrl-C goes to the whole process group; the parent closes us (or its pipe end closes when it dies).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    servos, config = conn.recv()
    bus = EmulatedBus(servos, config).start()
    conn.send(bus.port)
    try:
        while True:
            try:
                op, args = conn.recv()
            except EOFError:  # the parent is gone
                return
            if op == "close":
                bus.close()
                conn.send(("ok", None))
                return
            try:
                with bus.lock:  # between packets, as the hands and the sim touch servos
                    result = _OPS[op](bus, *args)
                conn.send(("ok", result))
            except Exception as exc:  # noqa: BLE001 - handed to the caller, raised there
                try:
                    conn.send(("error", exc))
                except Exception:  # noqa: BLE001 - an exception that does not pickle: send its text
                    conn.send(("error", RuntimeError(repr(exc))))
    finally:
        bus.close()


def _servo_call(bus: EmulatedBus, sid: int, name: str, args: tuple) -> Any:
    return getattr(bus.servo(sid), name)(*args)


def _servo_property(bus: EmulatedBus, sid: int, name: str) -> Any:
    return getattr(bus.servo(sid), name)


def _fault_get(bus: EmulatedBus, sid: int, name: str) -> Any:
    return getattr(bus.servo(sid).faults, name)


def _fault_set(bus: EmulatedBus, sid: int, name: str, value: Any) -> None:
    setattr(bus.servo(sid).faults, name, value)


def _counts(bus: EmulatedBus) -> Counter[str]:
    return Counter(bus.counts)


def _set_unplugged(bus: EmulatedBus, value: bool) -> None:
    bus.unplugged = value


_OPS = {
    "servo_call": _servo_call,
    "servo_property": _servo_property,
    "fault_get": _fault_get,
    "fault_set": _fault_set,
    "counts": _counts,
    "unplugged": lambda bus: bus.unplugged,
    "set_unplugged": _set_unplugged,
}


class BusProcess:
    """`EmulatedBus(servos, config)` served from a child process; see the module docstring."""

    def __init__(self, servos: list[Servo], config: BusConfig | None = None):
        self.config = config or BusConfig()
        self._servos = list(servos)
        self.servos = [RemoteServo(self, s.id) for s in self._servos]
        self._conn = None
        self._proc = None
        self._port = ""
        self._call_lock = threading.Lock()  # one request/answer at a time on the pipe, whichever thread asks

    @property
    def port(self) -> str:
        if not self._port:
            raise RuntimeError(f"emulated bus {self.config.name!r} is not started; call start() first")
        return self._port

    @property
    def ids(self) -> list[int]:
        return [s.id for s in self.servos]

    def start(self) -> BusProcess:
        # A fresh interpreter (`python -m` this module), not multiprocessing: fork would copy the locks
        # the test process's other threads hold, and spawn re-runs the caller's main script.
        ours, theirs = socket.socketpair()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno())], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        try:
            self._conn.send((self._servos, self.config))
            if not self._conn.poll(_START_TIMEOUT_S):
                raise TimeoutError(f"no port after {_START_TIMEOUT_S} s")
            self._port = self._conn.recv()
        except (OSError, EOFError, TimeoutError) as exc:
            self.close()
            raise RuntimeError(f"emulated bus {self.config.name!r}: the child process did not start ({exc!r})") from exc
        return self

    def close(self) -> None:
        """As `EmulatedBus.close`: the pty closes (a pulled USB cable) and the child exits. Safe twice."""
        if self._proc is None:
            return
        try:
            self._conn.send(("close", ()))
            if self._conn.poll(5.0):
                self._conn.recv()
        except (OSError, EOFError):
            pass  # the child is already gone
        self._conn.close()
        try:
            self._proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def __enter__(self) -> BusProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, op: str, *args) -> Any:
        if self._proc is None:
            raise RuntimeError(f"emulated bus {self.config.name!r} is not running")
        with self._call_lock:
            self._conn.send((op, args))
            if not self._conn.poll(_CALL_TIMEOUT_S):
                self._proc.kill()  # else its late answer would be taken for the next call's
                raise TimeoutError(f"emulated bus {self.config.name!r}: no answer to {op} in {_CALL_TIMEOUT_S} s")
            status, value = self._conn.recv()
        if status == "error":
            raise value
        return value

    def servo(self, servo_id: int) -> RemoteServo:
        for s in self.servos:
            if s.id == servo_id:
                return s
        raise KeyError(f"no servo with ID {servo_id} on bus {self.config.name!r} (IDs: {self.ids})")

    @property
    def counts(self) -> Counter[str]:
        """A copy of the instructions handled so far, by name."""
        return self._call("counts")

    @property
    def unplugged(self) -> bool:
        return self._call("unplugged")

    @unplugged.setter
    def unplugged(self, value: bool) -> None:
        self._call("set_unplugged", bool(value))


class RemoteServo:
    """One servo of a `BusProcess`, as tests use a `Servo`."""

    def __init__(self, bus: BusProcess, servo_id: int):
        self._bus = bus
        self.id = servo_id
        self.faults = RemoteFaults(bus, servo_id)

    def __getattr__(self, name: str) -> Any:
        if name in _SERVO_CALLS:
            return lambda *args: self._bus._call("servo_call", self.id, name, args)
        if name in _SERVO_PROPERTIES:
            return self._bus._call("servo_property", self.id, name)
        raise AttributeError(f"{name!r} is not available on a servo served from a child process")


class RemoteFaults:
    """`servo.faults` of a `BusProcess` servo: reading or setting a field goes to the child."""

    def __init__(self, bus: BusProcess, servo_id: int):
        object.__setattr__(self, "_where", (bus, servo_id))

    def __getattr__(self, name: str) -> Any:
        if name not in _FAULTS:
            raise AttributeError(f"servo faults have no {name!r} (fields: {sorted(_FAULTS)})")
        bus, sid = self._where
        return bus._call("fault_get", sid, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _FAULTS:
            raise AttributeError(f"servo faults have no {name!r} (fields: {sorted(_FAULTS)})")
        bus, sid = self._where
        bus._call("fault_set", sid, name, value)


if __name__ == "__main__":
    _child(Connection(int(sys.argv[1])))
