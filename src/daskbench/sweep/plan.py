"""Pure sweep expansion: axes and settings in, trials out.

No Dask, no files, no Hydra composition. The axes come from :mod:`.axes`
(Hydra's sweep grammar); what a trial id hashes and how seeds are spawned live
in :mod:`.identity`. Trials are generated lazily, so a sweep of millions never
sits whole in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from ..errors import SweepError
from . import identity
from .axes import Axis, axis_from_override, axis_from_param, merge_axes, parse_override
from .batch import AxisTrials
from .identity import SEED_KEY, GroupKey, flatten, spawn_seed
from .lazy import Rows, product
from .search import Search
from .trial import Trial

# Re-exported: the sweep's public names are importable from here as before.
__all__ = [
    "DESIGNS",
    "SEED_KEY",
    "Axis",
    "SweepPlan",
    "Trial",
    "axis_from_override",
    "axis_from_param",
    "flatten",
    "merge_axes",
    "parse_override",
    "spawn_seed",
]

DESIGNS = ("grid", "random", "lhs", "sobol")

#: trials of one long axis built per batch (:meth:`SweepPlan.axis_trials`)
_BATCH = 1024


@dataclass
class SweepPlan:
    """Everything needed to enumerate an experiment's trials, without composing.

    ``bases`` maps each combination of swept config-group choices to the
    flattened content of its composed config (run keys removed); the trial id
    hashes that content with the trial's own values, so it is stable across runs
    and machines and only changes when what the trial computes could change.
    """

    name: str
    axes: List[Axis]
    bases: Dict[GroupKey, Dict[str, Any]]  # identity.content() of each group combination
    zip: List[List[str]] = field(default_factory=list)
    design: str = "grid"
    samples: Optional[int] = None
    replicates: int = 1
    root_seed: int = 0
    inject_seed: bool = False
    fixed_seed: Optional[int] = None
    search: Optional[Search] = None  # sweep.search=optuna: points are asked, not enumerated

    def __post_init__(self) -> None:
        self._check()
        swept = {a.key for a in self.axes if not a.is_group}
        if self.inject_seed:
            swept.add(SEED_KEY)
        # Base content without the swept keys, once per group combination, not per trial.
        self._base_items = {g: identity.base_items(flat, swept) for g, flat in self.bases.items()}
        # the base's part of each trial id, encoded once: a trial hashes only its own values
        self._hashers = {g: identity.Hasher(self.name, g, items) for g, items in self._base_items.items()}
        if self.inject_seed and self.search is None:
            # the first replicate's seed now, while a run's cluster starts: spawning it imports
            # numpy.random (~40 ms), which the first refill of the trials waited for
            spawn_seed(self.root_seed, 0)

    # -- validation ---------------------------------------------------------
    def _check(self) -> None:
        if self.design not in DESIGNS:
            raise SweepError(f"sweep.design={self.design!r} is not a design; use one of {', '.join(DESIGNS)}")
        if not isinstance(self.replicates, int) or self.replicates < 1:
            raise SweepError(f"sweep.replicates={self.replicates!r}: give an integer >= 1")
        keys = [a.key for a in self.axes]
        intervals = [a.key for a in self.axes if a.interval is not None]
        if self.design == "grid":
            if intervals and self.search is None:
                raise SweepError(
                    f"axis {intervals[0]!r} is an interval, which a grid cannot enumerate; "
                    "set sweep.design=random, lhs or sobol with sweep.samples=N, "
                    "or give discrete values (a,b,c or range(...))"
                )
        else:
            if not intervals:
                raise SweepError(
                    f"sweep.design={self.design} samples interval(lo,hi) axes but none is given; "
                    "add one, e.g. 'trial.x=interval(0,1)', or use sweep.design=grid"
                )
            if not isinstance(self.samples, int) or self.samples < 1:
                raise SweepError(
                    f"sweep.design={self.design} needs sweep.samples=N (a positive integer), got {self.samples!r}"
                )
        seen = set()
        for group in self.zip:
            if len(group) < 2:
                raise SweepError(f"sweep.zip entry {list(group)} needs at least two keys")
            lengths = {}
            for k in group:
                if k not in keys:
                    raise SweepError(
                        f"sweep.zip names {k!r}, which is not a swept key; swept keys: {', '.join(keys) or '(none)'}"
                    )
                if k in seen:
                    raise SweepError(f"sweep.zip names {k!r} twice")
                seen.add(k)
                ax = self._axis(k)
                if ax.values is None:
                    raise SweepError(f"sweep.zip cannot pair the interval axis {k!r}")
                lengths[k] = len(ax.values)
            if len(set(lengths.values())) > 1:
                desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
                raise SweepError(f"zipped axes must have the same number of values: {desc}")
        if self.replicates > 1 and SEED_KEY in keys:
            raise SweepError(f"both sweep.replicates and a swept {SEED_KEY} set the seeds; use one of them")

    def _axis(self, key: str) -> Axis:
        return next(a for a in self.axes if a.key == key)

    # -- enumeration --------------------------------------------------------
    def _units(self) -> List[Tuple[Tuple[Axis, ...], Rows]]:
        """Discrete dimensions to cross: single axes, or zipped groups as one (views
        over the axes' values, never copies: :mod:`.lazy`)."""
        zipped = {k for g in self.zip for k in g}
        units = []
        for group in self.zip:
            axes = tuple(self._axis(k) for k in group)
            units.append((axes, Rows([a.values or () for a in axes])))
        for a in self.axes:
            if a.values is not None and a.key not in zipped:
                units.append(((a,), Rows([a.values])))
        return units

    def _samples(self) -> Tuple[List[Axis], np.ndarray]:
        axes = [a for a in self.axes if a.interval is not None]
        if not axes:
            return [], np.empty((1, 0))
        from scipy.stats import qmc  # imported lazily: only sampled designs need it

        rng = identity.design_rng(self.root_seed)
        d, n = len(axes), int(self.samples or 0)
        if self.design == "random":
            u = rng.random((n, d))
        elif self.design == "lhs":
            u = qmc.LatinHypercube(d=d, rng=rng).random(n)
        else:
            sob = qmc.Sobol(d=d, scramble=True, rng=rng)
            m = math.ceil(math.log2(n)) if n > 1 else 0
            u = sob.random_base2(m)[:n]  # a prefix of a 2^m Sobol set keeps its balance best
        bounds = [a.interval for a in axes if a.interval is not None]
        lo = np.array([b[0] for b in bounds])
        hi = np.array([b[1] for b in bounds])
        return axes, lo + u * (hi - lo)

    def may_repeat(self) -> bool:
        """Whether two trials could share an id (an axis lists a value twice)."""
        for a in self.axes:
            if a.values is not None and not isinstance(a.values, range):  # a range never repeats
                reprs = [identity.encode(v) + type(v).__name__ for v in a.values]
                if len(set(reprs)) != len(reprs):
                    return True
        return False

    def __len__(self) -> int:
        if self.search is not None:  # the budget counts asked points, each run once per replicate
            return self.search.budget * self.replicates
        n = 1
        for _, vals in self._units():
            n *= len(vals)
        if self.design != "grid":
            n *= int(self.samples or 0)
        return n * self.replicates

    def __iter__(self) -> Iterator[Trial]:
        if self.search is not None:
            raise SweepError(
                "an adaptive search has no fixed trials to enumerate; its points are asked "
                "from the study (daskbench.runner.adaptive)"
            )
        seeds = [spawn_seed(self.root_seed, r) if self.inject_seed else None for r in range(self.replicates)]
        recipe = self.axis_trials()
        if recipe is not None:  # one long axis: built a batch at a time
            for start in range(0, len(recipe), _BATCH):
                yield from recipe.trials(start, min(start + _BATCH, len(recipe)))
            return
        hashers, fixed, new = self._hashers, self.fixed_seed, tuple.__new__  # the hot loop: no call it can spare
        if len(seeds) == 1 and not self.inject_seed:
            for gkey, params in self._points():
                yield new(Trial, (hashers[gkey](params), params, gkey, params.get(SEED_KEY, fixed), 0))
            return
        if self.inject_seed:  # each replicate's seed is the same for every point: hashed once
            seeded: Dict[GroupKey, List[identity.Hasher]] = {}
            for gkey, point in self._points():
                by_r = seeded.get(gkey) or seeded.setdefault(
                    gkey, [hashers[gkey].fixing({SEED_KEY: seed}) for seed in seeds]
                )
                ids = [h(point) for h in by_r]  # before the seed joins the point's values
                for r, seed in enumerate(seeds):
                    params = point if r == 0 else dict(point)
                    params[SEED_KEY] = seed
                    yield new(Trial, (ids[r], params, gkey, seed, r))
            return
        for gkey, point in self._points():
            hasher = hashers[gkey]
            for r, seed in enumerate(seeds):
                params = point if r == 0 else dict(point)
                seed = params.get(SEED_KEY, fixed)
                yield new(Trial, (hasher(params), params, gkey, seed, r))

    def axis_trials(self) -> Optional[AxisTrials]:
        """The recipe of the sweep's trials (:mod:`.batch`) when it is one axis of values
        (the long ``range()``), with replicates of spawned seeds or one run per point, and
        no swept ``trial.seed``: None for any other sweep."""
        if len(self.axes) != 1 or self.search is not None or () not in self._hashers:
            return None
        a = self.axes[0]
        if a.values is None or a.is_group or a.key == SEED_KEY or not (self.inject_seed or self.replicates == 1):
            return None
        base = self._hashers[()]
        if not self.inject_seed:
            return AxisTrials(a.key, a.values, (base.around(a.key),), (None,), self.fixed_seed, False)
        seeds = tuple(spawn_seed(self.root_seed, r) for r in range(self.replicates))
        heads = tuple(base.fixing({SEED_KEY: s}).around(a.key) for s in seeds)
        return AxisTrials(a.key, a.values, heads, seeds, self.fixed_seed, True)

    def _points(self) -> Iterator[Tuple[GroupKey, Dict[str, Any]]]:
        """Every point of the sweep: (group choices, swept values), each a dict of its own."""
        valued = [a for a in self.axes if a.values is not None]
        if len(self.axes) == 1 and valued and not valued[0].is_group:  # one axis of values: the long range()
            key, values = valued[0].key, valued[0].values
            assert values is not None
            for v in values:
                yield (), {key: v}
            return
        units = self._units()
        s_axes, s_values = self._samples()
        s_keys = [a.key for a in s_axes]
        for combo in product([vals for _, vals in units]):  # lazily: itertools.product copies each axis
            groups: List[Tuple[str, str]] = []
            params: Dict[str, Any] = {}
            for (axes, _), values in zip(units, combo):
                for a, v in zip(axes, values):
                    if a.is_group:
                        groups.append((a.key, str(v)))
                    else:
                        params[a.key] = v
            gkey = tuple(sorted(groups))
            for row in s_values:
                point = dict(params)
                for k, v in zip(s_keys, row):
                    point[k] = float(v)
                yield gkey, point

    def point_trials(self, gkey: GroupKey, point: Dict[str, Any]) -> List[Trial]:
        """The trials of one point: one per replicate, with their spawned seeds."""
        return [self._trial(gkey, point, r) for r in range(self.replicates)]

    def _trial(self, gkey: GroupKey, point: Dict[str, Any], r: int) -> Trial:
        params = dict(point)
        seed: Optional[int]
        if self.inject_seed:
            seed = spawn_seed(self.root_seed, r)
            params[SEED_KEY] = seed
        else:
            seed = params.get(SEED_KEY, self.fixed_seed)
        return Trial(self.trial_id(gkey, params), params, gkey, seed, r)

    def trial_id(self, gkey: GroupKey, params: Mapping[str, Any]) -> str:
        """Stable content hash of a trial (see :func:`identity.trial_id`)."""
        return self._hashers[gkey](params)

    def describe(self) -> str:
        """One line per axis, for dry runs and the start banner."""
        lines = [f"{a.key} = {a.expr}" for a in self.axes]
        if self.zip:
            lines.append("zip: " + "; ".join(" & ".join(g) for g in self.zip))
        if self.design != "grid":
            lines.append(f"design: {self.design}, {self.samples} samples")
        if self.replicates > 1:
            lines.append(f"replicates: {self.replicates}")
        if self.search is not None:
            s = self.search
            goal = ", ".join(f"{d} {o}" for o, d in zip(s.objectives, s.directions))
            lines.append(f"search: optuna, sampler {s.sampler}, budget {s.budget}, {goal}, pruner {s.pruner}")
        return "\n".join(lines)
