"""Peak resident memory (RSS) of one piece of work, measured in a fresh process of its own.

In one long-lived process a peak-RSS figure cannot be told apart per piece of work: the kernel's
high-water mark covers the process's whole life, and memory a finished piece freed stays resident in
the C allocator's heap for the next piece to reuse without raising RSS. `bench latency` showed it: the
same 4086 MiB for all seven variants. So each piece runs in a child started with the *spawn* method
(a fork would share the parent's resident pages and heap), which

1. runs `setup(*args)` (e.g. builds the model and the batch) and `work` once, untimed and unmeasured:
   the first call's one-time allocations (torch's thread pool, kernel caches; a fixed +18 MiB for every
   variant, tiny or full size) are not what the work needs each time,
2. hands the heap that setup freed back to the kernel (glibc `malloc_trim(0)`, after a garbage
   collection): otherwise the work's tensors reuse it without raising RSS, and the work's own rise reads
   ~0 for every variant while the base varies by whatever setup left behind (a full-size run read
   2.9-4.1 GB bases for the same model and +18 MiB for every variant's chunk),
3. resets the kernel's high-water mark to its current RSS (`/proc/self/clear_refs` "5", Linux >= 4.0),
   so setup's transient peaks do not count, and notes that RSS as the base,
4. runs `work(state)` again and reads the high-water mark again.

The mark is read from VmHWM in /proc/self/status, not `getrusage(RUSAGE_SELF).ru_maxrss`: at exec the
kernel folds the spawning process's high-water mark into ru_maxrss (signal->maxrss), so a child of a
4 GB parent would report at least 4 GB; VmHWM is the child's own address space only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import multiprocessing
import resource
from collections.abc import Callable
from typing import Any


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def release_free_heap() -> bool:
    """Return freed heap pages to the kernel (glibc only; False where there is no malloc_trim)."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


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
    work(state)  # warm: one-time allocations (thread pools, kernel caches) are not the work's memory
    release_free_heap()
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
