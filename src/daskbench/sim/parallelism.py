"""How many shards ``trial.shards: auto`` gives a simulation: the rule, pure.

A shard pays for itself only when its own stepping is long next to what a tick
costs in calls and in the barrier between shards (0.4-0.5 ms a tick for 2 shards
on 2 workers, more with more shards, BENCHMARKS.md "Simulations"). A smaller
model steps faster with all its agents in the trial's own task, and a sweep of
such models runs one trial per worker thread at once instead of every trial
fighting over every worker.

The rule (README, "Simulations on Dask actors"):

1. estimate one tick's stepping on one core: the model's own
   :meth:`~daskbench.sim.Model.tick_cost`, or else ``COLUMNAR_AGENT_S`` per agent
   of a columnar population plus ``OBJECT_AGENT_S`` per plain-object agent;
2. give each shard at least ``SHARD_TICK_S`` of that:
   ``shards = min(workers, agents, floor(estimate / SHARD_TICK_S))``;
3. one shard (a small model, or one eligible worker) runs locally, in the
   trial's own task: no actors, no barrier across the network.

No Dask here; :mod:`daskbench.sim.run` applies the rule.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

from .errors import SimulationError
from .model import Agent, Model
from .shard import Layout

#: seconds of stepping per agent and tick, on one core, when the model gives no estimate:
#: a columnar agent (NumPy; Boltzmann measures ~10 ns, the epidemic ~30-60 ns) and a
#: plain-object agent (Python; the market's generators measure ~5-10 us)
COLUMNAR_AGENT_S = 50e-9
OBJECT_AGENT_S = 10e-6
#: the least stepping per tick a shard must hold to pay for its calls and barrier
SHARD_TICK_S = 0.025

AUTO = "auto"


def estimate_tick_s(model: Model, layout: Layout) -> float:
    """Seconds one tick of ``model`` steps on one core: its own ``tick_cost()`` or the default."""
    own = model.tick_cost()
    if own is not None:
        ok = isinstance(own, numbers.Real) and not isinstance(own, bool) and math.isfinite(own) and own >= 0
        if not ok:
            raise SimulationError(
                f"{type(model).__name__}.tick_cost() returned {own!r}; return seconds per tick (a number >= 0) or None"
            )
        return float(own)
    total = 0.0
    for i, name in enumerate(layout.names):
        size = layout.offsets[i + 1] - layout.offsets[i]
        per = OBJECT_AGENT_S if issubclass(model.populations[name], Agent) else COLUMNAR_AGENT_S
        total += size * per
    return total


def auto_shards(tick_s: float, n_agents: int, workers: int) -> int:
    """Shards for ``auto``: 1 means run locally, in the trial's own task."""
    if workers < 2 or n_agents < 2:
        return 1
    return max(1, min(int(workers), int(n_agents), int(tick_s / SHARD_TICK_S + 1e-9)))


def worth_asking(tick_s: float) -> bool:
    """Could ``auto`` shard this model on some cluster? (If not, no need to count the workers.)"""
    return auto_shards(tick_s, 2, 2) == 2


def check_shards(shards: Optional[object], n_agents: int) -> None:
    """A shard count larger than the model's agents is an error (``auto`` and null never are)."""
    if isinstance(shards, numbers.Integral) and not isinstance(shards, bool) and int(shards) > n_agents:
        raise SimulationError(
            f"shards={shards} is more than the model's {n_agents} agents; use at most {n_agents} shards, or auto"
        )
