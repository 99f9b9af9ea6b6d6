"""Worker side: run a chunk of trials, each with its own row and its own failure.

A chunk is one Dask task holding many short trials, so the ~2 ms scheduling
cost per task is paid once per chunk. Every trial is isolated: an exception,
a bad return value or a timeout marks that trial alone.

Most chunks are short trials called in the worker's own thread, without a timeout
or a pruner: those run in a loop that does per trial only what such a trial needs
(its keyword arguments, two clock readings, its metrics appended to the chunk's
columns, :class:`~daskbench.results.chunk.ChunkRows`); a trial that raises or returns
anything but plain metrics is settled by the per-trial path every other chunk takes
(a row per trial), from that first run on. Both give the same table.

Where a trial runs (``runner.isolation``): ``thread`` calls it in the worker's
own thread (with ``timeout_s``, in a watchdog thread that cannot be stopped);
``process`` runs it in a child process killed at ``timeout_s`` (see
:mod:`daskbench.runner.isolate`); ``auto`` is ``process`` when ``timeout_s`` is set
and ``thread`` otherwise.
"""

from __future__ import annotations

import contextvars
import heapq
import math
import sys
import threading
import time
import traceback
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ..observe import live
from ..results import row as trow
from ..results.chunk import ChunkRows
from ..results.row import FailureKind, Row, Status
from ..sweep.batch import SliceColumns
from . import prune
from .invoke import call_trial, resolve_target, swept_names
from .isolate import TrialProcessError, TrialTimeout
from .normalise import keyed, normalise
from .prune import TrialPruned
from .spec import ChunkItem, ChunkResult, GroupKey, TrialSpec, load_spec, unpack_chunk

__all__ = ["normalise", "run_chunk", "run_packed"]


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "driver"


def _attempt(spec: TrialSpec, gkey: GroupKey, params: Dict[str, Any], context: Optional[live.TrialContext]) -> Any:
    """One run of one trial, where ``spec.isolation`` says."""
    if not spec.timeout_s and not spec.quarantine and spec.isolation != "process":  # in this thread, as it is
        return call_trial(spec.bases[gkey], params, spec.fast)
    if spec.in_process:
        from . import isolate

        return isolate.call(spec, gkey, params, context)
    return _call_with_timeout(spec, gkey, params)


def _call_with_timeout(spec: TrialSpec, gkey: GroupKey, params: Dict[str, Any]) -> Any:
    if not spec.timeout_s:
        return call_trial(spec.bases[gkey], params, spec.fast)
    box: Dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call_trial(spec.bases[gkey], params, spec.fast)
        except BaseException as exc:  # handed back to the calling thread
            box["error"] = exc

    # runner.isolation=thread: Python threads cannot be killed, so a trial past
    # its time is recorded as a timeout and left running in the background.
    ctx = contextvars.copy_context()  # so daskbench.report() knows the trial there too
    t = threading.Thread(target=ctx.run, args=(target,), daemon=True, name="daskbench-trial")
    t.start()
    t.join(spec.timeout_s)
    if t.is_alive():
        raise TrialTimeout(
            f"trial ran longer than timeout_s={spec.timeout_s:g} "
            "(runner.isolation=thread: it may still be running on its worker)"
        )
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_chunk(spec: TrialSpec, items: Union[bytes, Sequence[ChunkItem]]) -> ChunkResult:
    """Run each trial of the chunk in turn; never raises for a trial's fault."""
    chunk, uniform = unpack_chunk(items) if isinstance(items, bytes) else (items, False)
    for p in spec.sys_path:
        if p not in sys.path:
            sys.path.append(p)
    worker = _worker_address()
    tables: Dict[str, List[Any]] = {}
    calls = _fast_calls(spec, chunk, uniform)
    if calls is not None:
        rows = _run_columns(spec, chunk, worker, tables, calls)
        return _summary(
            rows.table(), _merged(tables), rows.statuses(), rows.durations, lambda i: rows.ended[i]["error"]
        )
    table_rows = [_run_trial(spec, item, worker, tables) for item in chunk]
    return _result(spec, chunk, table_rows, _merged(tables))


def run_packed(token: str, spec: bytes, items: bytes) -> ChunkResult:
    """The task the driver submits: :func:`run_chunk` with the run's spec as
    :func:`~daskbench.runner.spec.dump_spec` pickled it once (unpickled once per worker)."""
    return run_chunk(load_spec(token, spec), items)


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
    spec: TrialSpec, chunk: Sequence[ChunkItem], worker: str, tables: Dict[str, List[Any]], calls: Calls
) -> ChunkRows:
    """The fast loop: each trial called in this thread, its metrics appended to the chunk's columns."""
    clock = time.perf_counter
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
            cursor.trial_id = tid
            t0 = clock()
            try:
                value = fn(**kwargs)
            except Exception as exc:  # a trial's own failure: settled as the per-trial path does
                rows.row(_settle(spec, chunk[j], worker, tables, rows, t0, exc=exc), t0)
                continue
            duration = clock() - t0
            # the common case: plain values of the metrics met before, and nothing to tidy for pruning
            if type(value) is dict and not ((steps or marked) and tracked(tid)) and take(value, t0, duration):
                if unsent:
                    flush(tid)  # its last throttled report
                continue
            rows.row(_settle(spec, chunk[j], worker, tables, rows, t0, value=value), t0)
    finally:
        cursor.trial_id = None
        live.reset_current(token)
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


