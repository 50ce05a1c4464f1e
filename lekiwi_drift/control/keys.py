"""The terminal e-stop: Space or Esc stops the robot (`lekiwi-drift run`).

Reads stdin in cbreak mode from a background thread, so it works over SSH and headless (pynput does
not; see DESIGN.md, LeRobot pitfalls). Ctrl-C keeps raising KeyboardInterrupt (cbreak leaves signals
on), which the loop also turns into a safe stop. Without a terminal on stdin this does nothing.
"""

from __future__ import annotations

import os
import select
import sys
import threading
from typing import Callable

ESTOP_KEYS = (" ", "\x1b")  # Space, Esc


class EstopKeys:
    """Context manager: while active, Space/Esc call `on_estop`; 'q' calls `on_quit` when given."""

    def __init__(self, on_estop: Callable[[], None], on_quit: Callable[[], None] | None = None, stream=None):
        self.on_estop = on_estop
        self.on_quit = on_quit
        self.stream = stream if stream is not None else sys.stdin
        self._saved = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.active = False

    def __enter__(self) -> "EstopKeys":
        try:
            fd = self.stream.fileno()
        except (AttributeError, ValueError, OSError):
            return self
        if not os.isatty(fd):
            return self
        import termios
        import tty

        self._fd = fd
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)  # keys arrive one at a time, unechoed; Ctrl-C still sends SIGINT
        self.active = True
        self._thread = threading.Thread(target=self._read, name="estop-keys", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=0.5)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None
        self.active = False

    def _read(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            if not ready:
                continue
            try:
                ch = os.read(self._fd, 1).decode(errors="ignore")
            except OSError:
                return
            self.handle(ch)

    def handle(self, ch: str) -> None:
        if ch in ESTOP_KEYS:
            self.on_estop()
        elif ch in ("q", "Q") and self.on_quit is not None:
            self.on_quit()
