"""Free TCP ports on loopback, for hosts started locally (sim quickstart, tests, benchmarks)."""

from __future__ import annotations

import socket


def free_loopback_ports(n: int = 2) -> list[int]:
    """`n` distinct ports that were free a moment ago (bound to 127.0.0.1:0 together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
