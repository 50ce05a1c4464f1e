"""The Feetech STS3215 bus emulator, spoken to by LeRobot's own FeetechMotorsBus over a real pty.

Only the servos are emulated: the packets go through scservo_sdk and pyserial into a pseudo-terminal, as
they would into a USB serial adapter. Where LeRobot is the host, the bus runs in its own process
(BusProcess): scservo_sdk busy-polls for each status packet holding this process's GIL, and an emulator
thread in here would have to win the GIL back within LeRobot's 50 ms packet timeout.
"""

from __future__ import annotations

import os
import select
import time
import tty

import pytest

pytest.importorskip("scservo_sdk")

from lerobot.motors import Motor, MotorNormMode  # noqa: E402
from lerobot.motors.feetech import FeetechMotorsBus, OperatingMode  # noqa: E402
from lerobot.motors.feetech.tables import STS_SMS_SERIES_CONTROL_TABLE, STS_SMS_SERIES_ENCODINGS_TABLE  # noqa: E402

from lekiwi_drift.emulator.bus import EmulatedBus  # noqa: E402
from lekiwi_drift.emulator.bus_process import BusProcess  # noqa: E402
from lekiwi_drift.emulator.layouts import ARM_MIDDLE, FOLLOWER_IDS, follower_servos, leader_servos  # noqa: E402
from lekiwi_drift.emulator.protocol import (  # noqa: E402
    BROADCAST_ID,
    ErrBit,
    Inst,
    InstructionParser,
    decode_status,
    encode_instruction,
)
from lekiwi_drift.emulator.servo import REGISTERS, SIGN_BITS, Servo  # noqa: E402


def _bus(port: str, ids=range(1, 10)) -> FeetechMotorsBus:
    return FeetechMotorsBus(port, {f"m{i}": Motor(i, "sts3215", MotorNormMode.RANGE_M100_100) for i in ids})