# -- one trial at a time -------------------------------------------------------------
_UNSET: Any = object()


def _settle(
    spec: TrialSpec,
    item: ChunkItem,
    worker: str,
    tables: Dict[str, List[Any]],
    rows: ChunkRows,
    t0: float,
    value: Any = _UNSET,
    exc: Optional[Exception] = None,
) -> Row:
    """The row of a trial of the fast loop that did not just return plain metrics, from
    its first run (which returned ``value`` or raised ``exc``) on: retried, flushed and
    timed as the per-trial path does it (:func:`_run_trial`)."""
    row = trow.started(item.trial_id, item.seed, item.replicate, worker)
    attempts = _runs(spec, item, row, tables, live.current(), value, exc)
    return _ended(row, item.trial_id, attempts, rows.started_at(t0), t0)


def _run_trial(spec: TrialSpec, item: ChunkItem, worker: str, tables: Dict[str, List[Any]]) -> Row:
    """One trial, retried up to ``spec.retries`` times if it raises; its row."""
    row = trow.started(item.trial_id, item.seed, item.replicate, worker)
    started = time.time_ns() // 1000  # microseconds: the started_at column's unit (no datetime per trial)
    t0 = time.perf_counter()
    context = live.TrialContext(spec.experiment, spec.run_id, item.trial_id, spec.prune)
    token = live.set_current(context)
    if spec.prune:
        prune.start(item.trial_id)
    attempts = _runs(spec, item, row, tables, context)
    live.reset_current(token)
    return _ended(row, item.trial_id, attempts, started, t0)


def _runs(
    spec: TrialSpec,
    item: ChunkItem,
    row: Row,
    tables: Dict[str, List[Any]],
    context: Optional[live.TrialContext],
    value: Any = _UNSET,
    exc: Optional[Exception] = None,
) -> int:
    """Run the trial until a run settles it (ok, pruned, timed out, or out of retries),
    recording how in ``row``; how many runs it took. ``value``/``exc``: what its first
    run returned or raised, when it has been run already."""
    attempts = 0
    while True:
        attempts += 1
        if value is _UNSET and exc is None:
            try:
                value = _attempt(spec, item.groups, item.params, context)
            except Exception as e:
                exc = e
        if exc is None:
            try:
                metrics, out_tables = normalise(value)
                trow.set_ok(row, metrics)
                for name, table in out_tables.items():
                    tables.setdefault(name, []).append(keyed(table, item.trial_id))
                return attempts
            except Exception as e:  # what it returned is no result
                settled = _failed(row, e, returned=True)
        else:
            settled = _failed(row, exc, returned=False)
        if settled or attempts > spec.retries:
            return attempts
        value, exc = _UNSET, None


def _failed(row: Row, exc: Exception, returned: bool) -> bool:
    """Record a run's failure in ``row``; whether it settles the trial (no retry)."""
    if isinstance(exc, TrialPruned):
        return True  # the search stopped it: recorded pruned by _ended, not retried
    if isinstance(exc, TrialTimeout):
        trow.set_failed(row, Status.TIMEOUT, FailureKind.TIMEOUT, f"TrialTimeout: {exc}")
        return True  # not retried: it would most likely time out again
    if isinstance(exc, TrialProcessError):  # raised in the child: its own text and kind
        error, tb, kind = exc.error, exc.traceback_text, exc.kind
    else:
        error, tb = f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))
        kind = FailureKind.BAD_RESULT if returned else trow.kind_of_exception(exc)
    trow.set_failed(row, Status.FAILED, kind, error, tb)
    return False


def _ended(row: Row, trial_id: str, attempts: int, started: int, t0: float) -> Row:
    """A trial's row once it ran: its last report sent, pruned if the search stopped it, timed."""
    live.flush(trial_id)
    step = prune.finish(trial_id)
    if step is not None:  # pruned: at its next report, or it asked should_stop() and returned
        row.update(
            status=Status.PRUNED, error=None, failure_kind=None, traceback=None, last_step=None if step < 0 else step
        )
    row["attempts"] = attempts
    row["started_at"] = started
    row["duration_s"] = time.perf_counter() - t0
    return row
