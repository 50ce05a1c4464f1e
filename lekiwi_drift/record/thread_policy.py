"""Keep a thread's CPU scheduling policy across a video encode.

SVT-AV1, the encoder behind LeRobot's default video codec (`libsvtav1`), switches the thread that opens
an encoder to the real-time policy SCHED_FIFO at priority 99 when the process runs as root (containers,
many robot setups), and leaves it there. Our recorder saves episodes from the thread that runs the
teleop loop; after the first save that loop, every thread it starts later and every process it spawns
would run real-time. Two busy real-time threads then own both cores of a small machine: nothing of
normal priority runs, not even the parent waiting for them (docs/design.md, "Shutting down").

    with keep_thread_scheduling():
        dataset.save_episode()

Only what the block changed is undone: a loop a user started real-time on purpose (`chrt`) stays so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

POLICY_NAMES = {0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE"}


def thread_scheduling() -> tuple[int, int] | None:
    """(policy, priority) of the calling thread (Linux applies sched_* calls with pid 0 to the calling
    thread); None where the platform has no such calls."""
    if not hasattr(os, "sched_getscheduler"):
        return None
    return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority


def describe(scheduling: tuple[int, int] | None) -> str:
    if scheduling is None:
        return "unknown"
    policy, priority = scheduling
    return f"{POLICY_NAMES.get(policy, policy)} priority {priority}"


@contextmanager
def keep_thread_scheduling() -> Iterator[None]:
    """Restore the calling thread's scheduling policy and priority after the block if it changed them."""
    before = thread_scheduling()
    try:
        yield
    finally:
        after = thread_scheduling()
        if before is not None and after != before:
            os.sched_setscheduler(0, before[0], os.sched_param(before[1]))
            log.debug("the video encoder set this thread to %s; restored %s", describe(after), describe(before))
