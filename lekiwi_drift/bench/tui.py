"""`lekiwi-drift bench tui`: time from process start to the trials TUI's first screen.

Each run spawns `lekiwi-drift trials PROTOCOL --first-paint-exit` on a pseudo-terminal (a real
terminal driver, 120x40), in a fresh temporary sessions folder, and reads back the monotonic time of
the first paint (CLOCK_MONOTONIC is system-wide, so the child's clock and ours agree). The child exits
right after that paint, before the robot link or any policy would be touched, and reports whether torch
had been imported by then (it must not have been: policy loading starts after the first screen).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time

HELP = "trials TUI: process start to first screen (target <= 2 s, no torch import before it)"
TARGET_S = 2.0
_MARK = re.compile(rb"first_paint_monotonic=([0-9.]+) torch_imported=(True|False)")


def add_arguments(parser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="process starts to time (default: 5)")
    parser.add_argument("--protocol", default="salt_bottle", help="protocol to open (default: salt_bottle)")


def time_first_screen(protocol: str, sessions_dir: str, timeout_s: float = 30.0) -> tuple[float, float, bool]:
    """-> (seconds to first paint, seconds to exit, torch imported before the first paint)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": os.environ.get("TERM", "xterm-256color"), "COLUMNS": "120", "LINES": "40"}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lekiwi_drift.cli.main",
            "trials",
            protocol,
            "--new",
            "--first-paint-exit",
            "--sessions-dir",
            sessions_dir,
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    out = b""
    deadline = t0 + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        t_exit = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    m = _MARK.search(out)
    if m is None:
        tail = out[-800:].decode(errors="replace")
        raise RuntimeError(f"the TUI did not report its first paint (exit code {proc.returncode}); output: {tail}")
    return float(m.group(1)) - t0, t_exit, m.group(2) == b"True"


def run(args) -> int:
    firsts, exits, torch_seen = [], [], False
    with tempfile.TemporaryDirectory(prefix="bench-tui-") as tmp:
        for i in range(args.runs):
            first, done, torch_imported = time_first_screen(args.protocol, tmp)
            firsts.append(first)
            exits.append(done)
            torch_seen |= torch_imported
            print(
                f"run {i + 1}: first screen {first:.3f} s, process exit {done:.3f} s"
                f"{', torch imported' if torch_imported else ''}"
            )
    med, worst = statistics.median(firsts), max(firsts)
    print(
        f"\nprocess start -> first screen (pty 120x40, {args.runs} runs): median {med:.3f} s, "
        f"max {worst:.3f} s; target <= {TARGET_S:g} s: {'met' if worst <= TARGET_S else 'MISSED'}"
    )
    print(f"torch imported before the first screen: {'YES (bad)' if torch_seen else 'no'}")
    return 0 if worst <= TARGET_S and not torch_seen else 1
