"""The trials of one long axis of values, built a slice at a time, where they are needed.

A sweep over one axis (``trial.x=range(0,1000000)``, replicates or not) is the long
sweep of short trials, where the driver's cost per trial is the sweep's cost: its
trials were each built (a dict, a tuple) and hashed on the driver, then pickled to
a worker that took them apart again. :class:`AxisTrials` is the recipe of those
trials, a few strings and the axis's values (a ``range`` holds none); a
:class:`TrialSlice` is a chunk of them that the driver sends as the recipe of its
slice (:meth:`TrialSlice.packed`), so the worker builds and hashes its own trials
and the driver builds one only when it must look at it (a failure, a dead worker,
the slowest trials of the summary).

Built the same way on both sides: :meth:`AxisTrials.trials` is what
:meth:`daskbench.sweep.plan.SweepPlan.__iter__` yields for such a sweep, and the
ids are :class:`~daskbench.sweep.identity.Hasher`'s. Pure: no Dask, no files; a
worker unpickling a chunk imports it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, overload

from .identity import SEED_KEY, encode
from .trial import Trial


@dataclass(frozen=True)
class AxisTrials:
    """The trials of one axis of values ``key``: point ``j`` is ``{key: values[j]}``, run
    once per replicate ``r`` with ``seeds[r]`` (spawned, when ``inject``; else every
    trial's seed is ``fixed``). Trial ``i`` is point ``i // R``'s replicate ``i % R``.
    ``heads[r]`` is the hashed text around a value (before, after) for replicate ``r``."""

    key: str
    values: Sequence[Any]
    heads: Tuple[Tuple[str, str], ...]
    seeds: Tuple[Optional[int], ...]
    fixed: Optional[int]
    inject: bool

    def __len__(self) -> int:
        return len(self.values) * len(self.seeds)

    def part(self, start: int, stop: int) -> Tuple[AxisTrials, int, int]:
        """The recipe of trials ``start:stop`` only (the points they hold), and where they
        start and stop in it: what a worker is sent for a chunk."""
        reps = len(self.seeds)
        p0, p1 = start // reps, -(-stop // reps)
        sub = AxisTrials(self.key, self.values[p0:p1], self.heads, self.seeds, self.fixed, self.inject)
        return sub, start - p0 * reps, stop - p0 * reps

    def _points(self, start: int, stop: int) -> Tuple[Sequence[Any], List[List[str]], int]:
        """The values of the points trials ``start:stop`` lie in, their ids per replicate
        (``ids[r][j]``), and where trial ``start`` lies among those points' trials."""
        reps, sha = len(self.seeds), hashlib.sha256
        p0, p1 = start // reps, -(-stop // reps)
        vals = self.values[p0:p1]
        # a range's values are ints, whose JSON is their str(); anything else as encode() writes it
        texts = list(map(str if isinstance(vals, range) else encode, vals))
        # Hasher.__call__'s text and hash (digest()[:8].hex() is hexdigest()[:16])
        ids = [[sha((lead + t + after).encode()).digest()[:8].hex() for t in texts] for lead, after in self.heads]
        return vals, ids, start - p0 * reps

    def trials(self, start: int, stop: int) -> List[Trial]:
        """Trials ``start:stop``, each as the sweep yields it."""
        vals, ids, first = self._points(start, stop)
        reps, key, new = len(self.seeds), self.key, tuple.__new__
        if not self.inject:
            fixed = self.fixed
            out = [new(Trial, (i, {key: v}, (), fixed, 0)) for i, v in zip(ids[0], vals)]
        elif reps == 1:
            seed = self.seeds[0]
            out = [new(Trial, (i, {key: v, SEED_KEY: seed}, (), seed, 0)) for i, v in zip(ids[0], vals)]
        else:
            seeds = self.seeds
            out = [
                new(Trial, (ids[r][j], {key: v, SEED_KEY: seeds[r]}, (), seeds[r], r))
                for j, v in enumerate(vals)
                for r in range(reps)
            ]
        return out[first : first + stop - start] if (first or len(out) != stop - start) else out

    def columns(self, start: int, stop: int) -> SliceColumns:
        """Trials ``start:stop`` as columns (their ids, swept values, seeds, replicates), the
        same as :meth:`trials` gives: what a worker's fast loop reads, no object per trial."""
        vals, ids, first = self._points(start, stop)
        reps, key, n = len(self.seeds), self.key, len(vals)
        if not self.inject:
            cols = SliceColumns(ids[0], {key: list(vals)}, [self.fixed] * n, [0] * n)
        elif reps == 1:
            seeds = [self.seeds[0]] * n
            cols = SliceColumns(ids[0], {key: list(vals), SEED_KEY: seeds}, seeds, [0] * n)
        else:  # point j's replicates in turn
            seeds = list(self.seeds) * n
            flat = [ids[r][j] for j in range(n) for r in range(reps)]
            cols = SliceColumns(
                flat, {key: [v for v in vals for _ in range(reps)], SEED_KEY: seeds}, seeds, list(range(reps)) * n
            )
        return cols.cut(first, first + stop - start) if (first or len(cols) != stop - start) else cols


@dataclass(frozen=True)
class SliceColumns(Sequence[Trial]):
    """Trials of a recipe as columns: ``ids[i]``, ``params[key][i]`` (the swept values,
    and the seed as ``trial.seed`` where it is injected), ``seeds[i]``, ``replicates[i]``.
    Indexing or iterating gives the :class:`Trial` objects, each built when asked for."""

    ids: List[str]
    params: Dict[str, List[Any]]
    seeds: List[Optional[int]]
    replicates: List[int]

    def __len__(self) -> int:
        return len(self.ids)

    def cut(self, start: int, stop: int) -> SliceColumns:
        """Rows ``start:stop`` only."""
        return SliceColumns(
            self.ids[start:stop],
            {k: col[start:stop] for k, col in self.params.items()},
            self.seeds[start:stop],
            self.replicates[start:stop],
        )

    def __iter__(self) -> Iterator[Trial]:
        new, keys = tuple.__new__, list(self.params)
        cols = [self.params[k] for k in keys]
        for row in zip(self.ids, self.seeds, self.replicates, *cols):
            yield new(Trial, (row[0], dict(zip(keys, row[3:])), (), row[1], row[2]))

    @overload
    def __getitem__(self, i: int) -> Trial: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Trial]: ...

    def __getitem__(self, i: int | slice) -> Trial | Sequence[Trial]:
        if isinstance(i, slice):
            return list(self)[i]
        params = {k: col[i] for k, col in self.params.items()}
        return Trial(self.ids[i], params, (), self.seeds[i], self.replicates[i])


class TrialSlice(Sequence[Trial]):
    """Trials ``start:stop`` of an :class:`AxisTrials`, built only when read: a chunk the
    driver sends as a recipe and looks into only on its slow paths."""

    def __init__(self, recipe: AxisTrials, start: int, stop: int) -> None:
        self.recipe, self.start, self.stop = recipe, start, stop
        self._trials: Optional[List[Trial]] = None

    def __len__(self) -> int:
        return self.stop - self.start

    def _all(self) -> List[Trial]:
        if self._trials is None:
            self._trials = self.recipe.trials(self.start, self.stop)
        return self._trials

    def __iter__(self) -> Iterator[Trial]:
        return iter(self._all())

    @overload
    def __getitem__(self, i: int) -> Trial: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Trial]: ...

    def __getitem__(self, i: int | slice) -> Trial | Sequence[Trial]:
        if isinstance(i, slice) or self._trials is not None:
            return self._all()[i]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        at = self.start + (i % n)
        return self.recipe.trials(at, at + 1)[0]  # one trial: a summary's slowest need no more

    def packed(self) -> Tuple[AxisTrials, int, int]:
        """What a worker is sent to build these trials itself (:meth:`AxisTrials.part`)."""
        return self.recipe.part(self.start, self.stop)
