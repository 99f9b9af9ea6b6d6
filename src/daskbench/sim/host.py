"""Hosts hold the shards of one simulation and run one tick on all of them.

:class:`LocalHost` keeps every shard in this process (tests, notebooks, a
trial called outside Dask). :class:`daskbench.sim.actor.ActorHost` keeps each
shard in a Dask actor on a worker. Both give the coordinator the same calls;
``step`` is the barrier: it returns once every shard has run the tick and every
message sent in it has been delivered.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from .model import Model
from .shard import Layout, Shard, StepReport


class Host(Protocol):
    def start(self, snapshots: Optional[Sequence[bytes]]) -> None: ...
    def step(self, tick: int) -> List[StepReport]: ...
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

    def step(self, tick: int) -> List[StepReport]:
        reports = []
        for shard in self.shards:
            remote, report = shard.step(tick)
            for dest, batches in remote.items():
                self.shards[dest].deliver(tick, shard.index, batches)
            reports.append(report)
        return reports

    def snapshot(self) -> List[bytes]:
        return [s.snapshot() for s in self.shards]

    def agent_report(self):
        return [part for s in self.shards for part in s.agent_report()]

    def describe(self) -> Dict[str, Any]:
        return {"host": "local", "workers": 1}

    def close(self, lost: bool = False) -> None:
        self.shards = []
