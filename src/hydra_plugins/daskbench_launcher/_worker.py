"""Worker side: run a chunk of Hydra jobs, each retried up to ``retries`` times.

A job changes process-wide state (the working directory with
``hydra.job.chdir``, logging, the ``HydraConfig`` singleton), so one worker
process runs one job at a time whatever its thread count: the lock below. With
``timeout_s`` each run is in a child process of its own (:mod:`._child`), which
changes nothing of the worker's, so no lock is taken.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any, List, Optional

from daskbench.results.row import FailureKind

from ._attempt import Outcome, Packed, RunContext, attempt, enter

__all__ = ["Outcome", "Packed", "RunContext", "run_jobs"]

_LOCK = threading.Lock()


def run_jobs(packed: Packed, jobs: List[Any]) -> List[Outcome]:
    timeout_s = packed.timeout_s
    if timeout_s:
        return [_run_one(packed, None, job, timeout_s) for job in jobs]
    with _LOCK:
        ctx = enter(packed)
        return [_run_one(packed, ctx, job, None) for job in jobs]


def _run_one(packed: Packed, ctx: Optional[RunContext], job: Any, timeout_s: Optional[float]) -> Outcome:
    """One job, retried while it fails (a timeout is not retried: it would most likely time out again)."""
    started, t0 = datetime.now(UTC), time.perf_counter()
    retries = packed.retries
    attempts = 0
    while True:
        attempts += 1
        if timeout_s:
            from ._child import call

            out = call(packed, job, timeout_s)
        else:
            assert ctx is not None
            out = attempt(ctx, job)
        if out.status == "ok" or out.kind == FailureKind.TIMEOUT or attempts > retries:
            break
    out.worker = _worker_name()
    out.started_at = started
    out.duration_s = time.perf_counter() - t0
    out.attempts = attempts
    return out


def _worker_name() -> Optional[str]:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except ValueError:  # not in a Dask worker (tests call run_jobs directly)
        return None
