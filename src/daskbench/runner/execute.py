"""Worker side: run a chunk of trials, each with its own row and its own failure.

A chunk is one Dask task holding many short trials, so the ~2 ms scheduling
cost per task is paid once per chunk. Every trial is isolated: an exception,
a bad return value or a timeout marks that trial alone.

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
import numbers
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any, Dict, List, Tuple, Union

from ..observe import live
from ..results import row as trow
from ..results.row import FailureKind, Row, Status
from . import prune
from .invoke import call_trial
from .isolate import TrialProcessError, TrialTimeout
from .prune import TrialPruned
from .spec import ChunkResult, GroupKey, Item, TrialSpec, load_spec, unpack


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "driver"


def _attempt(spec: TrialSpec, gkey: GroupKey, params: Dict[str, Any], context: live.TrialContext) -> Any:
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


def _is_table(obj: Any) -> bool:
    mod = type(obj).__module__
    return (mod.startswith("pandas") and type(obj).__name__ == "DataFrame") or (
        mod.startswith("pyarrow") and type(obj).__name__ == "Table"
    )


def _scalar(value: Any) -> Tuple[bool, Any]:
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        if hasattr(value, "item"):
            value = value.item()  # numpy scalars -> Python
        return True, value
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return True, value.item()
    return False, value


def _describe(obj: Any) -> str:
    text = repr(obj)
    return f"{type(obj).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"


def normalise(result: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Split a trial's return value into scalar metrics and tables, or raise
    ``TypeError`` saying what was returned instead."""
    if type(result) is not dict and _is_table(result):
        return {}, {"steps": result}
    if type(result) is not dict and not isinstance(result, Mapping):
        raise TypeError(
            f"trial returned {_describe(result)}; return a mapping of metric name to "
            "scalar (and optionally tables), or a table"
        )
    metrics: Dict[str, Any] = {}
    tables: Dict[str, Any] = {}
    for key, value in result.items():
        name = key if type(key) is str else str(key)
        t = type(value)
        if t is float or t is int or t is str or t is bool or value is None:  # the common case, per trial
            if name in trow.RESERVED:
                raise TypeError(f"metric {name!r} clashes with a column daskbench writes; rename it")
            metrics[name] = value
            continue
        if _is_table(value):
            if name in ("trials", "manifest") or not name.replace("_", "").isalnum():
                raise TypeError(f"table {name!r}: name tables with letters, digits and '_' (not 'trials')")
            tables[name] = value
            continue
        ok, value = _scalar(value)
        if not ok:
            raise TypeError(
                f"metric {name!r} is {_describe(value)}; metrics must be scalars "
                "(numbers, strings, booleans) and per-step data a DataFrame or Arrow table"
            )
        if name in trow.RESERVED:
            raise TypeError(f"metric {name!r} clashes with a column daskbench writes; rename it")
        metrics[name] = value
    return metrics, tables


def run_chunk(spec: TrialSpec, items: Union[bytes, List[Item]]) -> ChunkResult:
    """Run each trial of the chunk in turn; never raises for a trial's fault."""
    chunk: List[Item] = unpack(items) if isinstance(items, bytes) else items
    for p in spec.sys_path:
        if p not in sys.path:
            sys.path.append(p)
    worker = _worker_address()
    rows: List[Row] = []
    tables: Dict[str, List[Any]] = {}
    for item in chunk:
        rows.append(_run_trial(spec, item, worker, tables))
    merged = {}
    if tables:
        import pyarrow as pa

        for name, parts in tables.items():
            try:
                merged[name] = pa.concat_tables(parts, promote_options="permissive")
            except pa.ArrowInvalid:
                merged[name] = pa.concat_tables([p.cast(parts[0].schema) for p in parts])
    return _result(spec, chunk, rows, merged)


def run_packed(token: str, spec: bytes, items: bytes) -> ChunkResult:
    """The task the driver submits: :func:`run_chunk` with the run's spec as
    :func:`~daskbench.runner.spec.dump_spec` pickled it once (unpickled once per worker)."""
    return run_chunk(load_spec(token, spec), items)


def _result(spec: TrialSpec, chunk: List[Item], rows: List[Row], tables: Dict[str, Any]) -> ChunkResult:
    """The chunk's rows as one table with their swept columns, and what the driver counts."""
    from ..results.columns import rows_to_table

    counts: Dict[str, int] = {}
    ok: List[Tuple[float, int]] = []
    errors: List[Tuple[int, str]] = []
    for i, (item, r) in enumerate(zip(chunk, rows)):
        status = str(r["status"])
        counts[status] = counts.get(status, 0) + 1
        if status == Status.OK:
            ok.append((r["duration_s"], i))
        elif status not in (Status.TIMEOUT, Status.PRUNED) and len(errors) < 5:
            errors.append((i, str(r.get("error"))))
        r.update(item.groups)  # the swept values, named exactly as the keys
        r.update(item.params)
        for key in spec.hidden:
            r.pop(key, None)
    total = sum(r["duration_s"] for r in rows)
    return ChunkResult(
        rows_to_table(rows),
        tables,
        counts=counts,
        compute_s=total if math.isfinite(total) else 0.0,
        slowest=heapq.nlargest(5, ok),
        errors=errors,
    )


def _run_trial(spec: TrialSpec, item: Item, worker: str, tables: Dict[str, List[Any]]) -> Row:
    """One trial, retried up to ``spec.retries`` times if it raises; its row."""
    row = trow.started(item.trial_id, item.seed, item.replicate, worker)
    started = time.time_ns() // 1000  # microseconds: the started_at column's unit (no datetime per trial)
    t0 = time.perf_counter()
    attempts = 0
    context = live.TrialContext(spec.experiment, spec.run_id, item.trial_id, spec.prune)
    token = live.set_current(context)
    if spec.prune:
        prune.start(item.trial_id)
    while True:
        attempts += 1
        returned = False
        try:
            value = _attempt(spec, item.groups, item.params, context)
            returned = True
            metrics, out_tables = normalise(value)
            trow.set_ok(row, metrics)
            for name, table in out_tables.items():
                tables.setdefault(name, []).append(_keyed(table, item.trial_id))
            break
        except TrialPruned:
            break  # the search stopped it: recorded pruned below, not retried
        except TrialTimeout as exc:
            trow.set_failed(row, Status.TIMEOUT, FailureKind.TIMEOUT, f"TrialTimeout: {exc}")
            break  # not retried: it would most likely time out again
        except Exception as exc:  # a trial's own failure: record it, keep going
            if isinstance(exc, TrialProcessError):  # raised in the child: its own text and kind
                error, tb, kind = exc.error, exc.traceback_text, exc.kind
            else:
                error, tb = f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))
                kind = FailureKind.BAD_RESULT if returned else trow.kind_of_exception(exc)
            trow.set_failed(row, Status.FAILED, kind, error, tb)
            if attempts > spec.retries:
                break
    live.reset_current(token)
    live.flush(item.trial_id)
    step = prune.finish(item.trial_id)
    if step is not None:  # pruned: at its next report, or it asked should_stop() and returned
        row.update(
            status=Status.PRUNED, error=None, failure_kind=None, traceback=None, last_step=None if step < 0 else step
        )
    row["attempts"] = attempts
    row["started_at"] = started
    row["duration_s"] = time.perf_counter() - t0
    return row


def _keyed(table: Any, trial_id: str) -> Any:
    """A table a trial returned, as Arrow, with its ``trial_id`` column first."""
    import pyarrow as pa  # only trials that return tables pay for it

    t = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)
    return t.add_column(0, "trial_id", pa.array([trial_id] * t.num_rows, pa.string()))
