"""What the driver counts as rows land: trials per status, the slowest, the first errors.

A chunk that went as expected is counted from the summary its worker sent with it
(:class:`~daskbench.runner.spec.ChunkResult`), touching none of its rows; rows the
driver holds as dicts (written by the crash recovery, or by an adaptive search's
path) are counted one by one. Both give the same figures.
"""

from __future__ import annotations

import heapq
from typing import Any, Dict, List, Sequence, Tuple

from ..observe.progress import Counts
from ..results.row import Row, Status
from ..sweep.plan import SEED_KEY, Trial
from .spec import ChunkResult

#: the slowest ok trials and the first errors kept for the summary
KEEP = 5


class Tally:
    """Counts (into ``counts``), the ``KEEP`` slowest ok trials and the first ``KEEP`` errors."""

    def __init__(self, counts: Counts, inject_seed: bool):
        self.counts = counts
        self.inject_seed = inject_seed
        self.slowest: List[Tuple[float, str, Dict[str, Any]]] = []  # a heap: (duration_s, id, columns)
        self.errors: List[Tuple[str, str]] = []  # (trial id, error)

    def chunk(self, batch: Sequence[Trial], result: ChunkResult) -> None:
        """A chunk's trials, ``batch``, from its worker's summary."""
        c, got = self.counts, result.counts
        ok, timeout, pruned = got.get(Status.OK, 0), got.get(Status.TIMEOUT, 0), got.get(Status.PRUNED, 0)
        c.ok, c.timeout, c.pruned = c.ok + ok, c.timeout + timeout, c.pruned + pruned
        c.failed += result.n - ok - timeout - pruned
        for d, i in result.slowest:
            if self._slow_enough(d):  # checked first: reading batch[i] of a slice builds its trial
                self._keep_slow(d, batch[i])
        for i, error in result.errors:
            if len(self.errors) < KEEP:
                self.errors.append((batch[i].trial_id, error))

    def rows(self, batch: Sequence[Trial], rows: List[Row]) -> None:
        """Rows of ``batch``'s trials, each given its trial's swept columns."""
        by_id = {t.trial_id: t for t in batch}
        for row in rows:
            t = by_id[row["trial_id"]]
            row.update(self.columns(t))
            status = row.get("status")
            if status == Status.OK:
                self.counts.ok += 1
                self._keep_slow(row.get("duration_s") or 0.0, t)
            elif status == Status.TIMEOUT:
                self.counts.timeout += 1
            elif status == Status.PRUNED:
                self.counts.pruned += 1
            else:
                self.counts.failed += 1
                if len(self.errors) < KEEP:
                    self.errors.append((t.trial_id, str(row.get("error"))))

    def columns(self, t: Trial) -> Dict[str, Any]:
        """The trial's swept values as columns."""
        cols = t.columns()
        if self.inject_seed:
            cols.pop(SEED_KEY, None)  # spawned seeds live in the `seed` column
        return cols

    def _slow_enough(self, d: float) -> bool:
        """Whether a trial of ``d`` seconds is among the ``KEEP`` slowest so far."""
        return len(self.slowest) < KEEP or d > self.slowest[0][0]

    def _keep_slow(self, d: float, t: Trial) -> None:
        if not self._slow_enough(d):
            return
        entry = (d, t.trial_id, self.columns(t))
        if len(self.slowest) < KEEP:
            heapq.heappush(self.slowest, entry)
        else:
            heapq.heapreplace(self.slowest, entry)
