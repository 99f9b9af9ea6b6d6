"""Allocator and GIL settings for processes that host shards.

Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed
memory goes back to the OS. That setting also switches off glibc's adaptive
mmap threshold, so every NumPy temporary above 128 KiB is a fresh ``mmap``
whose pages are faulted in and zeroed again on each use: a columnar step over
a million agents ran about 3 times slower on a worker than in a plain process
here (benchmarks/bench_sim.py). A shard churns through same-sized temporaries
every tick, so its process keeps them: blocks below 64 MiB come from the heap,
and the heap is trimmed only past 256 MiB free at its top.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_done = False


def keep_temporaries(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Set glibc's thresholds for this process (once); False where there is no glibc."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        # the process's own symbols, libc's among them: find_library("c") runs `ldconfig -p`
        # in a child process, a fork of the worker on its first simulation trial
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 and libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok


#: seconds a thread may hold the GIL while another waits for it (Python's default: 5 ms)
SWITCH_INTERVAL_S = 0.0002


def hand_over_quickly(interval: float = SWITCH_INTERVAL_S) -> None:
    """Let a shard process's event loop take the GIL within ``interval`` of asking.

    A shard steps in the worker's actor thread while messages from other shards
    arrive on the worker's event loop thread. With Python's default switch
    interval the loop may wait 5 ms for the GIL before it can take a delivery,
    and the sending shard waits with it: several milliseconds per tick, the
    whole budget of a tick. Stepping is NumPy that mostly releases the GIL, so
    switching more often costs it little.
    """
    if sys.getswitchinterval() > interval:
        sys.setswitchinterval(interval)
