"""What the driver sends a worker and gets back: the run's :class:`TrialSpec`, the
chunk's :class:`Item`\\ s, and the :class:`ChunkResult`.

A chunk is pickled per task, so these stay plain and cheap; this module imports
nothing heavy (a worker unpickling a spec imports it). The spec is pickled once
per run (:func:`dump_spec`) and every task carries those bytes with a token: the
scheduler copies bytes instead of pickling the spec per task, and a worker
unpickles it once per run (:func:`load_spec`), not once per chunk.
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from ..results.row import Row
from ..sweep.batch import AxisTrials, TrialSlice
from ..sweep.identity import SEED_KEY
from ..sweep.trial import Trial

if TYPE_CHECKING:  # the driver's side only: workers never compose configs
    from ..config.compose import RunPlan

#: a combination of swept config-group choices, e.g. (("model", "mm1"),)
GroupKey = Tuple[Tuple[str, str], ...]


@dataclass
class TrialSpec:
    """What every trial of one run shares; sent along with each chunk.

    ``bases`` maps a group-choice combination to the trial's keyword arguments
    (``fast``) or to the whole unresolved config (otherwise, resolved per trial).
    """

    target: str
    fast: bool
    bases: Dict[GroupKey, Dict[str, Any]]
    retries: int = 0
    timeout_s: Optional[float] = None
    sys_path: List[str] = field(default_factory=list)
    experiment: str = ""
    run_id: str = ""
    isolation: str = "auto"
    quarantine: bool = False  # its worker died running it: a child process with the worker's memory limit
    prune: bool = False  # sweep.pruner: the driver may stop a trial at a reported step
    hidden: Tuple[str, ...] = ()  # swept keys that are no column of their own (a spawned trial.seed)

    @property
    def in_process(self) -> bool:
        """Whether each trial runs in a child process of its own."""
        return self.quarantine or self.isolation == "process" or (self.isolation == "auto" and bool(self.timeout_s))


class Item(NamedTuple):
    """One trial of a chunk, as the worker needs it (a tuple: cheap to pickle)."""

    trial_id: str
    groups: GroupKey
    params: Dict[str, Any]
    seed: Optional[int]
    replicate: int


#: one trial of a chunk on the worker: an Item, or a Trial (its fields by the same names)
ChunkItem = Union[Item, Trial]


@dataclass
class ChunkResult:
    """A chunk's rows for the ``trials`` table as one Arrow table, built on the worker
    (:func:`daskbench.results.columns.rows_to_table`, the swept columns included),
    Arrow tables for per-step datasets, and what the driver counts, so that it
    touches no row of a chunk that went as expected."""

    table: Any  # pyarrow.Table, one row per trial of the chunk
    tables: Dict[str, Any]  # dataset name -> pyarrow.Table
    counts: Dict[str, int] = field(default_factory=dict)  # status -> trials
    compute_s: float = 0.0  # the trials' duration_s, summed
    slowest: List[Tuple[float, int]] = field(default_factory=list)  # up to 5 ok: (duration_s, index)
    errors: List[Tuple[int, str]] = field(default_factory=list)  # the first 5 failed: (index, error)

    @property
    def n(self) -> int:
        return int(self.table.num_rows)

    def rows(self) -> List[Row]:
        """The rows as dicts (column -> value), for the driver's slow paths."""
        return list(self.table.to_pylist())

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        # Each table as one Arrow IPC stream: pickled as it is, a table is a buffer per
        # column buffer, each a frame of its own in Dask's messages, and fetching a
        # refill's results took 2-3x as long (BENCHMARKS.md, "fetching results")
        return (
            _restored,
            (
                _ipc(self.table),
                {k: _ipc(t) for k, t in self.tables.items()},
                self.counts,
                self.compute_s,
                self.slowest,
                self.errors,
            ),
        )


