"""Shards on Dask actors: each shard lives in one actor on a chosen worker.

Many agents per actor, never one actor per agent (an actor call costs about a
millisecond). Per tick the coordinator makes one ``step`` call per shard and
waits for all of them: the barrier. A shard sends the messages for another
shard straight to that shard's actor (``deliver``, an ``async`` method, so it
runs on the receiving worker's event loop even while that worker's actor
thread is busy stepping) without waiting for them to land; the coordinator
tells each shard, with its next ``step`` call, which shards sent it messages,
and the shard waits for those before it steps. Shards in the same process hand
messages over directly.

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
from .errors import ShardLost, SimulationError
from .memory import hand_over_quickly, keep_temporaries
from .model import Model
from .shard import Layout, Shard, StepReport

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
        self._abort = threading.Event()
        self._sent: List[Tuple[int, Any]] = []  # (shard, ActorFuture) of deliveries not yet checked
        _LOCAL[key] = self

    def connect(self, peers: Dict[int, Tuple[str, Any]]) -> int:
        """Handles of the other shards' actors: {shard: (actor key, Actor)}."""
        self.peer_keys = {i: k for i, (k, _) in peers.items()}
        self.peers = {i: a for i, (_, a) in peers.items()}
        return self.shard.n_agents

    def step(self, tick: int, after: Optional[int] = None, expect: Sequence[int] = ()) -> StepReport:
        """Run ``tick`` once the shards ``expect`` have delivered what they sent at tick ``after``.

        Messages for other processes are sent without waiting for them to land:
        the receiver waits for them at the start of its next step instead, so the
        transfer overlaps the coordinator's barrier rather than adding a round
        trip to every tick.
        """
        self._await_deliveries(after, expect)
        remote, report = self.shard.step(tick)
        for dest, batches in remote.items():
            local = _LOCAL.get(self.peer_keys[dest])
            if local is not None:  # same process: no serialisation
                local.shard.deliver(tick, self.shard.index, batches)
                continue
            try:
                self._sent.append((dest, self.peers[dest].deliver(tick, self.shard.index, batches)))
            except Exception as exc:
                raise ShardLost(f"shard {dest} unreachable: {exc}") from None
        return report

    def _await_deliveries(self, after: Optional[int], expect: Sequence[int]) -> None:
        """Block until the expected messages are in; raise if a send of ours failed meanwhile."""
        if after is not None and expect:
            deadline = time.monotonic() + DELIVER_TIMEOUT_S
            while not self.shard.wait_for(after, expect, 0.5):
                if self._abort.is_set():
                    raise ShardLost("aborted by the coordinator")
                if time.monotonic() > deadline:
                    raise ShardLost(
                        f"shards {list(expect)} did not deliver the messages of tick {after} "
                        f"within {DELIVER_TIMEOUT_S:.0f}s"
                    )
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

    async def deliver(self, tick: int, src: int, batches: Dict[str, Any]) -> None:
        self.shard.deliver(tick, src, batches)

    async def abort(self) -> None:
        self._abort.set()

    def snapshot(self, after: Optional[int] = None, expect: Sequence[int] = ()) -> bytes:
        """The shard's state with every message sent at tick ``after`` in its queues."""
        self._await_deliveries(after, expect)
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
        self._last: Optional[Tuple[int, List[StepReport]]] = None  # the last tick run, and its reports
        # the speed for the scheduler's daskbench_sim_ticks_per_second; built in the trial's thread
        self.rate = live.TickRate(live.current())

    def _alive(self) -> List[str]:
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return eligible_workers(info, self.resources)

    def start(self, snapshots: Optional[Sequence[bytes]] = None) -> None:
        client = self.client
        self.generation += 1
        self._last = None
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
        peers = {i: (keys[i], a) for i, a in enumerate(self.actors)}
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
        for i, res in enumerate(results):
            if isinstance(res, BaseException):
                if _is_lost(res):
                    raise ShardLost(f"shard {i} lost while {what}: {type(res).__name__}: {res}")
                raise res
        return results

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

    def _expected(self) -> Tuple[Optional[int], List[List[int]]]:
        """The last tick, and for each shard the shards whose messages of that tick it must wait for."""
        if self._last is None:
            return None, [[] for _ in self.actors]
        tick, reports = self._last
        return tick, [[i for i, r in enumerate(reports) if j in r.sent_to] for j in range(len(self.actors))]

    def step(self, tick: int) -> List[StepReport]:
        after, expect = self._expected()
        try:
            calls = [a.step(tick, after, expect[j]) for j, a in enumerate(self.actors)]
        except Exception as exc:
            if _is_lost(exc):
                raise ShardLost(f"a shard is lost: {exc}") from None
            raise
        reports = self._call_all(calls, f"stepping tick {tick}")
        self._last = (tick, reports)
        self.rate.ticked(tick)
        return reports

    def snapshot(self) -> List[bytes]:
        after, expect = self._expected()
        return self._call_all([a.snapshot(after, expect[j]) for j, a in enumerate(self.actors)], "checkpointing")

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
        futures, self.futures, self.actors = self.futures, [], []
        if futures:
            try:
                self.client.cancel(futures, force=True)
            except Exception:
                pass