def _wait_for(fn, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        time.sleep(0.02)
    return fn()


def test_register_map_matches_lerobots_table():
    for name, (addr, size) in REGISTERS.items():
        assert STS_SMS_SERIES_CONTROL_TABLE[name] == (addr, size), name
    for name, bit in SIGN_BITS.items():
        assert STS_SMS_SERIES_ENCODINGS_TABLE[name] == bit, name


def test_parser_frames_checksums_and_resyncs():
    parser = InstructionParser()
    good = encode_instruction(3, Inst.READ, bytes([56, 2]))
    bad = bytearray(encode_instruction(4, Inst.READ, bytes([56, 2])))
    bad[-1] ^= 0x01
    stream = b"\x00\x13" + bytes(bad) + good[:5]
    assert parser.feed(stream) == []  # noise, a corrupt packet, half a packet
    (inst,) = parser.feed(good[5:])
    assert (inst.id, inst.inst, inst.params) == (3, Inst.READ, bytes([56, 2]))
    assert parser.stats.bad_checksum == 1 and parser.stats.discarded_bytes == 2


def test_raw_exchange_on_the_pty():
    """Byte-level: a servo answers READ with FF FF ID LEN ERR data CHK, ignores a bad checksum, answers
    nothing to a broadcast WRITE, and REG_WRITE takes effect only on ACTION."""
    with EmulatedBus(follower_servos()) as emu:
        fd = os.open(emu.port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)

        def ask(packet: bytes, wait=0.3) -> bytes:
            os.write(fd, packet)
            out = b""
            while select.select([fd], [], [], wait)[0]:
                out += os.read(fd, 256)
            return out

        try:
            reply = ask(encode_instruction(1, Inst.READ, bytes([3, 2])))
            assert decode_status(reply) == (1, 0, (777).to_bytes(2, "little"))
            corrupt = bytearray(encode_instruction(1, Inst.PING))
            corrupt[-1] ^= 0xFF
            assert ask(bytes(corrupt)) == b""
            assert ask(encode_instruction(BROADCAST_ID, Inst.WRITE, bytes([41, 7]))) == b""
            assert all(s.get("Acceleration") == 7 for s in emu.servos)
            assert decode_status(ask(encode_instruction(2, Inst.REG_WRITE, bytes([41, 99])))) == (2, 0, b"")
            assert emu.servo(2).get("Acceleration") == 7
            assert ask(encode_instruction(BROADCAST_ID, Inst.ACTION)) == b""
            assert emu.servo(2).get("Acceleration") == 99
            # Response_Status_Level 0 (from this very write on): WRITE goes unanswered, READ still answers.
            assert ask(encode_instruction(5, Inst.WRITE, bytes([8, 0]))) == b""
            assert ask(encode_instruction(5, Inst.WRITE, bytes([41, 3]))) == b""
            assert decode_status(ask(encode_instruction(5, Inst.READ, bytes([41, 1])))) == (5, 0, b"\x03")
        finally:
            os.close(fd)


def test_lerobot_bus_connects_pings_reads_writes():
    with BusProcess(follower_servos()) as emu:
        bus = _bus(emu.port)
        bus.connect()  # handshake: ping every ID, same firmware everywhere
        try:
            assert bus.broadcast_ping() == dict.fromkeys(range(1, 10), 777)
            assert bus.ping("m4") == 777
            assert bus._read_firmware_version(bus.ids) == dict.fromkeys(range(1, 10), "3.10")
            pos = bus.sync_read("Present_Position", normalize=False)
            assert pos["m1"] == ARM_MIDDLE["shoulder_pan"] and pos["m7"] == 2048

            bus.configure_motors()  # writes Return_Delay_Time, accelerations, clears Phase bit 4
            assert bus.read("Return_Delay_Time", "m3", normalize=False) == 0
            assert bus.read("Phase", "m3", normalize=False) & 0x10 == 0

            # Homing offset in Feetech's sign-magnitude (bit 11): Present = Actual - Homing_Offset.
            bus.write("Homing_Offset", "m1", -300, normalize=False)
            assert emu.servo(1).get_raw("Homing_Offset") == 300 | 1 << 11
            assert bus.read("Homing_Offset", "m1", normalize=False) == -300
            assert bus.read("Present_Position", "m1", normalize=False) == ARM_MIDDLE["shoulder_pan"] + 300

            # Position mode: the goal is reached at the servo's speed, clamped to the position limits.
            bus.write("Max_Position_Limit", "m2", 2500, normalize=False)
            bus.enable_torque(["m1", "m2"])
            bus.sync_write("Goal_Position", {"m1": 2500, "m2": 3500}, normalize=False)
            assert _wait_for(
                lambda: bus.sync_read("Present_Position", ["m1", "m2"], normalize=False) == {"m1": 2500, "m2": 2500}
            )

            # Velocity mode (the wheels): Goal_Velocity with its sign in bit 15 turns the shaft.
            bus.write("Operating_Mode", "m8", OperatingMode.VELOCITY.value)
            bus.enable_torque("m8")
            start = bus.read("Present_Position", "m8", normalize=False)
            bus.sync_write("Goal_Velocity", {"m8": -600}, normalize=False)
            assert bus.sync_read("Present_Velocity", ["m8"], normalize=False) == {"m8": -600}
            time.sleep(0.2)
            moved = (bus.read("Present_Position", "m8", normalize=False) - start) % 4096 - 4096
            assert -600 * 0.4 < moved < -600 * 0.1
            bus.sync_write("Goal_Velocity", {"m8": 0}, normalize=False)
            assert bus.read("Present_Velocity", "m8", normalize=False) == 0
        finally:
            bus.disconnect()
        assert not any(s.get("Torque_Enable") for s in emu.servos)  # disconnect released every motor


def test_missing_motor_fails_the_handshake():
    with BusProcess(follower_servos()[:8]) as emu:  # no right wheel (ID 9)
        bus = _bus(emu.port)
        with pytest.raises(RuntimeError, match=r"Missing motor IDs:\n  - 9 \(expected model: 777\)"):
            bus.connect()
        bus.port_handler.closePort()


def test_lekiwi_and_leader_bus_layouts():
    """The buses LeRobot's LeKiwi and SO101Leader build find every motor they expect on ours."""
    from lerobot.robots.lekiwi import LeKiwi, LeKiwiConfig
    from lerobot.teleoperators.so_leader import SO101Leader, SO101LeaderConfig

    with BusProcess(follower_servos()) as f, BusProcess(leader_servos()) as lead:
        robot = LeKiwi(LeKiwiConfig(port=f.port, cameras={}, id="emu_test"))
        leader = SO101Leader(SO101LeaderConfig(port=lead.port, id="emu_test_leader"))
        robot.bus.connect()
        leader.bus.connect()
        try:
            assert set(robot.bus.broadcast_ping()) == set(FOLLOWER_IDS.values())
            assert set(leader.bus.broadcast_ping()) == set(range(1, 7))
        finally:
            robot.bus.disconnect()
            leader.bus.disconnect()


def test_faults_silent_corrupt_overload():
    with BusProcess(follower_servos()) as emu:
        bus = _bus(emu.port)
        bus.connect()
        try:
            emu.servo(3).faults.silent = True
            with pytest.raises(ConnectionError, match="no status packet"):
                bus.sync_read("Present_Position", normalize=False)
            assert bus.ping("m3") is None
            emu.servo(3).faults.silent = False

            emu.servo(2).faults.corrupt_replies = 1
            with pytest.raises(ConnectionError, match="Incorrect status packet"):
                bus.read("Present_Position", "m2", normalize=False)
            assert bus.read("Present_Position", "m2", normalize=False) == ARM_MIDDLE["shoulder_lift"]

            bus.enable_torque("m1")
            emu.servo(1).faults.overloaded = True
            with pytest.raises(RuntimeError, match="Overload"):
                bus.read("Present_Position", "m1", normalize=False)
            assert not emu.servo(1).torque_on
            bus.write("Torque_Enable", "m1", 1)  # re-enabling clears the trip
            assert emu.servo(1).torque_on and emu.servo(1).error_byte() == 0

            emu.servo(5).faults.error_bits = ErrBit.OVERHEAT
            assert bus.ping("m5") is None  # LeRobot treats an error status as "not found"
        finally:
            emu.servo(5).faults.error_bits = 0
            bus.disconnect()


def test_bus_process_serves_the_same_servos_from_its_own_process():
    """BusProcess: the servos travel to the child as they are; register access, counts and faults reach
    them there, and the child's errors are raised here."""
    servos = follower_servos()
    servos[0].set("Acceleration", 9)
    emu = BusProcess(servos).start()
    try:
        bus = _bus(emu.port)
        bus.connect()
        assert bus.read("Acceleration", "m1", normalize=False) == 9
        bus.write("Acceleration", "m2", 77, normalize=False)
        assert emu.servo(2).get("Acceleration") == 77 and emu.counts["WRITE"] == 1
        emu.servo(8).set("Goal_Velocity", -5)
        assert emu.servo(8).get("Goal_Velocity") == -5 and emu.servo(8).get_raw("Goal_Velocity") == 5 | 1 << 15
        emu.servo(3).faults.silent = True
        assert emu.servo(3).faults.silent is True and bus.ping("m3") is None
        with pytest.raises(AttributeError, match="no 'slient'"):
            emu.servo(3).faults.slient = False
        with pytest.raises(KeyError, match="No_Such_Register"):
            emu.servo(3).get("No_Such_Register")
        bus.port_handler.closePort()
    finally:
        emu.close()
    emu.close()  # a second close is a no-op


def test_eeprom_survives_power_cycle_only_when_unlocked():
    s = Servo(1)
    s.write(REGISTERS["Lock"][0], b"\x00")
    s.write(REGISTERS["Min_Position_Limit"][0], (100).to_bytes(2, "little"))
    s.write(REGISTERS["Lock"][0], b"\x01")
    s.write(REGISTERS["Max_Position_Limit"][0], (3000).to_bytes(2, "little"))
    assert (s.get("Min_Position_Limit"), s.get("Max_Position_Limit")) == (100, 3000)
    s.power_cycle()
    assert (s.get("Min_Position_Limit"), s.get("Max_Position_Limit")) == (100, 4095)
    assert s.get("Lock") == 1 and s.get("Torque_Enable") == 0