def _ipc(table: Any) -> bytes:
    """A table as the bytes of one Arrow IPC stream."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> Any:
    import pyarrow as pa

    return pa.ipc.open_stream(data).read_all()


def _restored(table: bytes, tables: Dict[str, bytes], *rest: Any) -> ChunkResult:
    """A :class:`ChunkResult` from what its ``__reduce__`` gave."""
    return ChunkResult(_from_ipc(table), {k: _from_ipc(t) for k, t in tables.items()}, *rest)


def pack(items: Sequence[Any]) -> bytes:
    """A chunk's items (anything with an :class:`Item`'s fields, e.g. the sweep's
    trials) as one bytes object, a list per field: pickled without a call per item;
    a :class:`~daskbench.sweep.batch.TrialSlice` as its recipe (no trial is built).

    The scheduler and client keep recent messages for debugging; bytes cost a
    fraction of the memory of a million small Python objects held there.
    """
    if isinstance(items, TrialSlice):  # a long axis's chunk: its recipe, the worker builds its trials
        return pickle.dumps(items.packed(), protocol=pickle.HIGHEST_PROTOCOL)
    fields = (
        [t.trial_id for t in items],
        [t.groups for t in items],
        [t.params for t in items],
        [t.seed for t in items],
        [t.replicate for t in items],
    )
    return pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes) -> Sequence[ChunkItem]:
    """The items :func:`pack` packed."""
    return unpack_chunk(data)[0]


def unpack_chunk(data: bytes) -> Tuple[Sequence[ChunkItem], bool]:
    """The items :func:`pack` packed, and whether they are a slice of a recipe (whose
    trials all set the same keys). A slice's trials come as the sweep's
    :class:`~daskbench.sweep.trial.Trial`\\ s, held as columns
    (:class:`~daskbench.sweep.batch.SliceColumns`: the fast loop reads no object per trial)."""
    fields = pickle.loads(data)
    if isinstance(fields[0], AxisTrials):  # a TrialSlice's recipe and where the chunk lies in it
        recipe, start, stop = fields
        return recipe.columns(start, stop), True
    ids, groups, params, seeds, replicates = fields
    return [Item(*f) for f in zip(ids, groups, params, seeds, replicates)], False


def dump_spec(spec: TrialSpec) -> bytes:
    """The spec as the bytes every task of the run carries (pickled once, on the driver)."""
    return pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)


#: specs this worker process has unpickled, by token: a few runs' worth (a kept cluster
#: runs one sweep after another; two at once on a shared cluster)
_SPECS: OrderedDict[str, TrialSpec] = OrderedDict()
_SPECS_KEPT = 8
_specs_lock = threading.Lock()


def load_spec(token: str, data: bytes) -> TrialSpec:
    """The spec :func:`dump_spec` gave ``data``, unpickled once per ``token`` in this process."""
    spec = _SPECS.get(token)
    if spec is None:
        spec = pickle.loads(data)
        with _specs_lock:
            _SPECS[token] = spec
            while len(_SPECS) > _SPECS_KEPT:
                _SPECS.popitem(last=False)
    return spec


def make_spec(rp: RunPlan, run_id: str = "") -> TrialSpec:
    """The per-run payload every chunk carries; picks the fast calling path when
    the trial's keyword arguments need no resolving."""
    value_keys = [a.key for a in rp.plan.axes if not a.is_group]
    trials = {g: tree.get("trial") or {} for g, tree in rp.trial_bases.items()}
    fast = all(k.startswith("trial.") for k in value_keys) and all(
        not _needs_hydra(t, top=True) for t in trials.values()
    )
    bases = trials if fast else rp.trial_bases
    return TrialSpec(
        target=str(next(iter(trials.values()))["_target_"]),
        fast=fast,
        bases=bases,
        retries=int(rp.cfg.retries),
        timeout_s=rp.cfg.timeout_s,
        sys_path=list(dict.fromkeys(rp.sys_path)),
        experiment=rp.cfg.name,
        run_id=run_id,
        isolation=str(rp.cfg.runner.isolation),
        prune=rp.plan.search is not None and rp.plan.search.pruner != "none",
        hidden=(SEED_KEY,) if rp.plan.inject_seed else (),
    )


def _needs_hydra(node: Any, top: bool = False) -> bool:
    """Whether a trial config needs Hydra to resolve it (interpolations, nested targets)."""
    if isinstance(node, str):
        return "${" in node
    if isinstance(node, dict):
        if not top and "_target_" in node:
            return True
        if top and any(k in node for k in ("_partial_", "_convert_", "_args_", "_recursive_")):
            return True
        return any(_needs_hydra(v) for v in node.values())
    if isinstance(node, list):
        return any(_needs_hydra(v) for v in node)
    return False
