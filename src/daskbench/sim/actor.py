"""Shards on Dask actors: each shard lives in one actor on a chosen worker.

Many agents per actor, never one actor per agent (an actor call costs about a
millisecond). The coordinator makes one ``run`` call per shard per window of
ticks; inside it the shards keep in step among themselves
(:mod:`daskbench.sim.window`): each sends every other shard its envelope of
each tick straight to that shard's actor (``deliver``, an ``async`` method, so
it runs on the receiving worker's event loop even while that worker's actor
thread is busy stepping) without waiting for it to land, and steps on once the
others' envelopes are in. Shards in the same process hand them over directly.

A lost worker is noticed two ways: a call fails to reach it, or the scheduler
no longer lists it while the coordinator waits. Either raises
:class:`ShardLost` and the coordinator restarts every shard from its last
checkpoint on the workers that are left.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import uuid
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..observe import live
from .clock import Clock
from .errors import ShardLost, SimulationError
from .memory import hand_over_quickly, keep_temporaries
from .model import Model
from .shard import Layout, Shard, StepReport
from .window import Entry, Exchange, run_window

#: shard actors living in this process, by actor key (same-process delivery)
_LOCAL: weakref.WeakValueDictionary[str, ShardActor] = weakref.WeakValueDictionary()

SHARD_PRIORITY = 1_000_000  # shard creation runs before queued trials on a worker
POLL_S = 1.0  # how often a waiting coordinator checks that the shards' workers are alive
DELIVER_TIMEOUT_S = 300.0


async def _gather(futures: Sequence[Any]) -> List[Any]:
    return await asyncio.gather(*futures, return_exceptions=True)


def gather_actor_calls(loop: Any, futures: Sequence[Any], timeout: float) -> List[Any]:
    """Results (or exceptions) of actor calls, waited for together in one trip to the
    event loop; ``TimeoutError`` after ``timeout`` seconds (the calls go on)."""
    from distributed.utils import sync

    if not futures:
        return []
    return sync(loop, _gather, futures, callback_timeout=timeout)


def _is_lost(exc: BaseException) -> bool:
    """Did this call fail because a worker or actor went away (not the model's fault)?"""
    if isinstance(exc, (ShardLost, OSError, asyncio.CancelledError, concurrent.futures.CancelledError)):
        return True
    name = type(exc).__name__
    if name in ("CommClosedError", "KilledWorker", "FutureCancelledError", "CancelledError"):
        return True
    return isinstance(exc, RuntimeError) and "Actor was lost" in str(exc)


def _failed(call: Any) -> Optional[BaseException]:
    """The exception of a finished actor call (None: it succeeded)."""
    try:
        call.result()
    except BaseException as exc:
        return exc
    return None


class ShardActor:
    """One shard, hosted by a Dask actor."""

    def __init__(
        self,
        key: str,
        model: Model,
        index: int,
        assign: np.ndarray,
        layout: Layout,
        seed: int,
        tick_seconds: float,
        snapshot: Optional[bytes],
    ):
        keep_temporaries()  # see daskbench.sim.memory: ~3x faster steps on a Dask worker
        hand_over_quickly()
        self.key = key
        self.shard = Shard(model, index, assign, layout, seed, tick_seconds)
        if snapshot is None:
            self.shard.setup()
        else:
            self.shard.restore(snapshot)
        self.peers: Dict[int, Any] = {}
        self.peer_keys: Dict[int, str] = {}
        self.exchange = Exchange()
        self._thread: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._abort = threading.Event()
        self._sent: List[Tuple[int, Any]] = []  # (shard, ActorFuture) of deliveries not yet checked
        _LOCAL[key] = self

    def connect(self, peers: Dict[int, Tuple[str, str]]) -> int:
        """The other shards' actors: {shard: (actor key, worker address)}. The handles are bound
        to this worker here, so the shard's own thread (not a worker thread) can call them."""
        from distributed import get_worker
        from distributed.actor import Actor

        worker = get_worker()
        others = {i: p for i, p in peers.items() if i != self.shard.index}
        self.peer_keys = {i: k for i, (k, _) in others.items()}
        self.peers = {i: Actor(ShardActor, addr, k, worker=worker) for i, (k, addr) in others.items()}
        return self.shard.n_agents

    async def run(self, start: int, until: int, clock: Clock, lookahead: int = 1) -> List[StepReport]:
        """Run the window ``[start, until)`` in step with the other shards (see :mod:`.window`).

        On a thread of the shard's own: a worker runs its actors' plain methods on one
        thread, and two shards on one worker must wait for each other's envelopes."""
        if self._thread is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"sim-shard-{self.key}")
        args = (self.shard, clock, start, until, lookahead, sorted(self.peer_keys), self._send, self._wait)
        return await asyncio.get_running_loop().run_in_executor(self._thread, run_window, *args, self.exchange.dues)

    def _send(self, dest: int, entries: List[Entry]) -> None:
        """Hand envelopes to shard ``dest`` without waiting for them to land (the receiver waits)."""
        local = _LOCAL.get(self.peer_keys[dest])
        if local is not None:  # same process: no serialisation
            local.receive(self.shard.index, entries)
            return
        try:
            self._sent.append((dest, self.peers[dest].deliver(self.shard.index, entries)))
        except Exception as exc:
            raise ShardLost(f"shard {dest} unreachable: {exc}") from None

    def receive(self, src: int, entries: List[Entry]) -> None:
        for _, _, parcels in entries:
            self.shard.deliver(src, parcels)
        self.exchange.arrive(src, [(tick, due) for tick, due, _ in entries])

    def _wait(self, tick: int) -> None:
        """Block until every other shard's envelope of ``tick`` is in; raise if a send of ours failed."""
        deadline = time.monotonic() + DELIVER_TIMEOUT_S
        peers = list(self.peer_keys)
        while not self.exchange.wait(tick, peers, 0.5):
            self._check_sent()
            if self._abort.is_set():
                raise ShardLost("aborted by the coordinator")
            if time.monotonic() > deadline:
                raise ShardLost(f"the other shards did not send their tick {tick} within {DELIVER_TIMEOUT_S:.0f}s")
        if len(self._sent) > 64:
            self._check_sent()

    def _check_sent(self) -> None:
        still = []
        for dest, fut in self._sent:
            if not fut.done():
                still.append((dest, fut))
                continue
            try:
                fut.result()
            except Exception as exc:
                if _is_lost(exc):
                    raise ShardLost(f"shard {dest} unreachable: {type(exc).__name__}: {exc}") from None
                raise
        self._sent = still

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for this shard's deliveries still in flight (at the end, before the actors go:
        a delivery reaching a released actor is an error in the receiving worker's log)."""
        deadline = time.monotonic() + timeout
        for _, fut in self._sent:
            try:
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:
                pass  # the simulation is over; a lost or slow peer changes nothing now
        self._sent = []
        self._stop_thread()

    def _stop_thread(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None

    async def deliver(self, src: int, entries: List[Entry]) -> None:
        self.receive(src, entries)

    async def abort(self) -> None:
        self._abort.set()
        self._stop_thread()

    def snapshot(self) -> bytes:
        """The shard's state (a window ends with every message sent in it in the queues)."""
        return self.shard.snapshot()

    def agent_report(self):
        return self.shard.agent_report()


def resource_restrictions() -> Dict[str, float]:
    """The resources the running task asked for (so its shards go where they are)."""
    try:
        from distributed import get_worker

        worker = get_worker()
        ts = worker.state.tasks.get(worker.get_current_task())
        return dict(ts.resource_restrictions or {}) if ts is not None else {}
    except (ImportError, ValueError, AttributeError, KeyError):  # KeyError: not in a task's own thread
        return {}


def eligible_workers(workers: Dict[str, Dict[str, Any]], resources: Dict[str, float]) -> List[str]:
    """Addresses of the workers that have every resource the trial asked for (sorted)."""
    out = []
    for addr, info in workers.items():
        have = info.get("resources") or {}
        if all(float(have.get(r, 0)) >= float(q) for r, q in resources.items()):
            out.append(addr)
    if not out:
        raise SimulationError(
            f"no worker has the trial's resources {resources} for its shards; the workers have "
            f"{sorted({r for i in workers.values() for r in (i.get('resources') or {})}) or 'no resources'}"
        )
    return sorted(out)


class ActorHost:
    """Shards in Dask actors, one per chosen worker in turn."""

    def __init__(
        self,
        client: Any,
        model: Model,
        assign: np.ndarray,
        layout: Layout,
        seed: int,
        tick_seconds: float,
        workers: Sequence[str],
        resources: Dict[str, float],
        token: str = "",
    ):
        hand_over_quickly()  # the coordinator's thread and its client's event loop trade the GIL every tick
        self.client = client
        self.model, self.assign, self.layout, self.seed, self.tick_seconds = model, assign, layout, seed, tick_seconds
        self.n_shards = int(assign.max()) + 1
        self.workers = list(workers)
        self.resources = resources
        self.token = token or uuid.uuid4().hex[:12]
        self.generation = 0
        self.futures: List[Any] = []
        self.actors: List[Any] = []
        self.placed: List[str] = []
        self._assign_future = None
        # the speed for the scheduler's daskbench_sim_ticks_per_second; built in the trial's thread
        self.rate = live.TickRate(live.current())

    def _alive(self) -> List[str]:
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return eligible_workers(info, self.resources)

    def start(self, snapshots: Optional[Sequence[bytes]] = None) -> None:
        client = self.client
        self.generation += 1
        if self.generation > 1:  # after a loss: place on the workers that are left
            self.workers = self._alive()
        self.placed = [self.workers[i % len(self.workers)] for i in range(self.n_shards)]
        if self._assign_future is None or self.generation > 1:
            [self._assign_future] = client.scatter([self.assign], hash=False, broadcast=False)
        snaps: List[Any] = [None] * self.n_shards
        if snapshots is not None:
            snaps = client.scatter(list(snapshots), hash=False, workers=None)
        keys = [f"sim-shard-{self.token}-g{self.generation}-{i}" for i in range(self.n_shards)]
        self.futures = [
            client.submit(
                ShardActor,
                keys[i],
                self.model,
                i,
                self._assign_future,
                self.layout,
                self.seed,
                self.tick_seconds,
                snaps[i],
                actor=True,
                key=keys[i],
                workers=[addr],
                allow_other_workers=False,
                pure=False,
                priority=SHARD_PRIORITY,
            )
            for i, addr in enumerate(self.placed)
        ]
        self.actors = self._wait_all(self.futures, lambda f: f.result(timeout=POLL_S), "starting")
        peers = {i: (keys[i], addr) for i, addr in enumerate(self.placed)}
        self._call_all([a.connect(peers) for a in self.actors], "connecting")
        self.rate.restart()

    def _call_all(self, calls: Sequence[Any], what: str) -> List[Any]:
        """Results of one actor call per shard, waited for together: the barrier."""
        while True:
            try:
                results = gather_actor_calls(self.client.loop, calls, POLL_S)
                break
            except TimeoutError:
                self._check_workers(what)
                done = [_failed(c) if c.done() else None for c in calls]
                if any(done):  # the others may be waiting for its envelope: free them
                    self._abort_all()
                    results = done
                    break
        for i, res in enumerate(results):
            if isinstance(res, BaseException):
                if _is_lost(res):
                    raise ShardLost(f"shard {i} lost while {what}: {type(res).__name__}: {res}")
                raise res
        return results

    def _abort_all(self) -> None:
        calls = []
        for a in self.actors:
            try:
                calls.append(a.abort())
            except Exception:
                pass  # its worker is the one that went away
        try:
            gather_actor_calls(self.client.loop, calls, 5.0)
        except Exception:
            pass

    def _check_workers(self, what: str) -> None:
        gone = sorted(set(self.placed) - set(self.client.scheduler_info(n_workers=-1)["workers"]))
        if gone:
            raise ShardLost(f"worker {', '.join(gone)} holding a shard left while {what}")

    def _wait_all(self, futures: Sequence[Any], get, what: str) -> List[Any]:
        """Results of all ``futures``, raising :class:`ShardLost` if a shard's worker goes away."""
        out: List[Any] = [None] * len(futures)
        for i, fut in enumerate(futures):
            while True:
                try:
                    out[i] = get(fut)
                    break
                except TimeoutError:
                    self._check_workers(what)
                except Exception as exc:
                    if _is_lost(exc):
                        raise ShardLost(f"shard {i} lost while {what}: {type(exc).__name__}: {exc}") from None
                    raise
        return out

    def run(self, start: int, until: int, clock: Clock, lookahead: int = 1) -> List[List[StepReport]]:
        """One call per shard for the whole window: the shards keep in step among themselves."""
        try:
            calls = [a.run(start, until, clock, lookahead) for a in self.actors]
        except Exception as exc:
            if _is_lost(exc):
                raise ShardLost(f"a shard is lost: {exc}") from None
            raise
        reports = self._call_all(calls, f"running ticks {start}..{until - 1}")
        for tick in sorted({r.tick for shard in reports for r in shard if r.active}):
            self.rate.ticked(tick)
        return reports

    def snapshot(self) -> List[bytes]:
        return self._call_all([a.snapshot() for a in self.actors], "checkpointing")

    def agent_report(self):
        parts = self._call_all([a.agent_report() for a in self.actors], "reporting")
        return [p for shard_parts in parts for p in shard_parts]

    def describe(self) -> Dict[str, Any]:
        return {"host": "actors", "workers": len(set(self.placed))}

    def close(self, lost: bool = False) -> None:
        """Release the shard actors; after a loss, first free shards stuck delivering to it."""
        if not lost:
            self.rate.done()
        if not lost and self.actors:
            try:
                gather_actor_calls(self.client.loop, [a.drain() for a in self.actors], 60.0)
            except Exception:
                pass  # finished already: closing must not fail the simulation
        if lost and self.actors:
            self._abort_all()
        futures, self.futures, self.actors = self.futures, [], []
        if futures:
            try:
                self.client.cancel(futures, force=True)
            except Exception:
                pass
