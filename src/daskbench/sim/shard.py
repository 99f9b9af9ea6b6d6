"""A shard: the agents of one simulation that one host holds, stepped together.

Pure Python/NumPy: the Dask actor in :mod:`daskbench.sim.actor` and the
in-process host in :mod:`daskbench.sim.host` both wrap this class. One
``step(tick)`` runs every population that has something due or a message
due, keeps the messages for its own agents and returns the rest, per
destination shard, for the host to deliver before they are due.

A tick at which a shard has nothing due changes nothing on it: stepping it is
a no-op. So shards may step ticks the whole simulation skips (fast-forward),
and its ``next_due`` (populations, messages waiting, messages it sent that are
not yet due) is the earliest tick at which anything can happen because of it.
"""

from __future__ import annotations

import pickle
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .cut import rotation, rows_of_keys
from .errors import SimulationError
from .inbox import Inbox
from .messages import Batch, Outbox, Parcels, RowsOf, Split, merge
from .model import Agent, Model, ObjectPopulation, Population, Tick
from .rng import AgentRandom


@dataclass
class Layout:
    """Which agent ids belong to which population (contiguous, declaration order)."""

    names: List[str]
    offsets: List[int]  # population i holds ids offsets[i] .. offsets[i+1]-1

    @property
    def n_agents(self) -> int:
        return self.offsets[-1]

    @staticmethod
    def of(model: Model) -> Layout:
        declared = dict(model.populations)
        if not declared:
            raise SimulationError(
                f"{type(model).__name__}.populations is empty; declare {{name: Population or Agent subclass}}"
            )
        for name, cls in declared.items():
            if not (isinstance(cls, type) and issubclass(cls, (Population, Agent))):
                raise SimulationError(
                    f"{type(model).__name__}.populations[{name!r}] is {cls!r}; give a subclass of "
                    "daskbench.sim.Population (columnar) or daskbench.sim.Agent (plain objects)"
                )
        sizes = dict(model.sizes())
        unknown = [k for k in sizes if k not in declared]
        if unknown:
            raise SimulationError(
                f"{type(model).__name__}.sizes() names agent type {unknown[0]!r}, which the model does not "
                f"declare; its populations are {', '.join(declared)}"
            )
        offsets, names = [0], []
        for name in declared:
            count = sizes.get(name, 0)
            if not (isinstance(count, (int, np.integer)) and count >= 0):
                raise SimulationError(f"{type(model).__name__}.sizes()[{name!r}] = {count!r}; give a whole number >= 0")
            names.append(name)
            offsets.append(offsets[-1] + int(count))
        if offsets[-1] == 0:
            raise SimulationError(f"{type(model).__name__} has no agents: sizes() gave {sizes}")
        return Layout(names, offsets)


@dataclass
class StepReport:
    """What a shard tells the coordinator after one tick."""

    tick: int
    partials: Dict[str, Any]
    next_due: Optional[int]
    local: int  # messages sent to agents on this shard
    remote: int  # messages sent to agents on other shards
    agent_steps: int
    seconds: float = 0.0  # time spent stepping: the populations, cutting and queuing their messages
    active: bool = True  # a population stepped (a tick with nothing due anywhere is skipped)


