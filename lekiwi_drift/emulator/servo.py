"""One Feetech STS3215 servo: its control table (memory) and how it moves.

Addresses follow Feetech's STS/SMS memory map (the one LeRobot's `feetech/tables.py` encodes; a test
checks the two agree). Multi-byte registers are little-endian. Signed registers use Feetech's
sign-magnitude encoding: Homing_Offset has its sign in bit 11, positions and velocities in bit 15.

How the servo relates its registers to the shaft (as LeRobot relies on, see FeetechMotorsBus):
- `Present_Position = (actual - Homing_Offset) mod 4096`, with the Phase register's bit 4 clear (LeRobot
  clears it in `configure_motors`); with it set the reading is not wrapped.
- In position mode (Operating_Mode 0) with torque on, the shaft goes to `Goal_Position + Homing_Offset`,
  the goal first clamped to [Min_Position_Limit, Max_Position_Limit].
- In velocity mode (1) with torque on, the shaft turns at Goal_Velocity (steps/s, sign in bit 15).
- With torque off the shaft is free: only a hand (`hand_move`) or the physics moves it.

What moves the shaft is a `Drive` (see drive.py): an ideal first-order servo by default, the MuJoCo
LeKiwi when the bus is backed by the sim.
"""

from __future__ import annotations

from dataclasses import dataclass

from lekiwi_drift.emulator.drive import Drive, IdealDrive

RESOLUTION = 4096
MODEL_NUMBER_STS3215 = 777

# name: (address, size). Only what a servo answers; Feetech's "factory" area is kept as plain memory.
REGISTERS: dict[str, tuple[int, int]] = {
    "Firmware_Major_Version": (0, 1),
    "Firmware_Minor_Version": (1, 1),
    "Model_Number": (3, 2),
    "ID": (5, 1),
    "Baud_Rate": (6, 1),
    "Return_Delay_Time": (7, 1),
    "Response_Status_Level": (8, 1),
    "Min_Position_Limit": (9, 2),
    "Max_Position_Limit": (11, 2),
    "Max_Temperature_Limit": (13, 1),
    "Max_Voltage_Limit": (14, 1),
    "Min_Voltage_Limit": (15, 1),
    "Max_Torque_Limit": (16, 2),
    "Phase": (18, 1),
    "Unloading_Condition": (19, 1),
    "LED_Alarm_Condition": (20, 1),
    "P_Coefficient": (21, 1),
    "D_Coefficient": (22, 1),
    "I_Coefficient": (23, 1),
    "Minimum_Startup_Force": (24, 2),
    "CW_Dead_Zone": (26, 1),
    "CCW_Dead_Zone": (27, 1),
    "Protection_Current": (28, 2),
    "Angular_Resolution": (30, 1),
    "Homing_Offset": (31, 2),
    "Operating_Mode": (33, 1),
    "Protective_Torque": (34, 1),
    "Protection_Time": (35, 1),
    "Overload_Torque": (36, 1),
    "Torque_Enable": (40, 1),
    "Acceleration": (41, 1),
    "Goal_Position": (42, 2),
    "Goal_Time": (44, 2),
    "Goal_Velocity": (46, 2),
    "Torque_Limit": (48, 2),
    "Lock": (55, 1),
    "Present_Position": (56, 2),
    "Present_Velocity": (58, 2),
    "Present_Load": (60, 2),
    "Present_Voltage": (62, 1),
    "Present_Temperature": (63, 1),
    "Status": (65, 1),
    "Moving": (66, 1),
    "Present_Current": (69, 2),
    "Maximum_Acceleration": (85, 1),
}
SIGN_BITS = {"Homing_Offset": 11, "Goal_Position": 15, "Goal_Velocity": 15, "Present_Position": 15}
SIGN_BITS |= {"Present_Velocity": 15, "Present_Load": 10}
EEPROM_END = 40  # addresses below this are EEPROM: kept across power cycles when written unlocked
READ_ONLY_BELOW = 5  # firmware and model number
MEMORY_SIZE = 128
PHASE_NO_WRAP = 0x10  # Phase bit 4: angle feedback mode (readings not wrapped into 0..4095)

