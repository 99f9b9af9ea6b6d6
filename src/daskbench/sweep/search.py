"""Adaptive search, pure: the study's settings, its search space, and the ask/tell book.

With ``sweep.search: optuna`` the points of a sweep are not fixed before the run:
each is asked from an Optuna study when a slot frees and its result is told as
soon as it arrives (:mod:`daskbench.runner.adaptive` pumps this; the study lives in
the results folder, :mod:`daskbench.results.study`). This module holds what needs
neither Dask nor files:

* :func:`settings` checks ``sweep.sampler``, ``budget``, ``objective``, ``direction``
  and ``pruner`` where the config enters;
* :func:`space` maps the sweep's axes to Optuna distributions the way Hydra's optuna
  sweeper reads the same grammar: ``interval(lo,hi)`` is a float range,
  ``int(interval(lo,hi))`` an integer range (both bounds included),
  ``tag(log, interval(...))`` the same on a log scale, ``range(a,b,s)`` of whole
  numbers an integer range with that step, and a list or ``choice(...)`` a
  categorical choice;
* :class:`Book` keeps the ask/tell bookkeeping: which trials (replicates) belong to
  which asked point, and what to tell when the last of them arrives. With
  ``sweep.replicates: R`` an asked point runs R times and the value told is the
  mean of the R objectives; a point with a failed replicate is told failed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ..errors import SweepError
from .axes import Axis

if TYPE_CHECKING:  # Optuna is imported only by a search (it is an optional extra)
    from optuna.distributions import BaseDistribution

#: the Optuna a search needs; `pip install 'daskbench[optuna]'` brings it
OPTUNA_MAJOR = 4

SEARCHES = ("none", "optuna")
SAMPLERS = ("tpe", "cmaes", "gp", "random", "qmc", "nsga2")
PRUNERS = ("none", "median", "hyperband", "successive_halving")
DIRECTIONS = ("minimize", "maximize")

#: the Optuna trial user attribute holding the trial ids of an asked point
TRIAL_IDS_ATTR = "daskbench.trial_ids"


@dataclass(frozen=True)
class Search:
    """The checked settings of an adaptive search."""

    sampler: str
    budget: int
    objectives: Tuple[str, ...]
    directions: Tuple[str, ...]
    pruner: str = "none"
    seed: int = 0

    @property
    def multi(self) -> bool:
        """Several objectives: the study has a Pareto front, not one best trial."""
        return len(self.objectives) > 1


def _names(value: Any, key: str) -> Tuple[str, ...]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or any(not isinstance(v, str) or not v.strip() for v in items):
        raise SweepError(f"sweep.{key}={value!r}: give a metric name or a list of them, e.g. sweep.{key}=cost")
    return tuple(str(v).strip() for v in items)


def settings(
    search: str, sampler: str, budget: Any, objective: Any, direction: Any, pruner: str, seed: int, design: str
) -> Optional[Search]:
    """The search settings from the ``sweep`` section, or None without ``sweep.search``."""
    if search not in SEARCHES:
        raise SweepError(f"sweep.search={search!r} is unknown; use {' or '.join(SEARCHES)}")
    if search == "none":
        return None
    if sampler not in SAMPLERS:
        raise SweepError(f"sweep.sampler={sampler!r} is not a sampler; use one of {', '.join(SAMPLERS)}")
    if pruner not in PRUNERS:
        raise SweepError(f"sweep.pruner={pruner!r} is not a pruner; use one of {', '.join(PRUNERS)}")
    if budget is None:
        raise SweepError("sweep.search=optuna needs sweep.budget=N: how many points to try in all")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise SweepError(f"sweep.budget={budget!r}: give a whole number >= 1 (the Optuna trials to run)")
    if objective is None:
        raise SweepError("sweep.search=optuna needs sweep.objective=METRIC: the metric the trials return to optimise")
    objectives = _names(objective, "objective")
    directions = _names(direction, "direction")
    for d in directions:
        if d not in DIRECTIONS:
            raise SweepError(f"sweep.direction={d!r}: use minimize or maximize")
    if len(directions) == 1 and len(objectives) > 1:
        directions = directions * len(objectives)  # one direction for all of them
    if len(directions) != len(objectives):
        raise SweepError(
            f"sweep.direction has {len(directions)} entries for {len(objectives)} objectives "
            f"({', '.join(objectives)}); give one direction, or one per objective"
        )
    if len(set(objectives)) != len(objectives):
        raise SweepError(f"sweep.objective names a metric twice: {list(objectives)}")
    if pruner != "none" and len(objectives) > 1:
        raise SweepError(
            f"sweep.pruner={pruner} prunes on one objective; Optuna cannot prune a "
            f"multi-objective study: set sweep.pruner=none"
        )
    if design != "grid":
        raise SweepError(f"sweep.design={design} and sweep.search=optuna both choose the points; use one of them")
    return Search(sampler, budget, objectives, directions, pruner, int(seed))


def from_config(sweep: Any, axes: Sequence[Axis], seed: int) -> Optional[Search]:
    """The search of a ``sweep`` section (a SweepConfig), its space checked against ``axes``."""
    found = settings(
        str(sweep.search),
        str(sweep.sampler),
        sweep.budget,
        sweep.objective,
        sweep.direction,
        str(sweep.pruner),
        seed,
        str(sweep.design),
    )
    if found is not None:
        require_optuna()
        space(axes)  # every axis must map to a distribution, and one at least must be tunable
        if found.sampler == "gp" and importlib.util.find_spec("torch") is None:
            raise SweepError(
                "sweep.sampler=gp needs PyTorch (Optuna's GPSampler uses it): pip install torch, "
                "or choose sweep.sampler=tpe"
            )
    return found


def require_optuna() -> None:
    """Fail with the fix when Optuna is missing or older than the search needs (an
    environment set up for Hydra's optuna sweeper holds Optuna 2)."""
    from importlib import metadata

    try:
        version = metadata.version("optuna")
    except metadata.PackageNotFoundError:
        raise SweepError(
            "sweep.search=optuna needs Optuna, which is not installed: pip install 'daskbench[optuna]'"
        ) from None
    major = version.split(".")[0]
    if not major.isdigit() or int(major) < OPTUNA_MAJOR:
        raise SweepError(
            f"sweep.search=optuna needs Optuna >= {OPTUNA_MAJOR}, this environment has {version} "
            "(Hydra's optuna sweeper pins Optuna < 3): use an environment of its own for the search, "
            "pip install 'daskbench[optuna]'"
        )


# -- the search space ----------------------------------------------------------
def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def distribution(axis: Axis) -> BaseDistribution:
    """The Optuna distribution of one axis (see the module's docstring)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if axis.interval is not None:
        lo, hi = axis.interval
        if axis.log and lo <= 0:
            raise SweepError(f"axis {axis.key!r}: tag(log, interval({lo},{hi})) needs lo > 0")
        if axis.integer:
            return IntDistribution(int(lo), int(hi), log=axis.log)
        return FloatDistribution(lo, hi, log=axis.log)
    values = list(axis.values or ())
    if axis.ranged and len(values) > 1 and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return IntDistribution(min(values), max(values), step=abs(values[1] - values[0]))
    bad = [v for v in values if not _scalar(v)]
    if bad:
        raise SweepError(
            f"axis {axis.key!r}: adaptive search chooses among numbers, strings or booleans, "
            f"not {type(bad[0]).__name__} {bad[0]!r}; sweep such values with sweep.search=none"
        )
    return CategoricalDistribution(values)


def space(axes: Sequence[Axis]) -> Dict[str, BaseDistribution]:
    """The search space: one distribution per swept axis (config groups included)."""
    out = {a.key: distribution(a) for a in axes}
    if not out:
        raise SweepError(
            "sweep.search=optuna has nothing to tune: give at least one axis with several values, "
            "e.g. 'trial.x=interval(0,1)' or trial.n=1,2,4"
        )
    return out


def space_json(dists: Mapping[str, BaseDistribution]) -> Dict[str, str]:
    """The space as text, as it is stored with the study."""
    from optuna.distributions import distribution_to_json

    return {k: distribution_to_json(d) for k, d in dists.items()}


def space_changes(stored: Mapping[str, str], current: Mapping[str, str]) -> List[str]:
    """What differs between a stored search space and this run's, one phrase each."""
    from optuna.distributions import json_to_distribution

    changes = [f"{k} was added" for k in current if k not in stored]
    changes += [f"{k} was removed" for k in stored if k not in current]
    for k in current:
        if k in stored and json_to_distribution(stored[k]) != json_to_distribution(current[k]):
            changes.append(f"{k} was {_show(stored[k])}, now {_show(current[k])}")
    return changes


def _show(text: str) -> str:
    d = json.loads(text)
    attrs = d.get("attributes", {})
    return f"{d.get('name', '?').replace('Distribution', '')}({', '.join(f'{k}={v}' for k, v in attrs.items())})"


# -- ask/tell bookkeeping ----------------------------------------------------------
@dataclass(frozen=True)
class Tell:
    """What to tell the study about one asked trial: ``state`` is complete, fail or pruned."""

    number: int
    state: str
    values: Optional[Tuple[float, ...]] = None
    step: Optional[int] = None


@dataclass
class _Point:
    """An asked point: its replicates' trial ids, the Optuna trials waiting on it, what came back."""

    ids: Tuple[str, ...]
    numbers: List[int]
    values: Dict[str, Tuple[float, ...]] = field(default_factory=dict)
    failed: bool = False
    pruned_step: Optional[int] = None
    waiting: Set[str] = field(default_factory=set)


def objective_values(metrics: Mapping[str, Any], objectives: Sequence[str]) -> Tuple[float, ...]:
    """The objectives from a trial's metrics; a SweepError naming a missing or non-numeric one."""
    out = []
    for name in objectives:
        if name not in metrics or metrics[name] is None:
            shown = ", ".join(sorted(metrics)) or "no metric"
            raise SweepError(
                f"sweep.objective={name!r}: the trial returned no metric {name!r} "
                f"(it returned: {shown}); set sweep.objective to a metric it returns"
            )
        v = metrics[name]
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise SweepError(f"sweep.objective={name!r}: the trial returned {name}={v!r}, not a finite number")
        out.append(float(v))
    return tuple(out)


class Book:
    """Which trials belong to which asked point; what to tell when a point is complete.

    Two asks of the same point (a sampler may propose it again) share one run: trial
    ids are content hashes, so the table holds each once, and both Optuna trials are
    told its value. ``known`` holds the objectives of trials already ok on disk.
    """

    def __init__(self, known: Optional[Dict[str, Tuple[float, ...]]] = None):
        self.known: Dict[str, Tuple[float, ...]] = dict(known or {})
        self._points: Dict[Tuple[str, ...], _Point] = {}  # points with replicates still running
        self._by_trial: Dict[str, _Point] = {}
        self.number_of: Dict[str, int] = {}  # trial id -> the Optuna trial that ran it

    def in_flight(self) -> int:
        """Points asked whose replicates have not all come back."""
        return len(self._points)

    def asked(self, number: int, ids: Sequence[str]) -> Tuple[List[str], Optional[Tell]]:
        """Optuna trial ``number`` asks for the point whose replicates are ``ids``: the ids
        to run now, and a tell if nothing needs to run (every replicate is known)."""
        key = tuple(ids)
        point = self._points.get(key)
        if point is not None:  # the same point is running: wait for it
            point.numbers.append(number)
            return [], None
        point = _Point(key, [number])
        point.values = {i: self.known[i] for i in key if i in self.known}
        point.waiting = {i for i in key if i not in self.known}
        if not point.waiting:
            return [], self._tells(point)[0]
        self._points[key] = point
        for i in point.waiting:
            self._by_trial[i] = point
            self.number_of[i] = number
        return sorted(point.waiting, key=key.index), None

    def ended(
        self, trial_id: str, values: Optional[Tuple[float, ...]], pruned_step: Optional[int] = None
    ) -> List[Tell]:
        """A replicate came back: its objectives (None: it failed, or was pruned at ``pruned_step``).
        The tells due, once the point's last replicate is in."""
        point = self._by_trial.pop(trial_id, None)
        if point is None:
            return []
        point.waiting.discard(trial_id)
        if values is not None:
            point.values[trial_id] = values
            self.known[trial_id] = values
        elif pruned_step is not None:
            point.pruned_step = pruned_step if point.pruned_step is None else max(point.pruned_step, pruned_step)
        else:
            point.failed = True
        if point.waiting:
            return []
        del self._points[point.ids]
        return self._tells(point)

    def _tells(self, point: _Point) -> List[Tell]:
        if point.failed:
            return [Tell(n, "fail") for n in point.numbers]
        if point.pruned_step is not None:
            return [Tell(n, "pruned", step=point.pruned_step) for n in point.numbers]
        vals = [point.values[i] for i in point.ids]
        mean = tuple(sum(col) / len(col) for col in zip(*vals))  # replicates -> the mean is told
        return [Tell(n, "complete", mean) for n in point.numbers]

    def running_ids(self, number: int) -> List[str]:
        """The trials still running of the point Optuna trial ``number`` asked for."""
        return sorted({i for i, p in self._by_trial.items() if number in p.numbers})

    def abandon(self) -> List[int]:
        """The Optuna trials of points still running (the run stops): left for the next run."""
        numbers = [n for p in self._points.values() for n in p.numbers]
        self._points.clear()
        self._by_trial.clear()
        return numbers
