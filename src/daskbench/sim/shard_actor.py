"""The shard actor: one shard of a simulation, living in a Dask actor on a worker.

The coordinator's side, which places, calls and restarts these actors, is
:class:`daskbench.sim.actor.ActorHost`. Each ``run`` call (one window of ticks) is
handed to the actor's own thread, in the order the calls were numbered, so a window
asked for ahead of time waits its turn; inside it the shard keeps in step with its
peers (:mod:`daskbench.sim.window`, :mod:`daskbench.sim.barrier`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import weakref
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .barrier import PeerBarrier, listen_address
from .clock import Clock
from .errors import ShardLost
from .memory import hand_over_quickly, keep_temporaries
from .model import Model
from .shard import Layout, Shard, StepReport
from .window import Entry, run_window

#: shard actors living in this process, by actor key (same-process delivery)
_LOCAL: weakref.WeakValueDictionary[str, ShardActor] = weakref.WeakValueDictionary()

TURN_TIMEOUT_S = 60.0  # how long a window call waits for the one before it to reach the shard


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
        self.barrier = PeerBarrier(self.shard, None)
        self.transport_note: Optional[str] = None  # why this shard's envelopes go by Dask comm, if they do
        self._plan: Optional[Tuple[Dict[int, PeerBarrier], Dict[int, Tuple[str, int]], Dict[int, Any]]] = None
        self.routes: Dict[str, List[int]] = {}
        self._thread: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._next: Optional[int] = None  # the tick the last window left off at (None: none ran yet, or the end)
        self._seq = 0  # number of the last window call handed to the shard's thread
        self._turn: Optional[asyncio.Condition] = None
        _LOCAL[key] = self

    def listen(self, transport: str) -> Optional[Tuple[str, int]]:
        """Open this shard's listening socket for ``transport`` (see :mod:`.barrier`); its address,
        or None: the other shards reach this one by Dask actor calls."""
        from distributed import get_worker

        links, self.transport_note = listen_address(get_worker().address, transport)
        self.barrier.links = links
        return None if links is None else links.address

    def connect(self, peers: Dict[int, Tuple[str, str]], addresses: Optional[Dict[int, Any]] = None) -> Dict[str, Any]:
        """The other shards: {shard: (actor key, worker address)} and the listening addresses from
        :meth:`listen`. Shards in this process are reached directly, those that both listen by
        socket (connected at the start of the first window, on the shard's own thread), the
        rest by actor handles bound to this worker here (so the shard's thread can call them).
        Returns :meth:`transport`."""
        from distributed import get_worker
        from distributed.actor import Actor

        worker, me, addresses = get_worker(), self.shard.index, addresses or {}
        local: Dict[int, PeerBarrier] = {}
        sockets: Dict[int, Tuple[str, int]] = {}
        actors: Dict[int, Any] = {}
        for i, (key, addr) in peers.items():
            here = _LOCAL.get(key)
            if i == me:
                continue
            if here is not None:
                local[i] = here.barrier
            elif addresses.get(i) and addresses.get(me):
                sockets[i] = tuple(addresses[i])  # type: ignore[assignment]
            else:
                actors[i] = Actor(ShardActor, addr, key, worker=worker)
        self._plan = (local, sockets, actors)
        self.routes = {"socket": sorted(sockets), "comm": sorted(actors), "local": sorted(local)}
        return self.transport()

    async def run(
        self, start: int, until: int, clock: Clock, lookahead: int = 1, seq: int = 0, ahead: bool = False
    ) -> Optional[List[StepReport]]:
        """Run the window ``[start, until)`` in step with the other shards (see :mod:`.window`).

        On a thread of the shard's own: a worker runs its actors' plain methods on one
        thread, and two shards on one worker must wait for each other's envelopes.

        ``seq`` (from 1): the coordinator's number of the call; windows are handed to the
        shard's thread in that order, whatever order the calls arrive in, so the coordinator
        may ask for the next window while this one runs. ``ahead``: asked for before the
        previous window ended, on the guess that it starts where that one stops; if it does
        not (the clock skipped idle ticks past it, or the simulation ended), the shard runs
        nothing and returns None (every shard decides alike: they all stopped at the same tick)."""
        if self._thread is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"sim-shard-{self.key}")
        loop = asyncio.get_running_loop()
        args = (start, until, clock, lookahead, ahead)
        if not seq:
            return await loop.run_in_executor(self._thread, self._window, *args)
        if self._turn is None:
            self._turn = asyncio.Condition()
        async with self._turn:
            try:
                await asyncio.wait_for(self._turn.wait_for(lambda: self._seq >= seq - 1), TURN_TIMEOUT_S)
            except TimeoutError:
                raise ShardLost(f"window call {seq - 1} never reached shard {self.shard.index}") from None
            if self._thread is None:  # aborted meanwhile
                raise ShardLost("aborted by the coordinator")
            fut = loop.run_in_executor(self._thread, self._window, *args)
            self._seq = seq
            self._turn.notify_all()
        return await fut

    def _window(self, start: int, until: int, clock: Clock, lookahead: int, ahead: bool = False):
        b = self.barrier
        if ahead and self._next != start:
            return None
        if b.abort_flag.is_set():  # a window queued behind one that was aborted
            raise ShardLost("aborted by the coordinator")
        try:
            if self._plan is not None:
                plan, self._plan = self._plan, None
                b.connect(*plan)
            peers = b.peers
            reports, self._next = run_window(
                self.shard, clock, start, until, lookahead, peers, b.send, b.wait, b.exchange.dues
            )
            b.flush()
            return reports
        except BaseException:
            b.close()  # the trial restarts on new actors: let go of the sockets now, on this thread
            raise

    def transport(self) -> Dict[str, Any]:
        """How this shard reaches the others (shard indices by way) and why not by socket, if not."""
        return {**self.routes, "note": self.transport_note}

    def drain(self, timeout: float = 30.0) -> None:
        """At the end, before the actors go: deliveries in flight, sockets, the shard's thread."""
        self.barrier.drain(timeout)
        self._stop_thread()

    def _stop_thread(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None

    async def deliver(self, src: int, entries: List[Entry]) -> None:
        self.barrier.receive(src, entries)

    async def abort(self) -> None:
        self.barrier.abort()
        self._stop_thread()

    def snapshot(self) -> bytes:
        """The shard's state (a window ends with every message sent in it in the queues)."""
        return self.shard.snapshot()

    def agent_report(self):
        return self.shard.agent_report()
