"""Work with a known memory footprint, for the fresh-process peak-RSS test (the spawned child imports
these by name, so they live in a light module of their own)."""

from __future__ import annotations

PAGE = 4096


def touch(mib: int) -> bytearray:
    """mib MiB, every page written, so all of it is resident."""
    buf = bytearray(mib * 2**20)
    buf[::PAGE] = b"\x01" * len(range(0, len(buf), PAGE))
    return buf


def setup_with_transient(transient_mib: int, work_mib: int) -> int:
    """Setup that peaks at transient_mib and frees it before the work starts."""
    del_me = touch(transient_mib)
    del del_me
    return work_mib


def allocate(work_mib: int) -> None:
    touch(work_mib)
