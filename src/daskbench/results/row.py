"""The ``trials`` row: every column daskbench writes itself, the statuses, the kinds of failure.

This is the one declaration of the table's fixed part. A row is a plain ``dict``
(column name -> value) built by the functions here, on a worker for a trial that
ran and on the driver for a trial that ended without a result of its own (its
worker kept dying, its task failed, the sweep was cancelled). The written table's
columns come in this order:

1. ``trial_id``;
2. one column per swept key, named exactly as the key, in the sweep's order;
3. the trial's metrics, in the order they first appear;
4. the fixed tail, :data:`TAIL`, in its declared order.

Adding a column daskbench writes is one :class:`Column` in :data:`TAIL`: its
name becomes reserved (no metric may take it) and the store types it. Arrow
types are named here as text and resolved by :func:`arrow_type`, so that the
worker side, which builds rows but never writes them, does not import pyarrow.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

#: a row of the trials table: column name -> value
Row = Dict[str, Any]


class Status(enum.StrEnum):
    """How a trial ended. A ``StrEnum``: a status equals, hashes and is written as its text."""

    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    PRUNED = "pruned"  #: stopped early by the search's pruner (sweep.pruner); see last_step


class FailureKind(enum.StrEnum):
    """Why a trial did not end ``ok``: written in the ``failure_kind`` column, and what the
    driver's crash recovery reads (never a prefix of the ``error`` text)."""

    RAISED = "raised"  #: the trial raised an exception
    BAD_RESULT = "bad_result"  #: it returned something that is not metrics and tables
    TIMEOUT = "timeout"  #: it ran past ``timeout_s``
    PROCESS_DIED = "process_died"  #: its child process died without answering (os._exit, a signal)
    OUT_OF_MEMORY = "out_of_memory"  #: it raised MemoryError (in a quarantine: past the worker's memory)
    NEEDS_WORKER = "needs_worker"  #: it ran in a child process and asked for its Dask worker
    WORKER_LOST = "worker_lost"  #: its workers kept dying under it (KilledWorker after crash_retries)
    CHUNK_FAILED = "chunk_failed"  #: its task failed outside any trial (e.g. the chunk could not be sent)
    CANCELLED = "cancelled"  #: the sweep stopped before it finished (Ctrl-C, max_failures)


#: kinds that mean the trial took its own process down: a quarantined trial that
#: fails so is the one that killed its workers
CRASHED = frozenset({FailureKind.PROCESS_DIED, FailureKind.OUT_OF_MEMORY})


@dataclass(frozen=True)
class Column:
    """A column daskbench writes: its name, its Arrow type (see :func:`arrow_type`) and meaning."""

    name: str
    arrow: str
    doc: str


#: the first column of every row
HEAD: Tuple[Column, ...] = (Column("trial_id", "string", "hash of the trial's config content"),)

#: the columns after the swept keys and the metrics, in this order
TAIL: Tuple[Column, ...] = (
    Column("seed", "int64", "the seed the trial was given (spawned per replicate)"),
    Column("replicate", "int64", "replicate number, 0 when there is one"),
    Column("optuna_trial", "int64", "sweep.search=optuna: number of the Optuna trial that asked for the point"),
    Column("status", "string", "one of Status"),
    Column("last_step", "int64", "a pruned trial: the last step it reported"),
    Column("error", "string", "type and message of the failure, for people"),
    Column("failure_kind", "string", "one of FailureKind; null when ok"),
    Column("attempts", "int64", "runs of the trial, counting retries and runs lost with a worker"),
    Column("worker", "string", "address of the worker that ran it last"),
    Column("started_at", "timestamp[us, UTC]", "when its last run started"),
    Column("duration_s", "float64", "wall time of its runs on the worker"),
    Column("code_version", "string", "the code that made the row (results/codeversion.py); null: unknown"),
    Column("traceback", "string", "the failure's traceback, when there is one"),
)

COLUMNS: Dict[str, Column] = {c.name: c for c in HEAD + TAIL}
#: the column that records which code made the row (stamped by the store)
CODE_VERSION = "code_version"
#: names a metric may not take
RESERVED = frozenset(COLUMNS)
TAIL_NAMES: Tuple[str, ...] = tuple(c.name for c in TAIL)
STATUSES: Tuple[str, ...] = tuple(s.value for s in Status)

_TAIL_SET = frozenset(TAIL_NAMES)
#: the types a metric's value has in the common case, written as they are
PLAIN = frozenset({float, int, str, bool, type(None)})

#: the fields of a row that ended ok, beyond its metrics
_OK: Row = {"status": Status.OK, "error": None, "failure_kind": None, "traceback": None}


def order(keys: Iterable[str], first: Iterable[str] = ()) -> List[str]:
    """The column order of a table whose rows hold ``keys`` (in the order they were
    met): ``trial_id``, then ``first`` (the swept keys), then the other keys
    (metrics), then the tail's columns that are present."""
    names: Dict[str, None] = {HEAD[0].name: None}
    for k in first:
        names[k] = None
    for k in keys:
        names.setdefault(k, None)
    return [k for k in names if k not in _TAIL_SET] + [k for k in TAIL_NAMES if k in names]


_ARROW: Dict[str, Callable[[Any], Any]] = {
    "string": lambda pa: pa.string(),
    "int64": lambda pa: pa.int64(),
    "float64": lambda pa: pa.float64(),
    "timestamp[us, UTC]": lambda pa: pa.timestamp("us", tz="UTC"),
}


@functools.cache
def _arrow_types() -> Dict[str, Any]:
    import pyarrow as pa  # here, not at the top: workers build rows without pyarrow

    return {c.name: _ARROW[c.arrow](pa) for c in COLUMNS.values()}


def arrow_type(name: str) -> Any:
    """The ``pyarrow.DataType`` of column ``name``, or None for a swept key or a
    metric (whose type comes from its values)."""
    return _arrow_types().get(name)


# -- building rows ------------------------------------------------------------------
def started(trial_id: str, seed: Optional[int], replicate: int, worker: str) -> Row:
    """The row of a trial about to run on ``worker``; :func:`set_ok` or
    :func:`set_failed` then says how it ended."""
    return {"trial_id": trial_id, "seed": seed, "replicate": replicate, "worker": worker}


def set_ok(row: Row, metrics: Dict[str, Any]) -> None:
    """The trial returned ``metrics``."""
    row.update(metrics)
    row.update(_OK)


def set_failed(row: Row, status: Status, kind: FailureKind, error: str, traceback: Optional[str] = None) -> None:
    """The trial ended ``status`` (failed or timeout) for reason ``kind``."""
    row.update(status=status, error=error, failure_kind=kind, traceback=traceback)


def ended(
    trial_id: str, seed: Optional[int], replicate: int, attempts: int, status: Status, kind: FailureKind, error: str
) -> Row:
    """The row of a trial that ended without a result of its own, written by the driver."""
    return {
        "trial_id": trial_id,
        "seed": seed,
        "replicate": replicate,
        "attempts": attempts,
        "status": status,
        "error": error,
        "failure_kind": kind,
    }


def kind_of(row: Row) -> Optional[FailureKind]:
    """The row's kind of failure, None when it is ok."""
    kind = row.get("failure_kind")
    return None if kind is None else FailureKind(kind)


def kind_of_exception(exc: BaseException) -> FailureKind:
    """The kind of failure of an exception a trial raised."""
    return FailureKind.OUT_OF_MEMORY if isinstance(exc, MemoryError) else FailureKind.RAISED
