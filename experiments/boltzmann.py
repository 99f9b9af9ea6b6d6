"""The Boltzmann wealth model, as Mesa's introductory tutorial defines it.

Every agent starts with one unit of wealth. Each step, every agent that has
wealth gives one unit to an agent chosen uniformly at random among all agents
(itself included, as in the tutorial's ``self.random.choice(self.model.agents)``).
The model reports the Gini coefficient of wealth with the tutorial's formula.

One difference in scheduling, on purpose: Mesa activates agents one after the
other in random order (``shuffle_do``), so a unit received early in a step can
be given again in the same step. Here all agents act at once on the wealth they
hold at the start of the tick (the units given travel as messages and arrive
before the next tick), which is what lets the agents be split over shards. The
Gini at each tick is measured, like the tutorial's DataCollector, at the start
of the step; both converge to the same exponential (Boltzmann-Gibbs)
distribution: ``benchmarks/bench_sim.py`` runs the two side by side.

    python -m daskbench +experiment=boltzmann trial.params.n_agents=100000 trial.ticks=100
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

import numpy as np

from daskbench import sim


def gini_from_histogram(hist: np.ndarray) -> float:
    """Mesa tutorial's Gini, ``1 + 1/n - 2 * sum(x_i * (n - i)) / (n * sum(x))`` over sorted
    wealth, computed from ``hist[w]`` = number of agents with wealth ``w``."""
    hist = np.asarray(hist, dtype=np.float64)
    n = hist.sum()
    w = np.arange(len(hist), dtype=np.float64)
    total = (w * hist).sum()
    if n == 0 or total == 0:
        return 0.0
    start = np.cumsum(hist) - hist  # first sorted position holding wealth w
    sum_i_x = (w * (hist * start + hist * (hist - 1) / 2)).sum()  # sum of i * x_(i), i from 0
    return float(1 + 1 / n - 2 * (n * total - sum_i_x) / (n * total))


class Wealth(sim.Population):
    """All agents of a shard: one wealth integer each."""

    def setup(self, rng: sim.AgentRandom) -> None:
        self.wealth = np.ones(self.n, dtype=np.int64)
        self.hist = np.bincount(self.wealth)

    def step(self, t: sim.Tick) -> None:
        coins = t.inbox("coin")
        if len(coins):
            self.wealth += coins.count()  # units given to these agents last tick
        self.hist = np.bincount(self.wealth)  # the state the tutorial's DataCollector sees
        rich = self.wealth > 0
        self.wealth -= rich  # one unit from each agent that has any
        givers = t.rng.subset(rich)  # their own random streams
        # units are only counted, never read in order: anonymous messages, half the bytes
        t.send(givers.integers(t.n_agents), src=None, kind="coin")

    def observe(self) -> Mapping[str, Any]:
        return {"wealth_hist": self.hist}

    def agent_report(self) -> Mapping[str, Any]:
        return {"wealth": self.wealth}


class Boltzmann(sim.Model):
    """``n_agents`` agents exchanging units of wealth."""

    populations = {"agent": Wealth}

    def __init__(self, n_agents: int = 100):
        self.n_agents = int(n_agents)

    def sizes(self) -> Mapping[str, int]:
        return {"agent": self.n_agents}

    def report(self, tick: int, totals: Mapping[str, Any]) -> Mapping[str, Any]:
        hist = totals["wealth_hist"]
        return {"gini": gini_from_histogram(hist), "max_wealth": int(len(hist) - 1),
                "wealth_total": int((np.arange(len(hist)) * hist).sum())}

    def summary(self, steps: List[Dict[str, Any]]) -> Mapping[str, Any]:
        tail = [s["gini"] for s in steps[len(steps) // 2:]]
        return {"gini_mean_2nd_half": float(np.mean(tail)) if tail else float("nan")}
