"""Shards on Dask actors: each shard lives in one actor on a chosen worker.

Many agents per actor, never one actor per agent (an actor call costs about a
millisecond). The coordinator makes one ``run`` call per shard per window of
ticks; inside it the shards keep in step among themselves
(:mod:`daskbench.sim.window`): each sends every other shard its envelope of
each tick without waiting for it to land, and steps on once the others'
envelopes are in. :mod:`daskbench.sim.barrier` says how an envelope travels: a
direct socket between the two shards' threads (the default), a Dask actor call
(``deliver``, an ``async`` method run on the receiving worker's event loop), or,
between shards in the same process, a plain hand-over.

The actor itself, on its worker, is :class:`~daskbench.sim.shard_actor.ShardActor`;
this module is the coordinator's side (:class:`ActorHost`). A lost worker is noticed
two ways: a call fails to reach it, or the scheduler no longer lists it while the coordinator waits. Either raises
:class:`ShardLost` and the coordinator restarts every shard from its last
checkpoint on the workers that are left.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ..dask_compat import workers_now
from ..observe import live
from .barrier import is_lost
from .clock import Clock
from .errors import ShardLost, SimulationError
from .memory import hand_over_quickly
from .model import Model
from .shard import Layout, StepReport
from .shard_actor import ShardActor

SHARD_PRIORITY = 1_000_000  # shard creation runs before queued trials on a worker
POLL_S = 1.0  # how often a waiting coordinator checks that the shards' workers are alive


async def _gather(futures: Sequence[Any]) -> List[Any]:
    return await asyncio.gather(*futures, return_exceptions=True)


def gather_actor_calls(loop: Any, futures: Sequence[Any], timeout: float) -> List[Any]:
    """Results (or exceptions) of actor calls, waited for together in one trip to the
    event loop; ``TimeoutError`` after ``timeout`` seconds (the calls go on)."""
    from distributed.utils import sync

    if not futures:
        return []
    return sync(loop, _gather, futures, callback_timeout=timeout)


def _failed(call: Any) -> Optional[BaseException]:
    """The exception of a finished actor call (None: it succeeded)."""
    try:
        call.result()
    except BaseException as exc:
        return exc
    return None


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


def transport_used(routes: Sequence[Dict[str, Any]]) -> str:
    """``socket`` or ``comm`` if every pair of shards on different workers used it, ``mixed``, or
    ``none`` (no such pair)."""
    ways = {way for r in routes for way in ("socket", "comm") if r[way]}
    return "mixed" if len(ways) > 1 else next(iter(ways), "none")


class Window:
    """A window of ticks asked of the shards (:meth:`ActorHost.submit`), not yet collected."""

    __slots__ = ("start", "until", "calls", "issued")

    def __init__(self, start: int, until: int, calls: List[Any]):
        self.start, self.until, self.calls = start, until, calls
        self.issued = time.perf_counter()


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
        transport: str = "socket",
    ):
        hand_over_quickly()  # the coordinator's thread and its client's event loop trade the GIL every tick
        self.client = client
        self.model, self.assign, self.layout, self.seed, self.tick_seconds = model, assign, layout, seed, tick_seconds
        self.n_shards = int(assign.max()) + 1
        self.workers = list(workers)
        self.resources = resources
        self.transport = transport
        self.token = token or uuid.uuid4().hex[:12]
        self.generation = 0
        self.futures: List[Any] = []
        self.actors: List[Any] = []
        self.placed: List[str] = []
        self._assign_future = None
        self.transport_used = "none"  # how shards on different workers exchanged: socket, comm, mixed or none
        # the speed for the scheduler's daskbench_sim_ticks_per_second; built in the trial's thread
        self.rate = live.TickRate(live.current())
        self._seq = 0  # window calls made to this generation of actors

    def _alive(self) -> List[str]:
        return eligible_workers(workers_now(self.client), self.resources)

    def start(self, snapshots: Optional[Sequence[bytes]] = None) -> None:
        client = self.client
        self.generation += 1
        self._seq = 0
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
        listening = self._call_all(lambda a: a.listen(self.transport), "listening")
        routes = self._call_all(lambda a: a.connect(peers, dict(enumerate(listening))), "connecting")
        self.transport_used = transport_used(routes)
        self.rate.restart()

    def _call_all(self, call: Callable[[Any], Any], what: str) -> List[Any]:
        """Results of ``call(actor)`` for every shard, waited for together: the barrier."""
        return self._results(self._issue(call, what), what)

    def _issue(self, call: Callable[[Any], Any], what: str) -> List[Any]:
        """``call(actor)`` for every shard, not waited for. Distributed raises at the call
        itself, not in its result, once it knows that an actor's worker is gone ("Worker
        holding Actor was lost"): that is a lost shard too."""
        try:
            return [call(a) for a in self.actors]
        except Exception as exc:
            if is_lost(exc):
                raise ShardLost(f"a shard is lost while {what}: {exc}") from None
            raise

    def _results(self, calls: List[Any], what: str) -> List[Any]:
        """The results of calls made by :meth:`_issue`, waited for together."""
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
                if is_lost(res):
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
        gone = sorted(set(self.placed) - set(workers_now(self.client)))
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
                    if is_lost(exc):
                        raise ShardLost(f"shard {i} lost while {what}: {type(exc).__name__}: {exc}") from None
                    raise
        return out

    def run(self, start: int, until: int, clock: Clock, lookahead: int = 1) -> List[List[StepReport]]:
        """One call per shard for the whole window: the shards keep in step among themselves."""
        reports = self.collect(self.submit(start, until, clock, lookahead))
        assert reports is not None  # only a window asked for ahead is skipped
        return reports

    def submit(self, start: int, until: int, clock: Clock, lookahead: int = 1, ahead: bool = False) -> Window:
        """Ask every shard for the window ``[start, until)`` without waiting for it; ``ahead``:
        before the window the shards run now has ended, on the guess that it stops at ``start``
        (they run it straight after that one, with no round trip to the coordinator between)."""
        self._seq += 1
        seq, what = self._seq, f"running ticks {start}..{until - 1}"
        return Window(start, until, self._issue(lambda a: a.run(start, until, clock, lookahead, seq, ahead), what))

    def collect(self, window: Window) -> Optional[List[List[StepReport]]]:
        """The shards' reports of a window from :meth:`submit`; None if they skipped it (asked
        for ahead, on a guess that did not hold)."""
        reports = self._results(window.calls, f"running ticks {window.start}..{window.until - 1}")
        if any(r is None for r in reports):
            if not all(r is None for r in reports):
                raise SimulationError(f"some shards ran the window from tick {window.start}, some skipped it")
            return None
        for tick in sorted({r.tick for shard in reports for r in shard if r.active}):
            self.rate.ticked(tick)
        return reports

    def snapshot(self) -> List[bytes]:
        return self._call_all(lambda a: a.snapshot(), "checkpointing")

    def agent_report(self):
        parts = self._call_all(lambda a: a.agent_report(), "reporting")
        return [p for shard_parts in parts for p in shard_parts]

    def describe(self) -> Dict[str, Any]:
        return {"host": "actors", "workers": len(set(self.placed)), "transport": self.transport_used}

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
