"""Models used only by benchmarks/bench_sim.py.

``Idle``: agents that are due every tick and do nothing, so a tick costs only
what the engine itself adds (the coordinator's call per shard, the barrier, the
reporters): the tick overhead. ``IdleDelayed`` and ``BoltzmannDelayed`` declare a
message delay of 4 ticks, so they can run with ``clock.lookahead`` 1 to 4.
"""

from __future__ import annotations

from typing import Mapping

from daskbench import sim
from daskbench.experiments.boltzmann import Boltzmann


class Idle(sim.Model):
    """``n_agents`` agents of the base :class:`daskbench.sim.Population`: due every tick, no work."""

    populations = {"idle": sim.Population}

    def __init__(self, n_agents: int = 1000):
        self.n_agents = int(n_agents)

    def sizes(self) -> Mapping[str, int]:
        return {"idle": self.n_agents}


class IdleDelayed(Idle):
    """``Idle`` whose (absent) messages would take 4 ticks: runs with ``clock.lookahead`` up to 4."""

    message_delay = 4


class BoltzmannDelayed(Boltzmann):
    """Boltzmann whose units of wealth take 4 ticks to arrive: runs with ``clock.lookahead`` up to 4."""

    message_delay = 4
