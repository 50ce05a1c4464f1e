"""What turns a servo's shaft. The servo (servo.py) decides what it wants; a Drive makes it happen.

Positions are in encoder steps, unwrapped (a wheel that turned twice is at +8192): the servo wraps them
into its 12-bit reading. `IdealDrive` is a rate-limited servo in wall time, enough for protocol and
calibration work; `sim_drive.py` puts the shaft on a MuJoCo joint instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

# STS3215 at 12 V: about 0.222 s per 60 degrees unloaded, i.e. ~3000 steps/s; LeRobot's Goal_Velocity 0
# means "as fast as it goes".
MAX_SPEED_STEPS = 3000.0


class Drive(Protocol):
    def actual(self) -> float: ...
    def velocity(self) -> float: ...
    def load(self) -> float: ...
    def hold(self, target: float, speed: float | None) -> None: ...
    def spin(self, steps_per_s: float) -> None: ...
    def release(self, actual: float | None = None) -> None: ...


class IdealDrive:
    """Moves at a capped speed straight to a held target, spins at a set speed, or stays where a hand
    left it. Time advances lazily on each call, from `clock` (wall time unless a test passes its own)."""

    def __init__(self, actual: float = 2048.0, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._t = clock()
        self._pos = float(actual)
        self._vel = 0.0
        self._mode = "free"
        self._target = self._pos
        self._speed = MAX_SPEED_STEPS

    def _advance(self) -> None:
        now = self._clock()
        dt, self._t = max(0.0, now - self._t), now
        if self._mode == "spin":
            self._pos += self._vel * dt
        elif self._mode == "hold":
            gap = self._target - self._pos
            step = min(abs(gap), self._speed * dt)
            self._pos += step if gap > 0 else -step
            self._vel = 0.0 if dt == 0 or step == 0 else (step if gap > 0 else -step) / dt
        else:
            self._vel = 0.0

    def actual(self) -> float:
        self._advance()
        return self._pos

    def velocity(self) -> float:
        self._advance()
        return self._vel

    def load(self) -> float:
        return 0.0

    def hold(self, target: float, speed: float | None) -> None:
        self._advance()
        self._mode, self._target = "hold", float(target)
        self._speed = min(float(speed), MAX_SPEED_STEPS) if speed else MAX_SPEED_STEPS

    def spin(self, steps_per_s: float) -> None:
        self._advance()
        self._mode, self._vel = "spin", float(steps_per_s)

    def release(self, actual: float | None = None) -> None:
        self._advance()
        self._mode, self._vel = "free", 0.0
        if actual is not None:
            self._pos = float(actual)