# Factory values (what a fresh STS3215 holds). Return delay 250 = 500 us, as LeRobot's comment says;
# Phase has bit 4 set so LeRobot's configure_motors has something to clear, as on real servos it reads.
FACTORY = {
    "Firmware_Major_Version": 3,
    "Firmware_Minor_Version": 10,
    "Model_Number": MODEL_NUMBER_STS3215,
    "Baud_Rate": 0,
    "Return_Delay_Time": 250,
    "Response_Status_Level": 1,
    "Min_Position_Limit": 0,
    "Max_Position_Limit": RESOLUTION - 1,
    "Max_Temperature_Limit": 70,
    "Max_Voltage_Limit": 140,
    "Min_Voltage_Limit": 40,
    "Max_Torque_Limit": 1000,
    "Phase": 0x1C,
    "P_Coefficient": 32,
    "D_Coefficient": 32,
    "Protection_Current": 500,
    "Angular_Resolution": 1,
    "Protective_Torque": 20,
    "Protection_Time": 200,
    "Overload_Torque": 80,
    "Torque_Limit": 1000,
    "Lock": 1,
    "Present_Voltage": 120,
    "Present_Temperature": 30,
    "Maximum_Acceleration": 0,
}


def encode_sm(value: int, bit: int) -> int:
    """Feetech sign-magnitude: magnitude in the low bits, sign in `bit` (clamped to what fits)."""
    mag = min(abs(int(value)), (1 << bit) - 1)
    return mag | (1 << bit) if value < 0 else mag


def decode_sm(raw: int, bit: int) -> int:
    mag = raw & ((1 << bit) - 1)
    return -mag if raw >> bit & 1 else mag


@dataclass
class ServoFaults:
    """Faults a test or an operator injects into one servo."""

    silent: bool = False  # does not answer at all (unplugged, dead)
    error_bits: int = 0  # OR-ed into every status packet's error byte (e.g. ErrBit.OVERLOAD)
    corrupt_replies: int = 0  # the next N status packets go out with a wrong checksum
    # Overload protection: when set, torque switches itself off and OVERLOAD is reported (as the servo
    # does after Protection_Time at Overload_Torque), until the host writes Torque_Enable again.
    overloaded: bool = False


