"""Progress on stderr for work that is otherwise silent for seconds to minutes.

Two shapes: `bar()` for a known number of steps (tqdm), and `Spinner` for one long call with no steps
to count (saving an episode: LeRobot encodes the videos and writes parquet without a callback). Both
write to stderr, so stdout stays the command's result (tables, summaries) for scripts and pipes.

On a terminal the bar and the spinner redraw one line; in a log file (stderr not a terminal) the bar
prints a line at most every `LOG_INTERVAL_S` and the spinner one line when it starts and one when it
ends, so a CI log shows progress without a flood.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

LOG_INTERVAL_S = 10.0


def _tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def bar(total: int, desc: str, unit: str = "it", stream: TextIO | None = None, disable: bool = False):
    """A tqdm bar on stderr; use as a context manager and call `.update()` / `.set_postfix_str()`."""
    from tqdm.auto import tqdm

    stream = stream if stream is not None else sys.stderr
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=stream,
        dynamic_ncols=True,
        mininterval=0.1 if _tty(stream) else LOG_INTERVAL_S,
        leave=True,
        disable=disable,
    )


class Spinner:
    """`with Spinner("saving episode 3"):` shows the message and the seconds spent until the block ends,
    then "done in X s" (or "failed after X s")."""

    FRAMES = "|/-\\"

    def __init__(self, message: str, stream: TextIO | None = None, interval_s: float = 0.25):
        self.message = message
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def __enter__(self) -> Spinner:
        self._t0 = time.monotonic()
        if _tty(self.stream):
            self._thread = threading.Thread(target=self._spin, name="progress-spinner", daemon=True)
            self._thread.start()
        else:
            self._write(f"{self.message} ...\n")
        return self

    def _spin(self) -> None:
        i = 0
        while not self._stop.wait(self.interval_s):
            i += 1
            elapsed = time.monotonic() - self._t0
            self._write(f"\r{self.message} {self.FRAMES[i % len(self.FRAMES)]} {elapsed:.0f} s")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        elapsed = time.monotonic() - self._t0
        verdict = f"failed after {elapsed:.1f} s" if exc_type is not None else f"done in {elapsed:.1f} s"
        prefix = "\r" if self._thread is not None else ""
        self._write(f"{prefix}{self.message}: {verdict}\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stream must not break the work being reported on
            pass
