"""Peak resident memory (RSS) of one piece of work, measured in a fresh process of its own.

In one long-lived process a peak-RSS figure cannot be told apart per piece of work: the kernel's
high-water mark covers the process's whole life, and memory a finished piece freed stays resident in
the C allocator's heap for the next piece to reuse without raising RSS. `bench latency` showed it: the
same 4086 MiB for all seven variants. So each piece runs in a child started with the *spawn* method
(a fork would share the parent's resident pages and heap), which

1. runs `setup(*args)` (e.g. builds the model and the batch),
2. resets the kernel's high-water mark to its current RSS (`/proc/self/clear_refs` "5", Linux >= 4.0),
   so setup's transient peaks do not count, and notes that RSS as the base,
3. runs `work(state)` and reads the high-water mark again.

The mark is read from VmHWM in /proc/self/status, not `getrusage(RUSAGE_SELF).ru_maxrss`: at exec the
kernel folds the spawning process's high-water mark into ru_maxrss (signal->maxrss), so a child of a
4 GB parent would report at least 4 GB; VmHWM is the child's own address space only.
"""

from __future__ import annotations

import multiprocessing
import resource
from collections.abc import Callable
from typing import Any


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB
    raise OSError("/proc/self/status has no VmHWM line")


def _child(setup: Callable[..., Any], work: Callable[[Any], Any], args: tuple) -> dict[str, float]:
    state = setup(*args)
    reset_peak()
    base = resident_bytes()
    work(state)
    peak = max(peak_bytes(), resident_bytes())
    return {"peak_mib": peak / 2**20, "work_mib": (peak - base) / 2**20}


def peak_in_fresh_process(setup: Callable[..., Any], work: Callable[[Any], Any], *args) -> dict[str, float]:
    """{"peak_mib": the child's peak RSS while `work` ran, "work_mib": that peak over its RSS just before}.
    setup and work must be module-level functions (the spawned child imports them by name)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_child, (setup, work, args))
