"""How a shard actor's envelopes reach the other shards, and how it waits for theirs.

Three ways, chosen per pair of shards when they connect:

- same process (two shards on one worker): handed over directly, no serialisation;
- ``socket`` (the default on ``tcp://`` clusters): a direct TCP connection between the
  two shards, read and written by the shards' own threads (:mod:`daskbench.sim.sockets`);
- ``comm``: a Dask actor call (``deliver``) over the workers' comm, run on the
  receiving worker's event loop. Used when the trial asks for it
  (``clock.transport: comm``), on clusters whose addresses are not ``tcp://`` (TLS
  among them: the direct sockets are not encrypted, the Dask comm is), and when a
  shard cannot open its listening socket.

Whichever way an envelope comes, it lands in the shard and in its :class:`Exchange`;
the shard's thread waits in the sockets' ``select`` if it has any (an envelope by
another way wakes it), else on the exchange.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from .errors import ShardLost, SimulationError
from .shard import Shard
from .sockets import Links, PeerGone
from .window import Entry, Exchange

TRANSPORTS = ("socket", "comm")
DELIVER_TIMEOUT_S = 300.0
CONNECT_TIMEOUT_S = 60.0
POLL_S = 0.5  # how often a waiting shard looks at its abort flag and failed sends


def is_lost(exc: BaseException) -> bool:
    """Did this call fail because a worker or actor went away (not the model's fault)?"""
    if isinstance(exc, (ShardLost, OSError, asyncio.CancelledError, concurrent.futures.CancelledError)):
        return True
    name = type(exc).__name__
    if name in ("CommClosedError", "KilledWorker", "FutureCancelledError", "CancelledError"):
        return True
    return isinstance(exc, RuntimeError) and "Actor was lost" in str(exc)


def listen_address(worker_address: str, transport: str) -> Tuple[Optional[Links], Optional[str]]:
    """A listening socket on the worker's own host for ``transport`` ``socket`` on a ``tcp://``
    worker, or (None, why not) for the Dask comm instead."""
    from distributed.comm import get_address_host, parse_address

    if transport not in TRANSPORTS:
        raise SimulationError(f"clock.transport={transport!r}: use one of {', '.join(TRANSPORTS)}")
    if transport == "comm":
        return None, "clock.transport is comm"
    scheme = parse_address(worker_address)[0]
    if scheme != "tcp":
        return None, f"the worker's address is {scheme}:// (direct sockets are plain TCP)"
    try:
        return Links(get_address_host(worker_address)), None
    except OSError as exc:
        return None, f"no listening socket: {exc}"


class PeerBarrier:
    """One shard's side of the barrier: sending envelopes and waiting for the others'."""

    def __init__(self, shard: Shard, links: Optional[Links]):
        self.shard = shard
        self.links = links
        self.exchange = Exchange()
        self.local: Dict[int, PeerBarrier] = {}  # peers in this process
        self.actors: Dict[int, Any] = {}  # peers reached by Dask actor calls
        self.peers: List[int] = []
        self._sent: List[Tuple[int, Any]] = []  # (shard, ActorFuture) of deliveries not yet checked
        self.abort_flag = threading.Event()

    def connect(self, local: Dict[int, PeerBarrier], sockets: Dict[int, Tuple[str, int]], actors: Dict[int, Any]):
        """The other shards, each reached one way (run on the shard's own thread: it may wait
        for the lower shards to connect to its listening socket)."""
        self.local, self.actors = local, actors
        self.peers = sorted([*local, *sockets, *actors])
        if self.links is not None:
            try:
                self.links.connect(self.shard.index, sockets, CONNECT_TIMEOUT_S, self.abort_flag.is_set)
            except OSError as exc:
                raise ShardLost(f"shard {self.shard.index} could not connect to the other shards: {exc}") from None
            if not sockets:  # nobody to talk to by socket: stop waiting in select
                self.links.close()
                self.links = None

    def send(self, dest: int, entries: List[Entry]) -> None:
        """Hand envelopes to shard ``dest`` without waiting for them to land (the receiver waits)."""
        local = self.local.get(dest)
        if local is not None:  # same process: no serialisation
            local.receive(self.shard.index, entries)
            return
        if self.links is not None and dest in self.links.links:
            try:
                self.links.send(dest, entries)
            except PeerGone as exc:
                raise ShardLost(str(exc)) from None
            return
        try:
            self._sent.append((dest, self.actors[dest].deliver(self.shard.index, entries)))
        except Exception as exc:
            raise ShardLost(f"shard {dest} unreachable: {exc}") from None

    def receive(self, src: int, entries: List[Entry]) -> None:
        """Envelopes from shard ``src`` by hand-over or actor call (another thread): land them and
        wake this shard's thread if it waits in ``select``."""
        self._land(src, entries)
        links = self.links
        if links is not None:
            links.wake()

    def _land(self, src: int, entries: List[Entry]) -> None:
        for _, _, parcels in entries:
            self.shard.deliver(src, parcels)
        self.exchange.arrive(src, [(tick, due) for tick, due, _ in entries])

    def wait(self, tick: int) -> None:
        """Block until every other shard's envelope of ``tick`` is in (and, over sockets, every
        byte of ours written: the others wait for it); raise if a send of ours failed."""
        deadline = time.monotonic() + DELIVER_TIMEOUT_S
        while not self._arrived(tick):
            self._check_sent()
            if self.abort_flag.is_set():
                raise ShardLost("aborted by the coordinator")
            if time.monotonic() > deadline:
                raise ShardLost(f"the other shards did not send their tick {tick} within {DELIVER_TIMEOUT_S:.0f}s")
        if len(self._sent) > 64:
            self._check_sent()

    def _arrived(self, tick: int) -> bool:
        """Wait up to :data:`POLL_S` for progress; has everything for ``tick`` arrived?"""
        links = self.links
        if links is None:
            return self.exchange.wait(tick, self.peers, POLL_S)
        if self.exchange.wait(tick, self.peers, 0) and not links.pending():
            return True
        self._pump(links, POLL_S)
        return self.exchange.wait(tick, self.peers, 0) and not links.pending()

    def _pump(self, links: Links, timeout: float) -> None:
        try:
            links.pump(self._land, timeout)  # on this shard's own thread: no wake-up needed
        except PeerGone as exc:
            raise ShardLost(str(exc)) from None

    def flush(self) -> None:
        """Write out every envelope still queued for a socket (at the end of a window: the others
        wait for them)."""
        links = self.links
        deadline = time.monotonic() + DELIVER_TIMEOUT_S
        while links is not None and links.pending():
            self._pump(links, POLL_S)
            if self.abort_flag.is_set():
                raise ShardLost("aborted by the coordinator")
            if time.monotonic() > deadline:
                raise ShardLost(f"could not send to the other shards within {DELIVER_TIMEOUT_S:.0f}s")

    def _check_sent(self) -> None:
        still = []
        for dest, fut in self._sent:
            if not fut.done():
                still.append((dest, fut))
                continue
            try:
                fut.result()
            except Exception as exc:
                if is_lost(exc):
                    raise ShardLost(f"shard {dest} unreachable: {type(exc).__name__}: {exc}") from None
                raise
        self._sent = still

    def drain(self, timeout: float) -> None:
        """Wait for the deliveries by actor call still in flight (a delivery reaching a released
        actor is an error in the receiving worker's log), then close the sockets."""
        deadline = time.monotonic() + timeout
        for _, fut in self._sent:
            try:
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:
                pass  # the simulation is over; a lost or slow peer changes nothing now
        self._sent = []
        self.close()

    def abort(self) -> None:
        """Make a waiting shard raise :class:`ShardLost` now (any thread)."""
        self.abort_flag.set()
        links = self.links
        if links is not None:
            links.wake()

    def close(self) -> None:
        links, self.links = self.links, None
        if links is not None:
            links.close()
