"""Messages between agents: what a step sends, and what the next step receives.

Messages are columnar: one :class:`Batch` per kind holds the destination ids,
the sender ids and one array per field. A message sent at tick ``t`` is *due* at
``t + delay`` (``delay`` is the model's ``message_delay``, 1 unless it declares
one, or the ``delay=`` of the send) and its receiver sees it at the first tick it
runs at or after that. A shard keeps the messages whose receiver it holds and
hands the rest, as *parcels* (due tick -> kind -> batch), one per destination
shard, to the host to deliver.

What the receivers see of them is an :class:`daskbench.sim.inbox.Inbox`: sorted by
(receiver, sender), so the order does not depend on the sharding, as long as every
message from one sender comes from the one shard that holds it, in the order its
step sent them. Messages that are only counted (anonymous, no fields) have no
order to keep, which lets :mod:`daskbench.sim.cut` cut them more cheaply.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Dict, Iterable, List, Mapping, Set, Tuple

import numpy as np

from .cut import cut, ids_of, keys_of
from .errors import SimulationError


class Batch:
    """Messages of one kind: ``dst`` and ``src`` (global agent ids; ``src`` None: anonymous)
    and field arrays.

    A batch cut by :mod:`daskbench.sim.cut` holds its receivers as keys (``rotated`` > 0):
    ``dst`` gives their ids (worked out on first use), ``keys`` the keys as they came.
    """

    __slots__ = ("_dst", "src", "fields", "rotated")

    def __init__(self, dst: np.ndarray, src: Any, fields: Dict[str, np.ndarray], rotated: int = 0):
        self._dst = dst
        self.src = src
        self.fields = fields
        self.rotated = rotated

    @property
    def dst(self) -> np.ndarray:
        if self.rotated:
            self._dst, self.rotated = ids_of(self._dst, self.rotated), 0
        return self._dst

    @property
    def keys(self) -> np.ndarray:
        """The receivers as held: keys if ``rotated``, else ids."""
        return self._dst

    def __len__(self) -> int:
        return len(self._dst)

    def __reduce__(self):
        return (Batch, (self._dst, self.src, self.fields, self.rotated))

    def take(self, index: np.ndarray) -> Batch:
        # np.take: faster than indexing with an array, and index is in range by construction
        src = None if self.src is None else np.take(self.src, index)
        return Batch(np.take(self.dst, index), src, {k: np.take(v, index) for k, v in self.fields.items()})

    @staticmethod
    def check(batches: List[Batch], kind: str) -> None:
        """Raise unless the batches of one kind can be read as one (same fields, src or not)."""
        names = set(batches[0].fields)
        anonymous = {b.src is None for b in batches}
        if len(anonymous) > 1:
            raise SimulationError(
                f"messages of kind {kind!r} were sent both with and without src; give src= always or never for a kind"
            )
        for b in batches[1:]:
            if set(b.fields) != names:
                raise SimulationError(
                    f"messages of kind {kind!r} were sent with different fields "
                    f"({sorted(names)} and {sorted(b.fields)}); send the same fields with every message of a kind"
                )

    @staticmethod
    def concat(batches: List[Batch], kind: str) -> Batch:
        if len(batches) == 1:
            return batches[0]
        Batch.check(batches, kind)
        return Batch(
            np.concatenate([b.dst for b in batches]),
            None if batches[0].src is None else np.concatenate([b.src for b in batches]),
            {k: np.concatenate([b.fields[k] for b in batches]) for k in batches[0].fields},
        )


def _column(values: Any, n: int, name: str, kind: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0:
        return np.full(n, arr.item() if arr.dtype != object else values, dtype=arr.dtype)
    if arr.ndim != 1 or len(arr) != n:
        if isinstance(values, (list, tuple)) and len(values) == n:  # one object per message
            out = np.empty(n, dtype=object)
            out[:] = list(values)
            return out
        raise SimulationError(
            f"message field {name!r} of kind {kind!r} has shape {arr.shape}; "
            f"give one value per message ({n}) or one for all"
        )
    return arr


#: messages by due tick, then kind
Parcels = Dict[int, Dict[str, Batch]]

#: receiver ids -> rows in a population's arrays (``numpy.intp``), into ``out`` when given
RowsOf = Callable[..., np.ndarray]


def _delay(delay: Any, kind: str) -> int:
    if isinstance(delay, (int, np.integer)) and not isinstance(delay, bool) and delay >= 1:
        return int(delay)
    raise SimulationError(f"message of kind {kind!r}: delay={delay!r}; give a whole number of ticks >= 1")


class Outbox:
    """What one shard's agents send during one tick, by due tick and kind.

    ``tick``: the tick being stepped; ``delay``: the model's delay (due tick =
    ``tick + delay``); ``lookahead``: the clock's, the least delay a message may have;
    ``rotate``: r > 0 if the shards are 2**r dealt round robin: messages that are only
    counted (anonymous, no fields) are kept as keys and cut as such (:mod:`daskbench.sim.cut`).
    """

    def __init__(self, n_agents: int, tick: int = 0, delay: int = 1, lookahead: int = 1, rotate: int = 0):
        self.n_agents = n_agents
        self.tick, self.delay, self.lookahead, self.rotate = tick, delay, lookahead, rotate
        # ids travel as int32 when they fit: half the bytes between shards
        self.id_dtype = np.int32 if n_agents < 2**31 else np.int64
        self._parts: Dict[Tuple[int, str], List[Batch]] = {}

    def _due(self, delay: Any, kind: str, src: Any) -> int:
        d = self.delay if delay is None else _delay(delay, kind)
        if d < self.lookahead:
            first = None if src is None else int(np.asarray(src).reshape(-1)[0])
            who = "an anonymous sender" if first is None else f"agent {first}"
            raise SimulationError(
                f"message of kind {kind!r} sent by {who} at tick {self.tick} is due {d} tick(s) later, sooner "
                f"than clock.lookahead={self.lookahead}; send it with delay >= {self.lookahead} (the model's "
                "message_delay or send(delay=)) or lower clock.lookahead"
            )
        return self.tick + d

    def send(self, dst: Any, src: Any, kind: str, fields: Mapping[str, Any], delay: Any = None) -> None:
        dst = np.asarray(dst)
        if dst.ndim == 0:
            dst = dst.reshape(1)
        if dst.dtype.kind not in "iu":
            if dst.size == 0:
                dst = dst.astype(np.int64)
            else:
                raise SimulationError(
                    f"message of kind {kind!r}: receiver ids must be integers, got {dst.dtype} ({dst[:3]!r})"
                )
        n = len(dst)
        if n == 0:
            return
        lo, hi = int(dst.min()), int(dst.max())
        if lo < 0 or hi >= self.n_agents:
            bad = lo if lo < 0 else hi
            raise SimulationError(
                f"message of kind {kind!r} to agent id {bad}, which does not exist: the model has "
                f"{self.n_agents} agents (ids 0..{self.n_agents - 1})"
            )
        if src is None:  # anonymous: counts and sums only (see Inbox)
            src = None
        else:
            src = np.asarray(src)
            src = np.full(n, int(src), dtype=self.id_dtype) if src.ndim == 0 else src.astype(self.id_dtype, copy=False)
        if src is not None and len(src) != n:
            raise SimulationError(f"message of kind {kind!r}: {len(src)} sender ids for {n} receivers")
        due = self._due(delay, kind, src)
        cols = {str(k): _column(v, n, str(k), kind) for k, v in fields.items()}
        if src is None and not cols and self.rotate:  # keys of our own, cut in place by split()
            batch = Batch(keys_of(dst, self.rotate), None, cols, self.rotate)
        else:
            batch = Batch(dst.astype(self.id_dtype, copy=False), src, cols)
        self._parts.setdefault((due, kind), []).append(batch)

    def __bool__(self) -> bool:
        return bool(self._parts)

    def split(self, owner: Callable[[np.ndarray], np.ndarray], n_shards: int, me: int) -> Split:
        """What was sent, cut by destination shard (``owner`` maps receiver ids to shards):
        the other shards' parts now, this shard's own when :meth:`Split.local` asks."""
        out = Split()
        for (due, kind), parts in self._parts.items():
            if all(p.rotated for p in parts):
                pieces = _by_key(parts, self.rotate)  # only counted: no order to keep
            else:
                batch = Batch.concat(parts, kind)
                pieces = _whole(batch) if n_shards == 1 else by_shard(batch, owner(batch.dst), n_shards)
            for s, count, part in pieces:
                if s == me:
                    out.todo.append((due, kind, part))
                    out.local_due.add(due)
                    out.n_local += count
                else:
                    out.remote.setdefault(s, {}).setdefault(due, {})[kind] = part()
                    out.n_remote += count
        self._parts = {}
        return out


class Split:
    """One step's messages by destination shard. ``remote``: {shard: its messages}, cut at once;
    the shard's own part is cut by :meth:`local`, later: a shard sends the others their parts
    first and cuts its own while those are on their way (the others wait for theirs, nobody
    waits for this one until the shard's next step)."""

    def __init__(self) -> None:
        self.remote: Dict[int, Parcels] = {}
        self.n_local = self.n_remote = 0
        self.local_due: Set[int] = set()  # due ticks of the shard's own part, known before it is cut
        self.todo: List[Tuple[int, str, Callable[[], Batch]]] = []

    def local(self) -> Parcels:
        """The messages for this shard's own agents (cut on the first call)."""
        out: Parcels = {}
        for due, kind, part in self.todo:
            out.setdefault(due, {})[kind] = part()
        self.todo = []
        return out


#: a batch cut by destination shard: per non-empty part, its shard, its size and a call that cuts it
Pieces = List[Tuple[int, int, Callable[[], Batch]]]


def _whole(batch: Batch) -> Pieces:
    return [(0, len(batch), lambda: batch)]


def _by_key(parts: List[Batch], r: int) -> Pieces:
    """Anonymous messages without fields cut by shard as keys (:mod:`daskbench.sim.cut`): each
    part a view of one array, in no particular order."""
    keys = parts[0].keys if len(parts) == 1 else np.concatenate([p.keys for p in parts])
    pieces: Pieces = []
    start = 0
    for s, end in enumerate(cut(keys, r)):
        if end > start:
            pieces.append((s, end - start, partial(Batch, keys[start:end], None, {}, r)))
        start = end
    return pieces


def _take_where(batch: Batch, mask: np.ndarray, value: bool) -> Batch:
    return batch.take(np.flatnonzero(mask if value else ~mask))


def by_shard(batch: Batch, dest: np.ndarray, n_shards: int) -> Pieces:
    """``batch`` cut by destination shard (``dest``, one per message): per non-empty part, its
    shard, its size and a call that cuts it, in the order the messages were sent.

    Two shards: one mask, and each side is one ``flatnonzero`` and a take, done when its part is
    asked for; up to 16: a mask per shard; more: one stable sort by shard."""
    n = len(batch)
    if n_shards == 2:
        far = dest.astype(np.bool_)
        n_far = int(np.count_nonzero(far))
        if n_far in (0, n):
            return [(1 if n_far else 0, n, lambda: batch)]
        return [
            (0, n - n_far, partial(_take_where, batch, far, False)),
            (1, n_far, partial(_take_where, batch, far, True)),
        ]
    if n_shards <= 16:
        pieces = [(s, np.flatnonzero(dest == s)) for s in range(n_shards)]
    else:
        order = np.argsort(dest, kind="stable")
        shards, starts = np.unique(dest[order], return_index=True)
        ends = list(starts[1:]) + [len(order)]
        pieces = [(s, order[a:b]) for s, a, b in zip(shards.tolist(), starts.tolist(), ends)]
    return [(s, len(i), (lambda: batch) if len(i) == n else partial(batch.take, i)) for s, i in pieces if len(i)]


def merge(deliveries: Iterable[Tuple[int, Dict[str, Batch]]]) -> Dict[str, List[Batch]]:
    """Group delivered batches by kind, in source-shard order (stable: for one source,
    the order they come in, which is by due tick)."""
    out: Dict[str, List[Batch]] = {}
    for _, batches in sorted(deliveries, key=lambda d: d[0]):
        for kind, batch in batches.items():
            out.setdefault(kind, []).append(batch)
    return out
