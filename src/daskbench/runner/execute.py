"""Worker side: run a chunk of trials, each with its own row and its own failure.

A chunk is one Dask task holding many short trials, so the ~2 ms scheduling
cost per task is paid once per chunk. Every trial is isolated: an exception,
a bad return value or a timeout marks that trial alone.

Most chunks are short trials called in the worker's own thread, without a timeout
or a pruner: those run in a loop that does per trial only what such a trial needs
(its keyword arguments, two clock readings, its metrics appended to the chunk's
columns, :class:`~daskbench.results.chunk.ChunkRows`); a trial that raises or returns
anything but plain metrics is settled by the per-trial path every other chunk takes
(a row per trial, :mod:`.one_trial`), from that first run on. Both give the same table.

A chunk may be given a time budget: it starts no trial once it has run that long,
and its result holds the trials that ran (at least one); the driver sends the rest
again (:meth:`daskbench.runner.chunking.ChunkSizer.budget`).
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ..observe import live
from ..results import row as trow
from ..results.chunk import ChunkRows
from ..results.row import Row, Status
from ..sweep.batch import SliceColumns
from . import prune
from .invoke import resolve_target, swept_names
from .normalise import normalise
from .one_trial import run_trial, settle
from .spec import ChunkItem, ChunkResult, GroupKey, TrialSpec, load_spec, unpack_chunk

__all__ = ["normalise", "run_chunk", "run_packed"]


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "driver"


def run_chunk(
    spec: TrialSpec, items: Union[bytes, Sequence[ChunkItem]], budget_s: Optional[float] = None
) -> ChunkResult:
    """Run each trial of the chunk in turn; never raises for a trial's fault. With a
    ``budget_s``, no trial starts once the chunk has run that long: the result holds
    the first trials only (at least one), and the driver sends the rest again."""
    chunk, uniform = unpack_chunk(items) if isinstance(items, bytes) else (items, False)
    for p in spec.sys_path:
        if p not in sys.path:
            sys.path.append(p)
    worker = _worker_address()
    tables: Dict[str, List[Any]] = {}
    calls = _fast_calls(spec, chunk, uniform)
    if calls is not None:
        rows = _run_columns(spec, chunk, worker, tables, calls, budget_s)
        return _summary(
            rows.table(), _merged(tables), rows.statuses(), rows.durations, lambda i: rows.ended[i]["error"]
        )
    table_rows: List[Row] = []
    began = time.perf_counter()
    for item in chunk:
        if table_rows and budget_s is not None and time.perf_counter() - began >= budget_s:
            break
        table_rows.append(run_trial(spec, item, worker, tables))
    return _result(spec, chunk[: len(table_rows)], table_rows, _merged(tables))


def run_packed(token: str, spec: bytes, items: bytes, budget_s: Optional[float] = None) -> ChunkResult:
    """The task the driver submits: :func:`run_chunk` with the run's spec as
    :func:`~daskbench.runner.spec.dump_spec` pickled it once (unpickled once per worker)."""
    return run_chunk(load_spec(token, spec), items, budget_s)


def _merged(tables: Dict[str, List[Any]]) -> Dict[str, Any]:
    """The per-step tables of the chunk's trials, one per dataset."""
    merged = {}
    if tables:
        import pyarrow as pa

        for name, parts in tables.items():
            try:
                merged[name] = pa.concat_tables(parts, promote_options="permissive")
            except pa.ArrowInvalid:
                merged[name] = pa.concat_tables([p.cast(parts[0].schema) for p in parts])
    return merged


def _result(spec: TrialSpec, chunk: Sequence[ChunkItem], rows: List[Row], tables: Dict[str, Any]) -> ChunkResult:
    """The chunk's rows (dicts) as one table with their swept columns, and what the driver counts."""
    from ..results.columns import rows_to_table

    statuses = [str(r["status"]) for r in rows]
    errors = [r.get("error") for r in rows]
    for item, r in zip(chunk, rows):
        r.update(item.groups)  # the swept values, named exactly as the keys
        r.update(item.params)
        for key in spec.hidden:
            r.pop(key, None)
    return _summary(rows_to_table(rows), tables, statuses, [r["duration_s"] for r in rows], errors.__getitem__)


def _summary(
    table: Any, tables: Dict[str, Any], statuses: List[str], durations: List[float], error: Callable[[int], Any]
) -> ChunkResult:
    """A chunk's result: its table and tables, and what the driver counts (``error(i)``: trial i's error)."""
    counts = dict(Counter(statuses))
    n = len(statuses)
    if counts.get(Status.OK, 0) == n:
        ok: Any = zip(durations, range(n))
    else:
        ok = [(d, i) for i, (d, s) in enumerate(zip(durations, statuses)) if s == Status.OK]
    errors: List[Tuple[int, str]] = []
    if counts.get(Status.OK, 0) + counts.get(Status.TIMEOUT, 0) + counts.get(Status.PRUNED, 0) < n:
        for i, s in enumerate(statuses):
            if s not in (Status.OK, Status.TIMEOUT, Status.PRUNED):
                errors.append((i, str(error(i))))
                if len(errors) == 5:
                    break
    total = sum(durations)
    return ChunkResult(
        table,
        tables,
        counts=counts,
        compute_s=total if math.isfinite(total) else 0.0,
        slowest=heapq.nlargest(5, ok),
        errors=errors,
    )