class Servo:
    """Control table + shaft of one STS3215. Not thread-safe by itself: the bus serialises access."""

    def __init__(self, servo_id: int, drive: Drive | None = None, actual: float = 2048.0):
        self.mem = bytearray(MEMORY_SIZE)
        for name, value in FACTORY.items():
            self._store(name, value)
        self._store("ID", servo_id)
        self.drive = drive or IdealDrive(actual)
        self._store("Goal_Position", self.present_from(self.drive.actual()))  # set at power-on, as the servo does
        self.faults = ServoFaults()
        self._persisted = bytes(self.mem[:EEPROM_END])
        self._reg_write: tuple[int, bytes] | None = None  # REG_WRITE waits here for ACTION

    # -- raw memory ----------------------------------------------------------------------------------
    def _store(self, name: str, value: int) -> None:
        addr, size = REGISTERS[name]
        if name in SIGN_BITS:
            value = encode_sm(value, SIGN_BITS[name])
        self.mem[addr : addr + size] = int(value).to_bytes(size, "little")

    def get(self, name: str) -> int:
        """A register's value as a number (sign-magnitude registers decoded)."""
        self._refresh()
        addr, size = REGISTERS[name]
        raw = int.from_bytes(self.mem[addr : addr + size], "little")
        return decode_sm(raw, SIGN_BITS[name]) if name in SIGN_BITS else raw

    def set(self, name: str, value: int) -> None:
        """Set a register as a host's WRITE would (tests and the operator console use it)."""
        addr, size = REGISTERS[name]
        raw = encode_sm(value, SIGN_BITS[name]) if name in SIGN_BITS else int(value)
        self.write(addr, raw.to_bytes(size, "little"))

    @property
    def id(self) -> int:
        return self.mem[REGISTERS["ID"][0]]

    def read(self, addr: int, length: int) -> bytes:
        """READ / SYNC_READ: the bytes at addr (zeros past the end of memory, as unused addresses read)."""
        self._refresh()
        data = bytes(self.mem[addr : addr + length])
        return data + bytes(length - len(data))

    def write(self, addr: int, data: bytes) -> None:
        """WRITE / SYNC_WRITE / ACTION: store the bytes, then act on the registers they touched."""
        end = min(addr + len(data), MEMORY_SIZE)
        was_on = self.torque_on
        for a in range(max(addr, READ_ONLY_BELOW), end):
            self.mem[a] = data[a - addr]
        touched = range(addr, end)
        torque_addr = REGISTERS["Torque_Enable"][0]
        if torque_addr in touched:
            # Writing Torque_Enable clears an overload trip, as on the servo (the fault may trip again).
            self.faults.overloaded = False
            goal_addr = REGISTERS["Goal_Position"][0]
            if not was_on and self.torque_on and goal_addr not in touched:
                # The servo takes up torque where the shaft is, not at a stale goal: a real arm does not
                # jump when LeRobot enables torque after the joints were moved by hand.
                self._store("Goal_Position", self.present_from(self.drive.actual()))
        if addr < EEPROM_END and self.mem[REGISTERS["Lock"][0]] == 0:
            # Unlocked EEPROM writes survive a power cycle; locked ones last until power-off.
            self._persisted = bytes(self.mem[:EEPROM_END])
        self._command()

    def reg_write(self, addr: int, data: bytes) -> None:
        self._reg_write = (addr, bytes(data))

    def action(self) -> None:
        if self._reg_write is not None:
            addr, data = self._reg_write
            self._reg_write = None
            self.write(addr, data)

    def power_cycle(self) -> None:
        """Power off and on: RAM back to factory values, EEPROM as last written unlocked."""
        actual = self.drive.actual()
        self.mem = bytearray(MEMORY_SIZE)
        for name, value in FACTORY.items():
            self._store(name, value)
        self.mem[:EEPROM_END] = self._persisted
        self.drive.release(actual)
        self._store("Goal_Position", self.present_from(actual))
        self._command()

    # -- the shaft -----------------------------------------------------------------------------------
    @property
    def torque_on(self) -> bool:
        return self.mem[REGISTERS["Torque_Enable"][0]] == 1 and not self.faults.overloaded

    def error_byte(self) -> int:
        return self.faults.error_bits | (0x20 if self.faults.overloaded else 0)

    def _command(self) -> None:
        """Hand the drive what the registers now ask for."""
        mode = self.get_raw("Operating_Mode")
        if not self.torque_on:
            self.drive.release()
            return
        if mode == 1:
            self.drive.spin(decode_sm(self.get_raw("Goal_Velocity"), 15))
            return
        lo, hi = self.get_raw("Min_Position_Limit"), self.get_raw("Max_Position_Limit")
        goal = decode_sm(self.get_raw("Goal_Position"), 15)
        if lo < hi:  # 0/0 limits mean "no limits" (multi-turn); otherwise the servo clamps its goal
            goal = min(max(goal, lo), hi)
        # The servo closes the loop on its own reading: it moves the shaft by (goal - present), so a goal
        # never makes it cross the 0/4095 seam of its reading the long way round.
        actual = self.drive.actual()
        speed = decode_sm(self.get_raw("Goal_Velocity"), 15)
        self.drive.hold(actual + goal - self.present_from(actual), abs(speed) or None)

    def get_raw(self, name: str) -> int:
        addr, size = REGISTERS[name]
        return int.from_bytes(self.mem[addr : addr + size], "little")

    @property
    def homing_offset(self) -> int:
        return decode_sm(self.get_raw("Homing_Offset"), 11)

    def hand_move(self, actual: float) -> bool:
        """A person turns the shaft to `actual` steps; only possible with torque off (returns False if on)."""
        if self.torque_on:
            return False
        self.drive.release(actual)
        return True

    def present_from(self, actual: float) -> int:
        """The servo's position reading for shaft position `actual` (steps)."""
        # The encoder itself is 12-bit; with Phase bit 4 set the offset reading may leave 0..4095
        # (the "overflow or negative values" LeRobot's configure_motors avoids by clearing the bit).
        present = round(actual) % RESOLUTION - self.homing_offset
        if not self.get_raw("Phase") & PHASE_NO_WRAP:
            present %= RESOLUTION
        return present

    def _refresh(self) -> None:
        """Write the shaft's state into the Present_* registers (done before every read)."""
        if self.faults.overloaded and self.mem[REGISTERS["Torque_Enable"][0]] == 1:
            self.drive.release()
        present = self.present_from(self.drive.actual())
        vel = round(self.drive.velocity())
        self._store("Present_Position", present)
        self._store("Present_Velocity", vel)
        self.mem[REGISTERS["Moving"][0]] = 1 if abs(vel) > 20 else 0
        self._store("Present_Load", int(self.drive.load() * 1000))
        status = 0x20 if self.faults.overloaded else 0
        self.mem[REGISTERS["Status"][0]] = status
