"""Models used only by benchmarks/bench_sim.py.

``Idle``: agents that are due every tick and do nothing, so a tick costs only
what the engine itself adds (the coordinator's call per shard, the barrier, the
reporters): the tick overhead.
"""

from __future__ import annotations

from typing import Mapping

from daskbench import sim


class Idle(sim.Model):
    """``n_agents`` agents of the base :class:`daskbench.sim.Population`: due every tick, no work."""

    populations = {"idle": sim.Population}

    def __init__(self, n_agents: int = 1000):
        self.n_agents = int(n_agents)

    def sizes(self) -> Mapping[str, int]:
        return {"idle": self.n_agents}
