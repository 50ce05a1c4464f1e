"""The keyboard teleoperator: a terminal reader thread and the base-velocity state machine.

`BaseKeys` is pure (key events in, base velocities and episode commands out) so it is tested without a
terminal. `TerminalKeyboard` puts stdin in cbreak mode (no echo, no line buffering; Ctrl-C still raises
SIGINT in legacy mode), asks whether the terminal speaks the kitty keyboard protocol and, if it does,
turns on release reporting for hold-to-move; otherwise directions latch until Space (or the opposite
key). Either way the terminal is restored on `stop()`.

Key map (LeRobot's LeKiwi map): w/s forward/back, a/d left/right, z/x rotate left/right, r/f speed level
up/down (0.1/0.2/0.3 m/s, 30/60/90 deg/s), Space stops the base at once. Episode keys: → or n next,
← or b re-record, Esc or q stop.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from lekiwi_drift.teleop.keys import (
    DEVICE_ATTRIBUTES_QUERY,
    KITTY_POP,
    KITTY_PUSH,
    KITTY_QUERY,
    PRESS,
    RELEASE,
    KeyDecoder,
    KeyEvent,
    TerminalReply,
)

log = logging.getLogger(__name__)

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
QUERY_TIMEOUT_S = 0.5  # wait for the terminal's answer to the kitty query
ESC_TIMEOUT_S = 0.05  # a lone ESC followed by silence this long is the Escape key


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
    """Reads key events from the terminal on a thread; thread-safe `velocity()` and `pop_commands()`."""

    def __init__(self, fd: int | None = None, out=None):
        self._fd = sys.stdin.fileno() if fd is None else fd
        self._out = out if out is not None else sys.stdout
        self._lock = threading.Lock()
        self._state = BaseKeys()
        self._decoder = KeyDecoder()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_attrs = None
        self._kitty_pushed = False
        self.mode = NO_KEYS

    @property
    def mode_text(self) -> str:
        return MODE_TEXT[self.mode]

    def start(self) -> "TerminalKeyboard":
        if not os.isatty(self._fd):
            log.info("stdin is not a terminal: keyboard control is off")
            return self
        import termios
        import tty

        self._saved_attrs = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)  # keeps ISIG: Ctrl-C still interrupts in legacy mode
        self.mode = HOLD if self._detect_kitty() else LATCHED
        with self._lock:
            self._state.hold = self.mode == HOLD
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="terminal-keyboard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._kitty_pushed:
            self._write(KITTY_POP)
            self._kitty_pushed = False
        if self._saved_attrs is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_attrs)
            self._saved_attrs = None

    def __enter__(self) -> "TerminalKeyboard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

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

    # -- terminal ----------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        try:
            self._out.write(data.decode())
            self._out.flush()
        except (OSError, ValueError):
            pass

    def _read(self, timeout_s: float) -> bytes:
        ready, _, _ = select.select([self._fd], [], [], timeout_s)
        return os.read(self._fd, 1024) if ready else b""

    def _detect_kitty(self) -> bool:
        """Ask for the kitty flags, then for device attributes. A kitty reply before the attributes
        reply means the protocol is there; keys typed meanwhile are kept."""
        self._write(KITTY_QUERY + DEVICE_ATTRIBUTES_QUERY)
        deadline = time.monotonic() + QUERY_TIMEOUT_S
        supported = False
        while (left := deadline - time.monotonic()) > 0:
            for event in self._decoder.feed(self._read(left)):
                if isinstance(event, TerminalReply):
                    if event.kind == "kitty_flags":
                        supported = True
                    elif event.kind == "device_attributes":
                        deadline = 0.0
                else:
                    self._state.handle(event)
        if supported:
            self._write(KITTY_PUSH)
            self._kitty_pushed = True
        return supported

    def _loop(self) -> None:
        while self._running.is_set():
            try:
                data = self._read(ESC_TIMEOUT_S)
            except (OSError, ValueError):
                return
            events = self._decoder.feed(data) if data else self._decoder.flush()
            if not events:
                continue
            with self._lock:
                for event in events:
                    if isinstance(event, KeyEvent):
                        self._state.handle(event)