def _spaced_rows(first: int, stride: int) -> RowsOf:
    """Global ids -> rows (``intp``, the dtype ``bincount`` counts without a copy), for a
    population's ids ``first``, ``first + stride``, ... here: one pass over the ids."""
    shift = stride.bit_length() - 1
    if stride == 1 << shift and 0 <= first < stride:
        # one shard (ids from 0), or round robin on a power of two: (first + stride * r) >> shift is r
        if shift == 0:
            return _as_rows

        def shifted(dst: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
            out = _as_rows(dst, out)
            return np.right_shift(out, shift, out=out)

        return shifted

    def rows(dst: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        out = _as_rows(dst, out)
        np.subtract(out, first, out=out)
        return out if stride == 1 else np.floor_divide(out, stride, out=out)

    return rows


def _as_rows(dst: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``dst`` as ``intp`` (into ``out``): a plain cast, 2-3x faster than a ufunc casting as it goes."""
    if out is None:
        return dst.astype(np.intp)
    np.copyto(out, dst)
    return out


def _table_rows(table: np.ndarray) -> RowsOf:
    """Global ids -> rows, looked up in ``table`` (the row of each global id, -1 elsewhere)."""
    # ids were checked when sent: "clip" changes nothing, and unlike "raise" writes into out unbuffered
    return lambda dst, out=None: np.take(table, dst, out=out, mode="clip")


class Shard:
    """The populations of one shard and its message queues."""

    def __init__(
        self, model: Model, index: int, assign: np.ndarray, layout: Layout, seed: int, tick_seconds: float = 1.0
    ):
        self.model = model
        self.delay = int(getattr(model, "message_delay", None) or 1)
        self.lookahead = 1  # the clock's; a message due sooner is an error (set by the host)
        self.index = index
        self.n_shards = int(assign.max()) + 1
        self.layout = layout
        self.seed = int(seed)
        self.tick_seconds = tick_seconds
        mine = np.flatnonzero(assign == index)
        n = layout.n_agents
        self.owner: Callable[[Any], Any]  # global agent id(s) -> the shard that holds them
        self.rotate = 0  # r > 0: round robin on 2**r shards, messages without order cut as keys (sim.cut)
        if self.n_shards == 1 or np.array_equal(assign, np.arange(n) % self.n_shards):
            self.rotate = rotation(n, self.n_shards)
            # round robin: arithmetic instead of a lookup in an array as long as the model
            s = self.n_shards
            if s & (s - 1) == 0:  # a power of two: a bitwise and is 5x cheaper than %
                mask = s - 1
                self.owner = lambda dst: dst & mask
            else:
                self.owner = lambda dst: dst % s
        else:
            self.owner = lambda dst: assign[dst]
        self.pops: List[Tuple[str, Population, int, int]] = []
        self.row_fns: List[RowsOf] = []
        table = None
        for i, name in enumerate(layout.names):
            lo, hi = layout.offsets[i], layout.offsets[i + 1]
            ids = mine[(mine >= lo) & (mine < hi)]
            cls = model.populations[name]
            pop: Population = ObjectPopulation(cls) if issubclass(cls, Agent) else cls()
            pop._bind(name, ids, model, seed)
            stride = int(ids[1] - ids[0]) if len(ids) > 1 else 1
            if len(ids) and stride > 0 and int(ids[-1]) == int(ids[0]) + stride * (len(ids) - 1):
                # evenly spaced ids (one shard, or round robin): a row is arithmetic
                first = int(ids[0])
                self.row_fns.append(_spaced_rows(first, stride))
            else:
                if table is None:  # row of each global id in its population's arrays here
                    table = np.full(n, -1, dtype=np.intp)
                table[ids] = np.arange(len(ids))
                self.row_fns.append(_table_rows(table))
            self.pops.append((name, pop, lo, hi))
        self._pending: Dict[int, List[Tuple[int, Dict[str, Batch]]]] = {}  # due tick -> deliveries
        self._lock = threading.Condition()  # deliveries may come from other threads
        self._due: List[Optional[int]] = [0 if p.n else None for _, p, _, _ in self.pops]
        self._sent_due: List[int] = []  # due ticks of messages sent to other shards, not yet due
        self._unsettled: Optional[Split] = None  # the last step's messages, this shard's part not yet cut

    @property
    def n_agents(self) -> int:
        return sum(p.n for _, p, _, _ in self.pops)

    def setup(self) -> None:
        for _, pop, _, _ in self.pops:
            if pop.n:
                pop.setup(AgentRandom(pop.ids, self.seed, -1))

    def deliver(self, src_shard: int, parcels: Parcels) -> None:
        """Messages from shard ``src_shard``, by due tick (may run on another thread)."""
        if not parcels:
            return
        with self._lock:
            for due, batches in parcels.items():
                self._pending.setdefault(due, []).append((src_shard, batches))

    def _take_inbox(self, tick: int) -> Dict[str, List[Batch]]:
        self.settle()
        with self._lock:
            ready = [t for t in self._pending if t <= tick]
            deliveries = [d for t in sorted(ready) for d in self._pending.pop(t)]
        return merge(deliveries)

    def _next_due(self) -> Optional[int]:
        """The earliest tick anything can happen because of this shard."""
        own = [] if self._unsettled is None else list(self._unsettled.local_due)
        with self._lock:
            known = [d for d in self._due if d is not None] + list(self._pending) + self._sent_due + own
        return min(known) if known else None

    def step(self, tick: int) -> Tuple[Dict[int, Parcels], StepReport]:
        t0 = time.perf_counter()
        inbox = self._take_inbox(tick)
        outbox = Outbox(self.layout.n_agents, tick, self.delay, self.lookahead, self.rotate)
        active = False
        steps = 0
        sim_time = tick * self.tick_seconds
        for i, (_name, pop, lo, hi) in enumerate(self.pops):
            boxes: Dict[str, Inbox] = {}
            whole = lo == 0 and hi == self.layout.n_agents  # the only population: every message is its
            # a whole population's rows under round robin on 2**r shards are the keys' low bits
            keyed = (self.rotate, rows_of_keys(self.rotate)) if whole and self.rotate else None
            for kind, batches in inbox.items():
                mine = batches if whole else _within(batches, lo, hi)
                if mine:
                    boxes[kind] = Inbox(mine, self.row_fns[i], pop.n, kind, keyed)
            due = self._due[i]
            if pop.n and (boxes or (due is not None and due <= tick)):
                pop.step(
                    Tick(
                        tick,
                        sim_time,
                        self.model,
                        self.layout.n_agents,
                        AgentRandom(pop.ids, self.seed, tick),
                        boxes,
                        outbox,
                        self.row_fns[i],
                        pop.n,
                    )
                )
                steps += pop.agent_steps()
                self._due[i] = pop.next_activity(tick)
                active = True
        split = outbox.split(self.owner, self.n_shards, self.index)
        self._unsettled = split  # its own part is cut by settle(), once the others' are sent
        remote = split.remote
        self._sent_due = [d for d in self._sent_due if d > tick]
        self._sent_due.extend(sorted({d for parcels in remote.values() for d in parcels} - set(self._sent_due)))
        report = StepReport(
            tick,
            self.observe(),
            self._next_due(),
            split.n_local,
            split.n_remote,
            steps,
            time.perf_counter() - t0,
            active,
        )
        return remote, report

    def settle(self) -> float:
        """Queue this shard's own part of what its last step sent; the seconds it took. The window
        calls it after sending the other shards theirs, so that cutting it overlaps their transfer
        (and adds the time to the step's report); whatever reads the queues (the next step, a
        snapshot) calls it first."""
        split, self._unsettled = self._unsettled, None
        if split is None:
            return 0.0
        t0 = time.perf_counter()
        self.deliver(self.index, split.local())
        return time.perf_counter() - t0

    def observe(self) -> Dict[str, Any]:
        """The populations' partial reporters, summed over this shard's populations."""
        total: Dict[str, Any] = {}
        for name, pop, _, _ in self.pops:
            if not pop.n:
                continue
            for key, value in dict(pop.observe()).items():
                add_partial(total, str(key), value, name)
        return total

    def agent_report(self) -> List[Tuple[str, np.ndarray, Dict[str, np.ndarray]]]:
        """Per population: (name, ids, {column: values}) for the ``agents`` table."""
        out = []
        for name, pop, _, _ in self.pops:
            if not pop.n:
                continue
            cols = {}
            for key, values in dict(pop.agent_report()).items():
                arr = np.array(values, copy=True)  # the population goes on changing its own arrays
                if arr.shape != (pop.n,):
                    raise SimulationError(
                        f"agent reporter {key!r} of population {name!r} returned shape {arr.shape}; "
                        f"return one scalar per agent (shape ({pop.n},))"
                    )
                cols[str(key)] = arr
            if cols:
                out.append((name, pop.ids, cols))
        return out

    def snapshot(self) -> bytes:
        """Everything needed to continue from here: populations, due ticks, messages in flight."""
        self.settle()
        with self._lock:
            pending = dict(self._pending)
        state = ([p for _, p, _, _ in self.pops], self._due, pending, self._sent_due)
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, snapshot: bytes) -> None:
        pops, due, pending, self._sent_due = pickle.loads(snapshot)
        self._unsettled = None
        self.pops = [(name, pop, lo, hi) for (name, _, lo, hi), pop in zip(self.pops, pops)]
        for _, pop, _, _ in self.pops:
            pop.model = self.model
            if isinstance(pop, ObjectPopulation):
                for a in pop.agents:
                    a.model = self.model
        self._due = due
        with self._lock:
            self._pending = pending


def _within(batches: List[Batch], lo: int, hi: int) -> List[Batch]:
    """The messages of ``batches`` to ids ``lo`` .. ``hi - 1``, in order."""
    mine = []
    for b in batches:
        sel = (b.dst >= lo) & (b.dst < hi)
        if sel.all():
            mine.append(b)
        elif sel.any():
            mine.append(b.take(np.flatnonzero(sel)))
    return mine


def add_partial(total: Dict[str, Any], key: str, value: Any, where: str) -> None:
    """Add one partial reporter value into ``total`` (numbers add, arrays add elementwise)."""
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if isinstance(value, (int, float, np.number)):
        pass
    elif isinstance(value, np.ndarray) and value.dtype.kind in "iufb":
        pass
    else:
        raise SimulationError(
            f"observe() of {where!r} returned {key!r} = {type(value).__name__}; partial reporters are "
            "numbers or numeric arrays, summed over shards"
        )
    if key not in total:
        total[key] = value
        return
    prev = total[key]
    if isinstance(prev, np.ndarray) or isinstance(value, np.ndarray):
        a, b = np.atleast_1d(prev), np.atleast_1d(value)
        if a.shape != b.shape:  # e.g. histograms: pad the shorter one
            n = max(len(a), len(b))
            a = np.pad(a, (0, n - len(a)))
            b = np.pad(b, (0, n - len(b)))
        total[key] = a + b
    else:
        total[key] = prev + value
