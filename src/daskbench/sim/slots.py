"""Worker slots for a sharded simulation, so concurrent trials do not oversubscribe workers.

A shard steps on its worker's actor thread, which the scheduler does not count:
left alone, a worker would run a trial on each of its threads *and* a shard.
So a sharded trial, before it places its shards:

1. takes the cluster-wide lease ``daskbench-sim-sharded`` (a Dask ``Semaphore``
   of one lease): one sharded trial runs at a time, while the others wait
   seceded, holding no worker thread;
2. submits one *holder* task to each worker that will hold a shard; a holder
   occupies one worker thread (the scheduler sees it busy, so no other trial
   starts there) until the simulation ends, and the trial waits until every
   holder runs before it steps. Its coordinator has seceded, so the holder on
   its own worker takes the slot the coordinator gave up.

One lease at a time keeps the holders of two sharded trials from waiting for
each other's worker threads. Trials that run locally (``auto`` on a small
model) take one worker thread each, as any trial does. This module is the thin
Dask layer; the simulation core imports none of it.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any, Iterator, List, Sequence

LEASE = "daskbench-sim-sharded"
POLL_S = 1.0
HOLDER_PRIORITY = 1_000_000  # before queued trials on the worker


def _hold(started: str, release: str) -> None:
    """Occupy this worker thread until the simulation that placed it releases it."""
    from distributed import Event

    Event(started).set()
    Event(release).wait()


@contextlib.contextmanager
def reserved(client: Any, workers: Sequence[str]) -> Iterator[List[str]]:
    """Hold the sharded-trial lease and one thread on each of ``workers``; yields those of
    ``workers`` whose holders run (a worker that left meanwhile is dropped)."""
    from distributed import Event, Semaphore

    lease = Semaphore(max_leases=1, name=LEASE)
    while not lease.acquire(timeout=POLL_S):
        pass  # another sharded trial runs; we hold no worker thread meanwhile
    token = uuid.uuid4().hex[:12]
    release = f"sim-slots-release-{token}"
    futures: List[Any] = []
    try:
        names = [f"sim-slots-started-{token}-{i}" for i in range(len(workers))]
        futures = [
            client.submit(
                _hold,
                names[i],
                release,
                key=f"sim-slot-{token}-{i}",
                workers=[addr],
                allow_other_workers=False,
                pure=False,
                priority=HOLDER_PRIORITY,
            )
            for i, addr in enumerate(workers)
        ]
        yield _wait_started(client, list(workers), names, futures)
    finally:
        try:
            Event(release).set()
            client.cancel(futures)
        finally:
            lease.release()


def _wait_started(client: Any, workers: List[str], names: List[str], futures: List[Any]) -> List[str]:
    from distributed import Event

    held = []
    for addr, name, fut in zip(workers, names, futures):
        event = Event(name)
        while not event.wait(timeout=POLL_S):
            alive = client.scheduler_info(n_workers=-1)["workers"]
            if fut.status in ("error", "cancelled", "lost") or addr not in alive:
                break
        else:
            held.append(addr)
    return held or list(workers[:1])
