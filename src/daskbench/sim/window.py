"""Windows of ticks: what the shards run between two calls of the coordinator.

The coordinator hands every shard the same window, ``[start, until)``: ``start``
is a tick the simulation runs, ``until`` a tick it must not reach (the next
agent report, checkpoint or coordinator check). Inside it the shards keep each
other in step without the coordinator (the barrier between shards): after each
tick a shard sends every other shard an *envelope* (the tick, its ``next_due``
and the messages for that shard, often none: an empty envelope is a message
too), and it steps on once it holds what it needs:

- ``lookahead`` 1: every other shard's envelope of the tick it just ran. Then
  every shard knows every shard's ``next_due``, so all of them pick the same
  next tick (fast-forward over idle ticks, as :meth:`Clock.next` does) on their own.
- ``lookahead`` L > 1 (every message is due at least L ticks after it is sent):
  shards send their envelopes once every L ticks, and step tick ``u`` once they
  hold every envelope up to ``u - L``, so a shard is never more than one
  exchange behind. They step every tick of the window (a tick with nothing due
  is a no-op on a shard); :func:`chain` keeps only the ticks the simulation runs.

The shards hand the coordinator their :class:`StepReport` of every tick they ran;
:func:`chain` turns them into the ticks of the ``steps`` table and the next tick.
Pure Python: the Dask actor and the in-process host both use it.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .clock import Clock
from .errors import SimulationError
from .messages import Parcels
from .shard import Shard, StepReport

#: what one shard sends another per tick: (tick, the sender's next_due, messages for the receiver)
Entry = Tuple[int, Optional[int], Parcels]


def chain(
    clock: Clock, start: int, until: int, reports: Sequence[Sequence[StepReport]]
) -> Tuple[List[Tuple[int, List[StepReport]]], Optional[int]]:
    """The ticks the simulation ran in ``[start, until)``, each with every shard's report,
    and the tick it runs next (None: the end), as lockstep fast-forward decides them."""
    by_tick: List[Dict[int, StepReport]] = [{r.tick: r for r in shard} for shard in reports]
    out: List[Tuple[int, List[StepReport]]] = []
    tick: Optional[int] = start
    while tick is not None and tick < until:
        rs = [b.get(tick) for b in by_tick]
        missing = [i for i, r in enumerate(rs) if r is None]
        if missing:
            raise SimulationError(f"shard {missing[0]} did not run tick {tick} of the window [{start}, {until})")
        got = [r for r in rs if r is not None]
        out.append((tick, got))
        tick = clock.next(tick, [r.next_due for r in got], False)
    return out, tick


class Exchange:
    """The envelopes a shard has received: per tick, which shards sent theirs, with their next_due."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._got: Dict[int, Dict[int, Optional[int]]] = {}

    def arrive(self, src: int, entries: Sequence[Tuple[int, Optional[int]]]) -> None:
        with self._cond:
            for tick, due in entries:
                self._got.setdefault(tick, {})[src] = due
            self._cond.notify_all()

    def wait(self, tick: int, sources: Sequence[int], timeout: float) -> bool:
        """Wait until every shard in ``sources`` has sent its envelope of ``tick``; False on timeout."""
        want = set(sources)
        with self._cond:
            return self._cond.wait_for(lambda: want <= self._got.get(tick, {}).keys(), timeout)

    def dues(self, tick: int) -> List[Optional[int]]:
        """The other shards' next_due after ``tick``; forgets ``tick`` and what came before."""
        with self._cond:
            got = self._got.pop(tick, {})
            for t in [t for t in self._got if t < tick]:
                del self._got[t]
        return list(got.values())


def run_window(
    shard: Shard,
    clock: Clock,
    start: int,
    until: int,
    lookahead: int,
    peers: Sequence[int],
    send: Callable[[int, List[Entry]], None],
    wait: Callable[[int], None],
    dues: Callable[[int], List[Optional[int]]],
) -> Tuple[List[StepReport], Optional[int]]:
    """Run one shard through the window; returns its report of every tick it ran and the
    tick it runs next (where the next window starts; None: the simulation's end).

    ``send(peer, entries)`` hands envelopes to another shard without waiting;
    ``wait(tick)`` returns once every peer's envelope of ``tick`` is in (the
    messages it carried delivered into ``shard``); ``dues(tick)`` gives the
    peers' next_due of a tick waited for.
    """
    shard.lookahead = lookahead
    reports: List[StepReport] = []
    outgoing: Dict[int, List[Entry]] = {p: [] for p in peers}
    unsent: List[int] = []  # ticks run whose envelopes are not sent yet (lookahead > 1)
    sent: List[int] = []  # ticks whose peers' envelopes are not all in yet (lookahead > 1)
    tick: Optional[int] = start
    while tick is not None and tick < until:
        while sent and sent[0] <= tick - lookahead:
            _received(sent.pop(0), wait, dues)
        remote, report = shard.step(tick)
        reports.append(report)
        for p in peers:
            outgoing[p].append((tick, report.next_due, remote.get(p, {})))
        if lookahead == 1:
            _flush(outgoing, send)
            report.seconds += shard.settle()  # its own messages, while the others' travel
            wait(tick)
            tick = clock.next(tick, [report.next_due, *dues(tick)], False)
            continue
        unsent.append(tick)
        nxt = tick + 1
        if (nxt - start) % lookahead == 0 or nxt >= min(until, clock.end):
            _flush(outgoing, send)
            report.seconds += shard.settle()
            sent.extend(unsent)
            unsent = []
        tick = nxt if nxt < clock.end else None
    _flush(outgoing, send)
    for t in sent + unsent:  # the window ends with every message sent in it delivered
        _received(t, wait, dues)
    return reports, tick


def _received(tick: int, wait: Callable[[int], None], dues: Callable[[int], List[Optional[int]]]) -> None:
    wait(tick)
    dues(tick)  # not needed (the coordinator picks the ticks that ran): forget them


def _flush(outgoing: Dict[int, List[Entry]], send: Callable[[int, List[Entry]], None]) -> None:
    for p, entries in outgoing.items():
        if entries:
            send(p, entries)
            outgoing[p] = []
