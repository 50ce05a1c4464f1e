"""The terminal e-stop: Space or Esc stops the robot (`lekiwi-drift run`).

Keys come through the project's one terminal reader (teleop/terminal.py): it works over SSH and
headless (pynput does not), and it tells a lone Esc from the ESC that starts an
arrow key's escape sequence, so an arrow key never fires the e-stop. Ctrl-C keeps raising
KeyboardInterrupt (cbreak leaves signals on), which the loop also turns into a safe stop. Without a
terminal on stdin this does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from lekiwi_drift.teleop.keys import RELEASE, KeyEvent
from lekiwi_drift.teleop.terminal import OFF, TerminalReader

ESTOP_KEYS = ("space", "esc")
QUIT_KEYS = ("q",)


class EstopKeys:
    """Context manager: while active, Space/Esc call `on_estop`; 'q' calls `on_quit` when given."""

    def __init__(self, on_estop: Callable[[], None], on_quit: Callable[[], None] | None = None, fd: int | None = None):
        self.on_estop = on_estop
        self.on_quit = on_quit
        self._reader = TerminalReader(self.handle, fd=fd)

    @property
    def active(self) -> bool:
        return self._reader.mode != OFF

    def __enter__(self) -> EstopKeys:
        self._reader.start()
        return self

    def __exit__(self, *exc) -> None:
        self._reader.stop()

    def handle(self, event: KeyEvent) -> None:
        if event.kind == RELEASE:
            return
        if event.key in ESTOP_KEYS:
            self.on_estop()
        elif event.key in QUIT_KEYS and self.on_quit is not None:
            self.on_quit()
