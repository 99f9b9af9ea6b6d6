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
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from ..errors import ConfigError
from ..sweep.plan import Axis

#: ``trial.*`` keys whose every swept value is checked; ``params`` axes are checked by
#: name only (their values are the model's business, and a long axis would be slow)
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


def is_simulation(fn: Any) -> bool:
    """``fn`` is the simulation trial (checked by name first: no import for other trials)."""
    if getattr(fn, "__module__", None) != "daskbench.sim.run" or getattr(fn, "__name__", None) != "trial":
        return False
    from ..sim.run import trial  # plain Python and NumPy: no Dask

    return fn is trial


def check_simulation(fn: Any, trials: Mapping[Any, Optional[Dict[str, Any]]], axes: Sequence[Axis]) -> None:
    """Raise a ConfigError naming the first bad simulation setting among the planned trials.

    ``trials``: each group combination's ``trial`` resolved with every axis at its first
    value (None where only the trial's own process can resolve it).
    """
    if not is_simulation(fn):
        return
    for trial in trials.values():
        if trial is None:
            continue
        _check(trial, None)
        for a in axes:
            parts = a.key.split(".")
            if a.is_group or parts[0] != "trial" or len(parts) < 2:
                continue
            if parts[1] in _SETTINGS:
                values = _distinct(a)
            elif parts[1] == "params":
                values = _distinct(a)[:1]
            else:
                continue
            for v in values:
                if isinstance(v, str) and "${" in v:
                    continue  # an interpolation: resolved in the trial's own process
                t = copy.deepcopy(trial)
                _set(t, parts[1:], v)
                _check(t, a.key)


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
