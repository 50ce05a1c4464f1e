"""Feetech SCS/STS protocol 0 framing, as the servos put it on the wire.

Instruction packet (host -> servo):  FF FF ID LEN INST P0..Pn CHK
Status packet      (servo -> host):  FF FF ID LEN ERR P0..Pn CHK
LEN counts INST/ERR, the parameters and CHK; CHK = ~(ID + LEN + INST/ERR + params) & 0xFF.

The parser is incremental because a serial line delivers bytes, not packets: a read may end mid-packet,
and noise or a half-written packet may precede a header. Like a servo, it drops a packet whose checksum
is wrong without answering, and resynchronises on the next FF FF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE
MAX_ID = 0xFC
MAX_LEN = 250  # scservo_sdk's TXPACKET_MAX_LEN / RXPACKET_MAX_LEN


class Inst(IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83


class ErrBit(IntEnum):
    """Status-packet error bits (scservo_sdk's ERRBIT_*): what a servo reports about itself."""

    VOLTAGE = 0x01
    ANGLE = 0x02
    OVERHEAT = 0x04
    OVERCURRENT = 0x08
    OVERLOAD = 0x20


def checksum(body: bytes | bytearray) -> int:
    """Checksum over ID, LEN, INST/ERR and the parameters (everything between header and CHK)."""
    return ~sum(body) & 0xFF


@dataclass(frozen=True)
class Instruction:
    id: int
    inst: int
    params: bytes

    @property
    def is_broadcast(self) -> bool:
        return self.id == BROADCAST_ID


def encode_instruction(id_: int, inst: int, params: bytes = b"") -> bytes:
    """An instruction packet (what scservo_sdk sends); the tests use it to speak to the emulator raw."""
    body = bytes([id_, len(params) + 2, inst]) + bytes(params)
    return HEADER + body + bytes([checksum(body)])


def encode_status(id_: int, error: int, params: bytes = b"", *, corrupt: bool = False) -> bytes:
    """A status packet. `corrupt` flips the checksum (a fault the emulator can inject on purpose)."""
    body = bytes([id_, len(params) + 2, error & 0xFF]) + bytes(params)
    chk = checksum(body)
    return HEADER + body + bytes([chk ^ 0xFF if corrupt else chk])


@dataclass
class ParserStats:
    packets: int = 0
    bad_checksum: int = 0
    discarded_bytes: int = 0


@dataclass
class InstructionParser:
    """Feed it bytes as they arrive; it returns each complete, checksum-valid instruction packet."""

    stats: ParserStats = field(default_factory=ParserStats)
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Instruction]:
        self._buf.extend(data)
        out: list[Instruction] = []
        while True:
            start = self._buf.find(HEADER)
            if start < 0:
                # Keep a trailing FF: it may be the first half of the next header.
                keep = 1 if self._buf.endswith(b"\xff") else 0
                self.stats.discarded_bytes += len(self._buf) - keep
                del self._buf[: len(self._buf) - keep]
                return out
            if start:
                self.stats.discarded_bytes += start
                del self._buf[:start]
            # A run of FFs (FF FF FF ID ...) : the header is the last two of them, as in scservo_sdk.
            while len(self._buf) > 2 and self._buf[2] == 0xFF:
                self.stats.discarded_bytes += 1
                del self._buf[0]
            if len(self._buf) < 4:
                return out
            length = self._buf[3]
            if length < 2 or length > MAX_LEN:
                self.stats.discarded_bytes += 2
                del self._buf[:2]  # not a packet: skip this header and look for the next
                continue
            total = 4 + length
            if len(self._buf) < total:
                return out
            packet = bytes(self._buf[:total])
            del self._buf[:total]
            body = packet[2:-1]
            if checksum(body) != packet[-1]:
                self.stats.bad_checksum += 1
                continue
            self.stats.packets += 1
            out.append(Instruction(id=packet[2], inst=packet[4], params=packet[5:-1]))


def decode_status(packet: bytes) -> tuple[int, int, bytes]:
    """(id, error, params) of one whole status packet; ValueError names what is wrong with it."""
    if len(packet) < 6 or packet[:2] != HEADER:
        raise ValueError(f"not a status packet (need FF FF and at least 6 bytes): {packet.hex(' ')}")
    if packet[3] + 4 != len(packet):
        raise ValueError(f"status packet LEN {packet[3]} does not match its {len(packet)} bytes")
    if checksum(packet[2:-1]) != packet[-1]:
        raise ValueError(f"status packet checksum mismatch: {packet.hex(' ')}")
    return packet[2], packet[4], packet[5:-1]
