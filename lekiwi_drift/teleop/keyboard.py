"""The keyboard teleoperator: a terminal reader thread and the base-velocity state machine.

`BaseKeys` is pure (key events in, base velocities and episode commands out) so it is tested without a
terminal. `TerminalKeyboard` reads keys through the project's one terminal reader (teleop/terminal.py),
which asks whether the terminal speaks the kitty keyboard protocol: if it does, directions move while
held; otherwise they latch until Space (or the opposite key). The terminal is restored on `stop()`.

Key map (LeRobot's LeKiwi map): w/s forward/back, a/d left/right, z/x rotate left/right, r/f speed level
up/down (0.1/0.2/0.3 m/s, 30/60/90 deg/s), Space stops the base at once. Episode keys: → or n next,
← or b re-record, Esc or q stop.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from lekiwi_drift.teleop.keys import PRESS, RELEASE, KeyEvent
from lekiwi_drift.teleop.terminal import KITTY, LEGACY, OFF, TerminalReader

SPEED_LEVELS = ((0.1, 30.0), (0.2, 60.0), (0.3, 90.0))  # (m/s, deg/s), as LeRobot's LeKiwi client
# key -> (axis, sign); axes: 0 x.vel (forward), 1 y.vel (left), 2 theta.vel (counter-clockwise)
DIRECTION_KEYS = {"w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "z": (2, 1), "x": (2, -1)}
NEXT, RERECORD, STOP, INTERRUPT = "next", "rerecord", "stop", "interrupt"
COMMAND_KEYS = {"right": NEXT, "n": NEXT, "left": RERECORD, "b": RERECORD, "esc": STOP, "q": STOP}

HOLD, LATCHED, NO_KEYS = "hold", "latched", "none"
MODE_TEXT = {
    HOLD: "keys: hold-to-move (kitty protocol)",
    LATCHED: "keys: latched (tap a direction, Space stops)",
    NO_KEYS: "keys: off (stdin is not a terminal)",
}


@dataclass
class BaseKeys:
    """Keyboard -> base velocity and episode commands. `hold`: a direction moves while its key is down
    (needs release events); else a tap latches the direction until Space or the opposite key."""

    hold: bool = False
    speed_index: int = 0
    _held: set[str] = field(default_factory=set)
    _latched: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # signs per axis
    commands: deque = field(default_factory=deque)

    def handle(self, event: KeyEvent) -> None:
        key = event.key
        if event.is_ctrl_c:  # in kitty mode Ctrl-C arrives as a key, not as SIGINT
            self.commands.append(INTERRUPT)
            return
        if event.kind == RELEASE:
            self._held.discard(key)
            return
        if key == "space":
            self.stop()
            return
        if event.kind != PRESS:  # auto-repeat: direction keys are already held or latched
            return
        if key in DIRECTION_KEYS:
            if self.hold:
                self._held.add(key)
            else:
                axis, sign = DIRECTION_KEYS[key]
                # The opposite direction cancels a latched motion instead of reversing at full speed.
                self._latched[axis] = 0.0 if self._latched[axis] == -sign else float(sign)
        elif key == "r":
            self.speed_index = min(self.speed_index + 1, len(SPEED_LEVELS) - 1)
        elif key == "f":
            self.speed_index = max(self.speed_index - 1, 0)
        elif key in COMMAND_KEYS:
            self.commands.append(COMMAND_KEYS[key])

    def stop(self) -> None:
        self._held.clear()
        self._latched = [0.0, 0.0, 0.0]

    def velocity(self) -> dict[str, float]:
        xy, theta = SPEED_LEVELS[self.speed_index]
        signs = [0.0, 0.0, 0.0]
        if self.hold:
            for key in self._held:
                axis, sign = DIRECTION_KEYS[key]
                signs[axis] += sign
        else:
            signs = list(self._latched)
        return {"x.vel": signs[0] * xy, "y.vel": signs[1] * xy, "theta.vel": signs[2] * theta}

    @property
    def moving(self) -> bool:
        return any(v != 0.0 for v in self.velocity().values())


class TerminalKeyboard:
    """Driving keys from the terminal (`TerminalReader`, kitty protocol when the terminal has it);
    thread-safe `velocity()` and `pop_commands()`."""

    def __init__(self, fd: int | None = None, out=None):
        self._lock = threading.Lock()
        self._state = BaseKeys()
        self._reader = TerminalReader(self._handle, fd=fd, out=out, kitty=True)
        self.mode = NO_KEYS

    @property
    def mode_text(self) -> str:
        return MODE_TEXT[self.mode]

    def start(self) -> TerminalKeyboard:
        self._reader.start()
        self.mode = {KITTY: HOLD, LEGACY: LATCHED, OFF: NO_KEYS}[self._reader.mode]
        with self._lock:
            self._state.hold = self.mode == HOLD
        return self

    def stop(self) -> None:
        self._reader.stop()

    def __enter__(self) -> TerminalKeyboard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handle(self, event: KeyEvent) -> None:  # the reader's thread
        with self._lock:
            self._state.handle(event)

    # -- what the session reads ------------------------------------------------------------------
    def velocity(self) -> dict[str, float]:
        with self._lock:
            return self._state.velocity()

    def speed_level(self) -> int:
        with self._lock:
            return self._state.speed_index

    def moving(self) -> bool:
        with self._lock:
            return self._state.moving

    def stop_base(self) -> None:
        with self._lock:
            self._state.stop()

    def pop_commands(self) -> list[str]:
        with self._lock:
            out = list(self._state.commands)
            self._state.commands.clear()
        return out
