"""Worker side: one trial at a time, with its own row, retries, timeout and failure.

The per-trial path of :mod:`.execute`: a chunk whose trials cannot all run in the
fast loop (a timeout, a child process, a pruner, a trial that raised or returned
anything but plain metrics) settles each such trial here. Where a trial runs
(``runner.isolation``): ``thread`` calls it in the worker's own thread (with
``timeout_s``, in a watchdog thread that cannot be stopped); ``process`` runs it in a
child process killed at ``timeout_s`` (see :mod:`daskbench.runner.isolate`); ``auto``
is ``process`` when ``timeout_s`` is set and ``thread`` otherwise.
"""

from __future__ import annotations

import contextvars
import threading
import time
import traceback
from typing import Any, Dict, List, Optional

from ..observe import live
from ..results import row as trow
from ..results.chunk import ChunkRows
from ..results.row import FailureKind, Row, Status
from . import prune
from .invoke import call_trial
from .isolate import TrialProcessError, TrialTimeout
from .normalise import keyed, normalise
from .prune import TrialPruned
from .spec import ChunkItem, GroupKey, TrialSpec


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


_UNSET: Any = object()


def settle(
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


def run_trial(spec: TrialSpec, item: ChunkItem, worker: str, tables: Dict[str, List[Any]]) -> Row:
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
