"""How many trials go into one task: chunks sized from measured trial durations."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ..config.schema import RunnerConfig
from .spec import ChunkResult

#: the most trials in a chunk sent before any trial is measured: the chunk's time budget
#: (ChunkSizer.budget) stops long trials after the first; this bounds what is sent twice
FIRST_MAX = 256
#: chunks a thread that share a sweep's trials before any is measured: a small sweep goes
#: out whole as two tasks a thread (one running, one queued), not four, each task fewer is
#: ~1.5 ms of wall less on 2 cores (BENCHMARKS.md, 200 x 1 ms)
FIRST_PER_THREAD = 2
#: seconds a refill's round trip costs (fetch the results, send the next chunks: 20-30 ms
#: on a small machine): a refill takes the trials left when they make chunks no longer than
#: that, rather than leave them for another round trip (ChunkSizer.size)
ROUND_TRIP_S = 0.02
#: a chunk stops starting trials past this many times its target length (ChunkSizer.budget)
BUDGET_TARGETS = 2.0
#: seconds of work per worker thread that short tasks keep queued (ChunkSizer.depth)
QUEUE_S = 0.5
#: the most tasks in flight that deepening gives
MAX_DEEP = 256
#: seconds of trials below which a task costs about as much as Dask's own work for it (~2-3 ms
#: of scheduler and driver CPU a task on a small machine, BENCHMARKS.md section 5; ~7 ms of CPU
#: with the workers' loops and threads and their idle gap counted, section 1): the spread
#: cap never makes a chunk shorter, so the end of a sweep waits at most this long on its last one
MIN_TASK_S = 0.005
#: CPU one task costs the busier of the scheduler and the driver, each one thread: about
#: 1 ms of the scheduler's and 1.5-2 ms of the driver's on a small machine
#: (benchmarks/profile_scheduler.py); a large cluster's tasks are made long enough that
#: neither is more than half busy (ChunkSizer.target)
TASK_COST_S = 0.002


@dataclass
class ChunkSizer:
    """Chooses trials per task so one task lasts about ``target_s`` (EWMA of
    measured trial durations), longer on a large cluster (:meth:`target`);
    ``fixed`` (runner.chunk_size) overrides it."""

    fixed: Optional[int]
    target_s: float = RunnerConfig.target_chunk_seconds  # the shipped runner settings
    max_size: int = RunnerConfig.max_chunk_size
    mean_s: Optional[float] = None

    def observe(self, result: ChunkResult) -> None:
        """Take in the durations of a finished chunk's trials."""
        n = result.n
        if n:
            per = result.compute_s / n
            self.mean_s = per if self.mean_s is None else 0.7 * self.mean_s + 0.3 * per

    def target(self, threads: int) -> float:
        """Seconds one task should last with ``threads`` to keep busy: ``target_s``, or on
        a cluster of more than ``target_s / (2 TASK_COST_S)`` threads (125 at 0.5 s)
        ``2 x threads x TASK_COST_S``. ``threads`` tasks end every task length, so the
        scheduler and the driver then spend at most half their time on them, where one
        trial per task would saturate them: 10,000 threads of 1 s trials get tasks of 40
        trials (fewer towards the end of a sweep, the spread cap), not 10,000 tasks a
        second."""
        return max(self.target_s, 2 * threads * TASK_COST_S)

    def size(self, remaining: int, threads: int, slots: int = 0) -> int:
        """Trials for the next task, with ``remaining`` trials left, ``threads`` to keep busy,
        and ``slots`` more tasks this refill may send (this one included): chunks shrink
        towards the end of a sweep so every thread stays busy (the spread), but the last
        slots of a refill take what is left rather than leave a small tail for another
        round trip to the scheduler: before any trial is measured (chunks are small then),
        or when such a chunk lasts at most ``ROUND_TRIP_S``."""
        if self.fixed:
            return self.fixed
        spread = math.ceil(remaining / max(2 * threads, 1))  # keep every thread busy to the end
        fill = math.ceil(remaining / slots) if slots > 0 else 0  # ...in this refill, if it can hold them
        if self.mean_s is None:  # nothing measured yet: the time budget stops a chunk of long trials early
            return max(1, min(max(spread, fill), FIRST_MAX, self.max_size))
        per = max(self.mean_s, 1e-6)
        want = math.ceil(self.target(threads) / per)
        if fill * per > ROUND_TRIP_S:  # a long chunk at the end would keep one thread busy alone
            fill = 0
        floor = math.ceil(min(MIN_TASK_S, self.target_s) / per)  # ...in tasks that are worth one
        return max(1, min(want, self.max_size, max(spread, floor, fill)))

    def slots(self, free: int, sent: int, threads: int) -> int:
        """Slots to size the next chunk for (:meth:`size`), with ``free`` in flight and ``sent``
        tasks pending or in this refill: before any trial is measured, only the first
        ``FIRST_PER_THREAD`` tasks a thread share what is left, so a small sweep is sent as
        that many equal chunks; past them (a long sweep), each further slot as it comes."""
        if self.fixed or self.mean_s is not None:
            return free
        return max(1, min(free, FIRST_PER_THREAD * threads - sent))

    def budget(self, threads: int) -> Optional[float]:
        """Seconds after which a chunk starts no more trials and hands the rest back
        (``BUDGET_TARGETS`` task lengths; None with ``runner.chunk_size`` fixed). It lets
        the first chunks go out before any trial is measured: a chunk of long trials runs
        one and returns, as a chunk of one would; later, a chunk whose trials grew slower
        than measured does not hold its thread for long."""
        return None if self.fixed else BUDGET_TARGETS * self.target(threads)

    def depth(self, base: int, remaining: int, threads: int) -> int:
        """Tasks to keep in flight, ``base`` (4 per thread) or more: short tasks on a small
        cluster keep about ``QUEUE_S`` of work per thread queued, so that each refill (half
        of them: one graph update, one gather) serves many tasks, not a handful. At most
        ``MAX_DEEP`` tasks and no more trials than ``base`` full chunks; a large cluster's
        ``base`` is past both, so only small clusters with short tasks go deeper."""
        if self.mean_s is None:
            return base
        k = self.size(max(remaining, 1), threads)
        want = math.ceil(QUEUE_S * threads / max(k * self.mean_s, 1e-6))
        return max(base, min(want, MAX_DEEP, base * self.max_size // k))
