"""Scheduler plugins daskbench installs on every cluster it runs on."""

from __future__ import annotations

from typing import Any, List

from distributed.diagnostics.plugin import SchedulerPlugin


class KeepActorWorkers(SchedulerPlugin):
    """Keep workers that host actors out of adaptive scale-down.

    Dask does not move actors: retiring their worker loses the simulation shard
    it holds. Every downscaling path asks ``Scheduler.workers_to_close`` which
    workers to retire (``Adaptive``, the ``adaptive_target`` and
    ``retire_workers`` HTTP routes the Kubernetes operator calls), so this
    plugin filters that answer.
    """

    name = "daskbench-keep-actor-workers"
    idempotent = True

    async def start(self, scheduler: Any) -> None:
        original = scheduler.workers_to_close
        if getattr(original, "_daskbench_filtered", False):
            return

        def workers_to_close(*args: Any, **kwargs: Any) -> List[Any]:
            chosen = original(*args, **kwargs)
            busy = {ws.address for ws in scheduler.workers.values() if ws.actors}
            busy |= {ws.name for ws in scheduler.workers.values() if ws.actors}
            return [w for w in chosen if w not in busy]

        workers_to_close._daskbench_filtered = True  # type: ignore[attr-defined]
        scheduler.workers_to_close = workers_to_close
        # the RPC handler table keeps the bound method it was built with
        scheduler.handlers["workers_to_close"] = workers_to_close
