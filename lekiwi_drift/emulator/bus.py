"""A Feetech servo bus on a pseudo-terminal: LeRobot opens the pty's path as if it were /dev/ttyACM0.

One thread reads the instruction packets the host writes, hands them to the servos on this bus and
writes back their status packets, as the servos on a half-duplex TTL bus would: only the addressed servo
answers, broadcast instructions are answered by nobody (except PING), SYNC_READ is answered by each
listed servo in the order listed, SYNC_WRITE by none.

We keep our own handle on the pty's slave side open for the bus's lifetime: without it the master side
reads EIO every time the host closes the port (LeRobot closes and reopens it to change baud rate).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
import time
import tty
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lekiwi_drift.emulator.protocol import BROADCAST_ID, Inst, Instruction, InstructionParser, encode_status
from lekiwi_drift.emulator.servo import REGISTERS, Servo

log = logging.getLogger(__name__)

_RETURN_DELAY_UNIT_S = 2e-6  # Return_Delay_Time counts 2 us


@dataclass
class BusConfig:
    name: str = "bus"
    link: str | None = None  # also reachable at this path (a symlink to the pty), e.g. /tmp/lekiwi-follower
    honour_return_delay: bool = True  # wait Return_Delay_Time (up to 0.5 ms) before answering, as servos do


class EmulatedBus:
    def __init__(self, servos: list[Servo], config: BusConfig | None = None):
        self.config = config or BusConfig()
        self.servos = list(servos)
        self.lock = threading.RLock()  # held while a packet is handled; hands and physics take it too
        self.parser = InstructionParser()
        self.counts: Counter[str] = Counter()  # instructions handled, by name; "unanswered" too
        self.unplugged = False  # the whole bus stops answering (USB cable out, board unpowered)
        self._master = self._slave = -1
        self._port = ""
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = -1, -1

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def port(self) -> str:
        """The path a host opens (the symlink when configured, else the pty's /dev/pts/N)."""
        if not self._port:
            raise RuntimeError(f"emulated bus {self.config.name!r} is not started; call start() first")
        return self.config.link or self._port

    def start(self) -> EmulatedBus:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: a serial line carries bytes as they are
        self._port = os.ttyname(self._slave)
        if self.config.link:
            link = Path(self.config.link)
            if link.is_symlink() or link.exists():
                if not link.is_symlink():
                    raise FileExistsError(f"{link} exists and is not a symlink; pick another link path")
                link.unlink()
            link.symlink_to(self._port)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=f"bus-{self.config.name}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop answering and close the pty: the host's next read or write fails, as when a USB cable
        is pulled. Safe to call twice."""
        if self._thread is None:
            return
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=2.0)
        self._thread = None
        for fd in (self._master, self._slave, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.config.link and Path(self.config.link).is_symlink():
            Path(self.config.link).unlink()

    def __enter__(self) -> EmulatedBus:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def servo(self, servo_id: int) -> Servo:
        for s in self.servos:
            if s.id == servo_id:
                return s
        raise KeyError(f"no servo with ID {servo_id} on bus {self.config.name!r} (IDs: {self.ids})")

    @property
    def ids(self) -> list[int]:
        return [s.id for s in self.servos]

    # -- serving -------------------------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self._master, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(self._master, 4096)
            except OSError as exc:  # EIO: no slave open (cannot happen while we hold one, but be safe)
                if exc.errno == errno.EIO:
                    time.sleep(0.01)
                    continue
                raise
            for inst in self.parser.feed(data):
                with self.lock:
                    replies = self.handle(inst)
                if replies:
                    try:
                        os.write(self._master, b"".join(replies))
                    except OSError:
                        return

    def _answering(self, servo_id: int) -> list[Servo]:
        if self.unplugged:
            return []
        if servo_id == BROADCAST_ID:
            return sorted((s for s in self.servos if not s.faults.silent), key=lambda s: s.id)
        return [s for s in self.servos if s.id == servo_id and not s.faults.silent]

    def _status(self, servo: Servo, params: bytes = b"") -> bytes:
        if self.config.honour_return_delay:
            delay = servo.mem[REGISTERS["Return_Delay_Time"][0]] * _RETURN_DELAY_UNIT_S
            if delay:
                time.sleep(delay)
        corrupt = servo.faults.corrupt_replies > 0
        if corrupt:
            servo.faults.corrupt_replies -= 1
        return encode_status(servo.id, servo.error_byte(), params, corrupt=corrupt)

    @staticmethod
    def _acks(servo: Servo) -> bool:
        """Response_Status_Level 0: a servo answers only PING and READ."""
        return servo.mem[REGISTERS["Response_Status_Level"][0]] != 0

    def handle(self, inst: Instruction) -> list[bytes]:
        """The status packets the bus puts on the line in answer to one instruction packet."""
        try:
            name = Inst(inst.inst).name
        except ValueError:
            self.counts["unknown"] += 1
            log.warning("bus %s: unknown instruction 0x%02x to ID %d ignored", self.config.name, inst.inst, inst.id)
            return []
        self.counts[name] += 1
        targets = self._answering(inst.id)
        p = inst.params
        out: list[bytes] = []
        if inst.inst == Inst.PING:
            out = [self._status(s) for s in targets]
        elif inst.inst == Inst.READ and len(p) == 2:
            if not inst.is_broadcast:
                out = [self._status(s, s.read(p[0], p[1])) for s in targets]
        elif inst.inst in (Inst.WRITE, Inst.REG_WRITE) and len(p) >= 2:
            for s in targets:
                s.write(p[0], p[1:]) if inst.inst == Inst.WRITE else s.reg_write(p[0], p[1:])
            if not inst.is_broadcast:
                out = [self._status(s) for s in targets if self._acks(s)]
        elif inst.inst == Inst.ACTION:
            for s in targets:
                s.action()
            if not inst.is_broadcast:
                out = [self._status(s) for s in targets if self._acks(s)]
        elif inst.inst == Inst.SYNC_WRITE and len(p) >= 2:
            addr, size = p[0], p[1]
            for i in range(2, len(p) - size, size + 1):
                for s in self._answering(p[i]):
                    s.write(addr, p[i + 1 : i + 1 + size])
        elif inst.inst == Inst.SYNC_READ and len(p) >= 2:
            addr, size = p[0], p[1]
            for sid in p[2:]:
                out += [self._status(s, s.read(addr, size)) for s in self._answering(sid)]
        else:
            self.counts["malformed"] += 1
        if not out and not inst.is_broadcast and inst.inst in (Inst.PING, Inst.READ):
            self.counts["unanswered"] += 1
        return out
