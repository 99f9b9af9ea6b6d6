"""Simulation settings checked when the sweep is planned, before a cluster starts.

A simulation experiment's ``trial._target_`` is :func:`daskbench.sim.trial`; a bad
``allocation``, clock key, ``shards`` or model would otherwise fail on a worker,
once per trial. The rules are the simulation core's own (:func:`daskbench.sim.run.check`,
which imports no Dask); this module only feeds it the planned trials' settings:
each group combination's resolved ``trial``, and every value of each swept setting.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from ..errors import ConfigError
from ..sweep.plan import Axis

#: ``trial.*`` keys whose every swept value is checked; of a ``params`` axis, the first
#: ``PARAMS_CHECKED`` distinct values are (their names, and that the largest fixed shard
#: count fits each one's agents: that builds the model, so a long axis is not gone through)
_SETTINGS = (
    "model",
    "ticks",
    "shards",
    "allocation",
    "clock",
    "checkpoint_every",
    "agent_report_every",
    "max_restarts",
)
_KEY = re.compile(r"^(\w+)(\.\w+)?=")
PARAMS_CHECKED = 64


def is_simulation(fn: Any) -> bool:
    """``fn`` is the simulation trial (checked by name first: no import for other trials)."""
    if getattr(fn, "__module__", None) != "daskbench.sim.run" or getattr(fn, "__name__", None) != "trial":
        return False
    from ..sim.run import trial  # plain Python and NumPy: no Dask

    return fn is trial


def check_simulation(
    fn: Any,
    trials: Mapping[Any, Optional[Dict[str, Any]]],
    axes: Sequence[Axis],
    zip_groups: Sequence[Sequence[str]] = (),
) -> None:
    """Raise a ConfigError naming the first bad simulation setting among the planned trials.

    ``trials``: each group combination's ``trial`` resolved with every axis at its first
    value (None where only the trial's own process can resolve it); ``zip_groups``:
    ``sweep.zip`` (zipped keys are checked value by value together, not crossed).
    """
    if not is_simulation(fn):
        return
    for trial in trials.values():
        if trial is None:
            continue
        _check(trial, None)
        most = _most_shards(trial, axes)
        for where, variant in _variants(axes, zip_groups):
            if any(isinstance(v, str) and "${" in v for v in variant.values()):
                continue  # an interpolation: resolved in the trial's own process
            t = copy.deepcopy(trial)
            for key, v in variant.items():
                _set(t, key.split(".")[1:], v)
            if most is not None and "trial.shards" not in variant and any(".params." in k for k in variant):
                t["shards"] = most  # a crossed shard count meets every params value
            _check(t, where)


def _variants(axes: Sequence[Axis], zip_groups: Sequence[Sequence[str]]) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """(the swept key(s) to name, {key: value}) for each value to check: every value of a
    setting's axis, the first ``PARAMS_CHECKED`` of a ``params`` one, zipped keys together."""
    checked = {a.key: a for a in axes if _checked(a)}
    zipped = [[k for k in g if k in checked] for g in zip_groups]
    for group in (g for g in zipped if g):
        columns = [list(checked[k].values or ()) for k in group]
        n = min(map(len, columns))
        if any(".params." in k for k in group):
            n = min(n, PARAMS_CHECKED)
        for i in range(n):
            yield " and ".join(group), {k: column[i] for k, column in zip(group, columns)}
    in_zip = {k for g in zipped for k in g}
    for key, a in checked.items():
        if key in in_zip:
            continue
        values = _distinct(a)
        for v in values[:PARAMS_CHECKED] if ".params." in key else values:
            yield key, {key: v}


def _checked(a: Axis) -> bool:
    parts = a.key.split(".")
    if a.is_group or parts[0] != "trial" or len(parts) < 2:
        return False
    return parts[1] in _SETTINGS or parts[1] == "params"


def _most_shards(trial: Mapping[str, Any], axes: Sequence[Axis]) -> Optional[int]:
    """The largest whole shard count the trials ask for (the trial's own and a swept one)."""
    counts = [trial.get("shards")]
    counts += [v for a in axes if a.key == "trial.shards" and not a.is_group for v in _distinct(a)]
    whole = [int(c) for c in counts if isinstance(c, int) and not isinstance(c, bool)]
    return max(whole) if whole else None


def _check(trial: Mapping[str, Any], swept: Optional[str]) -> None:
    from ..sim.errors import SimulationError
    from ..sim.run import check

    kwargs = {str(k): v for k, v in trial.items() if not str(k).startswith("_")}
    try:
        check(**kwargs)
    except SimulationError as exc:
        msg = str(exc)
        m = _KEY.match(msg)
        if m and m.group(1) in _SETTINGS:  # the core names settings as its own arguments
            msg = f"trial.{msg}"
        where = f" (a value of the swept key {swept})" if swept else ""
        raise ConfigError(f"{msg}{where}") from None


def _distinct(a: Axis) -> List[Any]:
    values: Iterable[Any] = a.values if a.values is not None else (a.interval or ())
    seen = set()
    out: List[Any] = []
    for v in values:
        if repr(v) not in seen:  # values may be mappings or lists: not hashable
            seen.add(repr(v))
            out.append(v)
    return out


def _set(tree: Dict[str, Any], parts: Sequence[str], value: Any) -> None:
    node = tree
    for p in parts[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = node[p] = {}
        node = child
    node[parts[-1]] = value
