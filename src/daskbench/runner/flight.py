"""The tasks of one run in flight, and where the next chunks of trials come from.

Pure bookkeeping for :mod:`.driver`: no Dask call. A fresh sweep of one long axis
hands out slices of its recipe (:class:`~daskbench.sweep.batch.TrialSlice`), so the
driver builds and hashes none of its trials; any other sweep hands out the plan's
trials, skipping those already ok on disk (resume) and any repeated id.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Deque, Dict, Iterator, Optional, Sequence, Set

from distributed import as_completed

from ..observe.progress import Counts
from ..sweep.batch import AxisTrials, TrialSlice
from ..sweep.plan import Trial


@dataclass
class Flight:
    """The tasks of one run in flight, and where the next trials come from."""

    trials: Iterator[Trial]
    done: AbstractSet[str]  # ids already ok on disk (a compact results.index.TrialIndex)
    max_in_flight: int
    threads: int
    may_repeat: bool
    pending: Dict[Any, Sequence[Trial]] = field(default_factory=dict)  # future -> its trials
    seen: Set[str] = field(default_factory=set)
    processed: int = 0
    exhausted: bool = False
    refill: int = 1  # new chunks are submitted once this many slots are free
    base_in_flight: Optional[int] = None  # the usual depth, when daskbench may deepen it (ChunkSizer.depth)
    recipe: Optional[AxisTrials] = None  # a fresh sweep of one long axis: chunks sent as slices of it
    ac: Any = field(default_factory=lambda: as_completed([]))
    # the trials of chunks that stopped at their time budget before running them, in order
    returned: Deque[Sequence[Trial]] = field(default_factory=deque)
    n_returned: int = 0

    @property
    def drained(self) -> bool:
        """Whether every trial has been handed out: none left to take, none handed back."""
        return self.exhausted and not self.returned

    def remaining(self, total: int) -> int:
        """Trials still to hand out of a sweep of ``total`` (a guess on a resume: skipped ones count)."""
        return total - self.processed + self.n_returned

    def give_back(self, trials: Sequence[Trial]) -> None:
        """Trials a chunk did not run (it stopped at its time budget): handed out again first."""
        if len(trials):
            self.returned.append(trials)
            self.n_returned += len(trials)

    def take(self, size: int, counts: Counts) -> Sequence[Trial]:
        """The next chunk of up to ``size`` trials to run (empty: none left), the trials
        handed back first; the trials skipped on the way are counted in ``counts.skipped``."""
        if self.returned:
            head = self.returned.popleft()
            batch, rest = _split(head, size)
            if len(rest):
                self.returned.appendleft(rest)
            self.n_returned -= len(batch)
            return batch
        if self.recipe is not None:  # one long axis: a slice of it, its trials built by the worker
            stop = min(self.processed + size, len(self.recipe))
            start, self.processed = self.processed, stop
            self.exhausted = stop >= len(self.recipe)
            return TrialSlice(self.recipe, start, stop) if stop > start else []
        if not self.may_repeat and not self.done:  # a fresh sweep: nothing to skip, no check per trial
            batch = list(itertools.islice(self.trials, size))
            self.processed += len(batch)
            self.exhausted = len(batch) < size
            return batch
        batch = []
        for t in self.trials:
            self.processed += 1
            if t.trial_id in self.done or t.trial_id in self.seen:
                counts.skipped += 1
                continue
            if self.may_repeat:  # only then is a set of every id worth its memory
                self.seen.add(t.trial_id)
            batch.append(t)
            if len(batch) >= size:
                return batch
        self.exhausted = True
        return batch


def _split(trials: Sequence[Trial], size: int) -> tuple[Sequence[Trial], Sequence[Trial]]:
    """The first ``size`` trials and the rest; a recipe's slice stays two slices (no trial built)."""
    if isinstance(trials, TrialSlice):
        cut = min(trials.start + size, trials.stop)
        return TrialSlice(trials.recipe, trials.start, cut), TrialSlice(trials.recipe, cut, trials.stop)
    return trials[:size], trials[size:]


def unrun(batch: Sequence[Trial], ran: int) -> Sequence[Trial]:
    """The trials of ``batch`` after its first ``ran``: those a chunk stopped before."""
    return _split(batch, ran)[1]
