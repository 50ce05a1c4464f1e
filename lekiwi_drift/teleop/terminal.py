"""`TerminalReader`: the project's one raw-key reader (teleop driving keys and the run e-stop both use it).

It puts a terminal in cbreak mode (keys arrive one at a time, unechoed; Ctrl-C still raises SIGINT in
legacy mode), decodes bytes with `KeyDecoder` and hands each `KeyEvent` to `on_event` from a reader
thread. An ESC byte is only the Escape key once the terminal has been quiet for ESC_TIMEOUT_S: the ESC
that starts an arrow key's `ESC [ A` is never mistaken for it (the e-stop must not fire on an arrow key,
and must fire on a lone Esc). With `kitty=True` it asks whether the terminal speaks the kitty keyboard
protocol and, if so, turns on release reporting (hold-to-move driving). `stop()` restores the terminal.
Without a terminal on the file descriptor it does nothing (`mode == "off"`).
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
import time
from collections.abc import Callable

from lekiwi_drift.teleop.keys import (
    DEVICE_ATTRIBUTES_QUERY,
    KITTY_POP,
    KITTY_PUSH,
    KITTY_QUERY,
    KeyDecoder,
    KeyEvent,
    TerminalReply,
)

log = logging.getLogger(__name__)

QUERY_TIMEOUT_S = 0.5  # wait for the terminal's answer to the kitty query
ESC_TIMEOUT_S = 0.05  # a lone ESC followed by silence this long is the Escape key
KITTY, LEGACY, OFF = "kitty", "legacy", "off"


class TerminalReader:
    def __init__(self, on_event: Callable[[KeyEvent], None], fd: int | None = None, out=None, kitty: bool = False):
        """`on_event` runs on the reader thread (and on the caller's during kitty detection)."""
        self.on_event = on_event
        self._fd = fd  # None: stdin's, looked up in start()
        self._out = out if out is not None else sys.stdout
        self._want_kitty = kitty
        self._decoder = KeyDecoder()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_attrs = None
        self._kitty_pushed = False
        self.mode = OFF

    def start(self) -> TerminalReader:
        try:  # a replaced stdin (pytest's capture, a pipe wrapper) may have no descriptor at all
            if self._fd is None:
                self._fd = sys.stdin.fileno()
            tty_ok = os.isatty(self._fd)
        except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
            tty_ok = False
        if not tty_ok:
            log.debug("stdin is not a terminal: no keys")
            return self
        import termios
        import tty

        self._saved_attrs = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)  # keeps ISIG: Ctrl-C still interrupts in legacy mode
        self.mode = KITTY if self._want_kitty and self._detect_kitty() else LEGACY
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="terminal-keys", daemon=True)
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
        self.mode = OFF

    def __enter__(self) -> TerminalReader:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

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
        reply means the protocol is there; keys typed meanwhile are delivered."""
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
                    self.on_event(event)
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
            # Quiet for ESC_TIMEOUT_S: a held-back lone ESC is the Escape key now.
            for event in self._decoder.feed(data) if data else self._decoder.flush():
                if isinstance(event, KeyEvent):
                    self.on_event(event)