# -- the fast loop --------------------------------------------------------------------
Calls = Dict[GroupKey, Tuple[Callable[..., Any], Dict[str, Any]]]


def _fast_calls(spec: TrialSpec, chunk: Sequence[ChunkItem], uniform: bool = False) -> Optional[Calls]:
    """Per group choice, the trial's function and its keyword arguments but the swept ones,
    when the chunk may run in the fast loop: trials called in this thread as they are (no
    timeout, no child process, no pruner, no Hydra to resolve them), each setting the same
    top-level ``trial.x`` keys, none named as a column daskbench writes. Else None."""
    if not chunk or not spec.fast or spec.timeout_s or spec.in_process or spec.prune:
        return None
    keys, groups = chunk[0].params.keys(), [g for g, _ in chunk[0].groups]
    if swept_names(keys) is None or trow.RESERVED.intersection((*keys, *groups)):
        return None
    if not uniform and not all(t.params.keys() == keys for t in chunk):  # a recipe's slice: by construction
        return None
    if groups and any([g for g, _ in t.groups] != groups for t in chunk):
        return None
    calls: Calls = {}
    for t in [chunk[0]] if uniform else chunk:  # a recipe's slice: one choice of groups, none
        if t.groups not in calls:
            try:
                base = dict(spec.bases[t.groups])
                fn = resolve_target(base.pop("_target_"))
            except Exception:  # each trial records the failure (to import it...), as the per-trial path does
                return None
            calls[t.groups] = (fn, base)
    return calls


def _swept(spec: TrialSpec, chunk: Sequence[ChunkItem]) -> Dict[str, List[Any]]:
    """The chunk's swept columns (group choices, then values), the hidden keys left out."""
    if isinstance(chunk, SliceColumns):  # a recipe's slice: its columns as they are
        cols = dict(chunk.params)
    else:
        first = chunk[0]
        cols = {g: [t.groups[j][1] for t in chunk] for j, (g, _) in enumerate(first.groups)}
        for k in first.params:
            cols[k] = [t.params[k] for t in chunk]
    for k in spec.hidden:
        cols.pop(k, None)
    return cols


def _run_columns(
    spec: TrialSpec,
    chunk: Sequence[ChunkItem],
    worker: str,
    tables: Dict[str, List[Any]],
    calls: Calls,
    budget_s: Optional[float] = None,
) -> ChunkRows:
    """The fast loop: each trial called in this thread, its metrics appended to the chunk's
    columns; none started past ``budget_s`` (the first always is)."""
    clock = time.perf_counter
    until = math.inf if budget_s is None else clock() + budget_s
    if isinstance(chunk, SliceColumns):
        ids, seeds, replicates = chunk.ids, chunk.seeds, chunk.replicates
    else:
        ids, seeds, replicates = [t.trial_id for t in chunk], [t.seed for t in chunk], [t.replicate for t in chunk]
    rows = ChunkRows(
        ids,
        seeds,
        replicates,
        _swept(spec, chunk),
        spec.hidden,
        worker,
        clock(),
        time.time_ns() // 1000,
    )
    names = swept_names(chunk[0].params)
    assert names is not None
    take, flush, tracked = rows.take, live.flush, prune.tracked
    unsent, (steps, marked) = live.unsent(), prune.tracking()  # empty unless trials report
    cursor = live.TrialCursor(spec.experiment, spec.run_id, spec.prune)
    token = live.set_current(cursor)  # one context for the chunk: the cursor tells its trials apart
    try:
        for j, tid, fn, kwargs in _calls(chunk, calls, names):
            t0 = clock()
            if t0 >= until and j:
                break
            cursor.trial_id = tid
            try:
                value = fn(**kwargs)
            except Exception as exc:  # a trial's own failure: settled as the per-trial path does
                rows.row(settle(spec, chunk[j], worker, tables, rows, t0, exc=exc), t0)
                continue
            duration = clock() - t0
            # the common case: plain values of the metrics met before, and nothing to tidy for pruning
            if type(value) is dict and not ((steps or marked) and tracked(tid)) and take(value, t0, duration):
                if unsent:
                    flush(tid)  # its last throttled report
                continue
            rows.row(settle(spec, chunk[j], worker, tables, rows, t0, value=value), t0)
    finally:
        cursor.trial_id = None
        live.reset_current(token)
    rows.cut_to_ran()
    return rows


def _calls(
    chunk: Sequence[ChunkItem], calls: Calls, names: Dict[str, str]
) -> Iterator[Tuple[int, str, Callable[..., Any], Dict[str, Any]]]:
    """Each trial's index, id, function and keyword arguments, in order; a recipe's slice
    read from its columns, with no object built per trial."""
    if isinstance(chunk, SliceColumns):
        fn, base = calls[()]
        named = [(names[k], col) for k, col in chunk.params.items()]
        for j, tid in enumerate(chunk.ids):
            kwargs = base.copy()
            for name, col in named:
                kwargs[name] = col[j]
            yield j, tid, fn, kwargs
        return
    for j, item in enumerate(chunk):
        fn, base = calls[item.groups]
        kwargs = base.copy()
        for k, v in item.params.items():
            kwargs[names[k]] = v
        yield j, item.trial_id, fn, kwargs
