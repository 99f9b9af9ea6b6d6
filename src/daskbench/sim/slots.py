"""Worker slots for a sharded simulation, so concurrent trials do not oversubscribe workers.

A shard steps on its worker's actor thread, which the scheduler does not count:
left alone, a worker would run a trial on each of its threads *and* a shard.
So a sharded trial, before it places its shards:

1. takes the cluster-wide lease ``daskbench-sim-sharded`` (a Dask ``Semaphore``
   of one lease): one sharded trial runs at a time, while the others wait
   seceded, holding no worker thread;
2. once its shard actors exist, submits one *holder* task to each worker that
   holds a shard; a holder occupies one worker thread (the scheduler sees it
   busy, so no other trial starts there) until the shards are closed, and the
   trial waits until every holder runs before it steps. Its coordinator has
   seceded, so the holder on its own worker takes the slot the coordinator
   gave up.

One lease at a time keeps the holders of two sharded trials from waiting for
each other's worker threads. Trials that run locally (``auto`` on a small
model) take one worker thread each, as any trial does. This module is the thin
Dask layer; the simulation core imports none of it.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any, Iterator, List, Optional, Sequence

from ..dask_compat import workers_now

LEASE = "daskbench-sim-sharded"
POLL_S = 1.0
HOLDER_PRIORITY = 1_000_000  # before queued trials on the worker


def _hold(started: str, release: str) -> None:
    """Occupy this worker thread until the simulation that placed it releases it."""
    from distributed import Event

    Event(started).set()
    Event(release).wait()


@contextlib.contextmanager
def lease(client: Any) -> Iterator[None]:
    """Hold the cluster's one sharded-trial lease (waiting seceded, with no worker thread)."""
    from distributed import Semaphore

    sem = Semaphore(max_leases=1, name=LEASE)
    while not sem.acquire(timeout=POLL_S):
        pass  # another sharded trial runs
    try:
        yield
    finally:
        sem.release()


class ReservedHost:
    """A host whose shards' workers each give one thread to a holder while the shards live.

    The holders start once the shard actors exist (creating an actor takes a worker thread
    too), are released when the shards are closed, and are placed again after a restart."""

    def __init__(self, host: Any, client: Any):
        self.host, self.client = host, client
        self.futures: List[Any] = []
        self.release = ""

    def start(self, snapshots: Optional[Sequence[bytes]] = None) -> None:
        self.host.start(snapshots)
        token = uuid.uuid4().hex[:12]
        self.release = f"sim-slots-release-{token}"
        workers = sorted(set(self.host.placed))
        names = [f"sim-slots-started-{token}-{i}" for i in range(len(workers))]
        self.futures = [
            self.client.submit(
                _hold,
                names[i],
                self.release,
                key=f"sim-slot-{token}-{i}",
                workers=[addr],
                allow_other_workers=False,
                pure=False,
                priority=HOLDER_PRIORITY,
            )
            for i, addr in enumerate(workers)
        ]
        _wait_started(self.client, workers, names, self.futures)

    def run(self, start: int, until: int, clock: Any, lookahead: int = 1) -> Any:
        return self.host.run(start, until, clock, lookahead)

    def submit(self, start: int, until: int, clock: Any, lookahead: int = 1, ahead: bool = False) -> Any:
        return self.host.submit(start, until, clock, lookahead, ahead)

    def collect(self, window: Any) -> Any:
        return self.host.collect(window)

    def snapshot(self) -> Any:
        return self.host.snapshot()

    def agent_report(self) -> Any:
        return self.host.agent_report()

    def describe(self) -> Any:
        return self.host.describe()

    @property
    def placed(self) -> List[str]:
        return self.host.placed

    def close(self, lost: bool = False) -> None:
        try:
            self.host.close(lost=lost)
        finally:
            self._free()

    def _free(self) -> None:
        from distributed import Event

        futures, self.futures = self.futures, []
        if not futures:
            return
        try:
            Event(self.release).set()
            self.client.cancel(futures)
        except Exception:  # noqa: BLE001 - closing: a cluster going away frees the threads anyway
            pass


def _wait_started(client: Any, workers: List[str], names: List[str], futures: List[Any]) -> None:
    """Return once every holder runs (or its worker is gone: a restart will follow)."""
    from distributed import Event

    for addr, name, fut in zip(workers, names, futures):
        event = Event(name)
        while not event.wait(timeout=POLL_S):
            alive = workers_now(client)
            if fut.status in ("error", "cancelled", "lost") or addr not in alive:
                break
