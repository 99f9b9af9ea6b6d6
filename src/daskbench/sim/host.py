"""Hosts hold the shards of one simulation and run one tick on all of them.

:class:`LocalHost` keeps every shard in this process (tests, notebooks, a
trial called outside Dask). :class:`daskbench.sim.actor.ActorHost` keeps each
shard in a Dask actor on a worker. Both give the coordinator the same calls;
``run(start, until, clock, lookahead)`` runs a window of ticks (see
:mod:`daskbench.sim.window`) and returns, per shard, its report of every tick it
ran, once every message sent in the window has been delivered.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from .clock import Clock
from .model import Model
from .shard import Layout, Shard, StepReport


class Host(Protocol):
    def start(self, snapshots: Optional[Sequence[bytes]]) -> None: ...
    def run(self, start: int, until: int, clock: Clock, lookahead: int = 1) -> List[List[StepReport]]: ...
    def snapshot(self) -> List[bytes]: ...
    def agent_report(self) -> List[Tuple[str, np.ndarray, Dict[str, np.ndarray]]]: ...
    def describe(self) -> Dict[str, Any]: ...
    def close(self, lost: bool = False) -> None: ...


class LocalHost:
    """All shards in this process, stepped one after the other."""

    def __init__(self, model: Model, assign: np.ndarray, layout: Layout, seed: int, tick_seconds: float = 1.0):
        self.args = (model, assign, layout, seed, tick_seconds)
        self.n_shards = int(assign.max()) + 1
        self.shards: List[Shard] = []

    def start(self, snapshots: Optional[Sequence[bytes]] = None) -> None:
        model, assign, layout, seed, tick_seconds = self.args
        self.shards = [Shard(model, i, assign, layout, seed, tick_seconds) for i in range(self.n_shards)]
        for i, shard in enumerate(self.shards):
            if snapshots is None:
                shard.setup()
            else:
                shard.restore(snapshots[i])

    def run(self, start: int, until: int, clock: Clock, lookahead: int = 1) -> List[List[StepReport]]:
        """The window in lockstep, one shard after the other (messages are due a tick later
        at the soonest, so a shard delivering to one that has yet to step the tick is fine)."""
        reports: List[List[StepReport]] = [[] for _ in self.shards]
        tick: Optional[int] = start
        while tick is not None and tick < until:
            for shard in self.shards:
                shard.lookahead = lookahead
                remote, report = shard.step(tick)
                for dest, parcels in remote.items():
                    self.shards[dest].deliver(shard.index, parcels)
                reports[shard.index].append(report)
            tick = clock.next(tick, [r[-1].next_due for r in reports], False)
        return reports

    def snapshot(self) -> List[bytes]:
        return [s.snapshot() for s in self.shards]

    def agent_report(self):
        return [part for s in self.shards for part in s.agent_report()]

    def describe(self) -> Dict[str, Any]:
        return {"host": "local", "workers": 1}

    def close(self, lost: bool = False) -> None:
        self.shards = []
