"""Jobs to Dask futures: chunks, a bounded number in flight, rows as results arrive."""

from __future__ import annotations

import math
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from distributed import as_completed
from distributed.scheduler import KilledWorker
from hydra.core.utils import JobReturn, JobStatus

from daskbench.dask_compat import workers_now
from daskbench.results.row import FailureKind, Status

from ._daskbench import ClusterError
from ._rows import DaskbenchJobReturn, failed_row, job_return, row
from ._worker import Packed, RunContext, run_jobs


def chunk_size(n_jobs: int, threads: int, fixed: Any) -> int:
    """Jobs per task: ``fixed``, else enough tasks for every thread to get ~8 of them.

    A Dask task costs ~2.5 ms here and a Hydra job ~20-40 ms of its own (its
    folder, its three YAML files, its log), so chunks only trim the overhead of
    big sweeps of tiny jobs; small chunks keep long jobs spread to the end.
    """
    if fixed:
        return int(fixed)
    return max(1, min(16, math.ceil(n_jobs / (8 * max(threads, 1)))))


class BatchRun:
    """One ``launch()`` batch on a client; ``add_rows`` receives rows as jobs finish."""

    def __init__(
        self,
        client: Any,
        ctx: RunContext,
        settings: Any,
        add_rows: Callable[[List[Dict]], None],
        configs: Optional[Callable[[Any], Tuple[Any, Any]]] = None,
    ):
        self.client, self.ctx, self.s, self.add_rows = client, ctx, settings, add_rows
        self.configs = configs  # a job's (task cfg, hydra cfg), for a JobReturn whose job sent none back
        self.returns: Dict[int, JobReturn] = {}
        self.written: set = set()  # a job id run twice in one batch gets one row (the first)
        self._prefix = f"{settings.name}-{uuid.uuid4().hex[:8]}-"  # the dashboard groups tasks by name
        self._n = 0

    def _threads(self) -> int:
        workers = workers_now(self.client).values()  # not the client's cache: a refresh may empty it
        return max(sum(w.get("nthreads", 1) for w in workers), 1)

    def run(self, jobs: Sequence[Any]) -> Dict[int, JobReturn]:
        threads = self._threads()
        size = chunk_size(len(jobs), threads, self.s.chunk_size)
        chunks = [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]
        chunks.reverse()  # pop() from the end: submitted in job order
        limit = self.s.max_in_flight or 4 * threads
        ctx = self.client.scatter(Packed.of(self.ctx), hash=False)  # sent once, not with every task
        pending: Dict[Any, List[Any]] = {}
        ac = as_completed()

        def fill() -> None:
            while chunks and len(pending) < limit:
                chunk = chunks.pop()
                self._n += 1
                fut = self.client.submit(
                    run_jobs,
                    ctx,
                    chunk,
                    key=f"{self._prefix}{self._n}",
                    pure=False,
                    resources=dict(self.s.resources) or None,
                    priority=self.s.priority,
                )
                pending[fut] = chunk
                ac.add(fut)

        try:
            fill()
            while pending:
                fut = next(ac)
                self._collect(fut, pending.pop(fut), pending)
                fill()
        except BaseException:
            self._cancel(pending, chunks)
            raise
        return self.returns

    def _collect(self, fut: Any, chunk: List[Any], pending: Dict[Any, List[Any]]) -> None:
        try:
            outs = fut.result()
        except KilledWorker as exc:  # the job's worker died (a crash, out of memory): it alone fails
            self._failed(chunk, FailureKind.WORKER_LOST, exc)
            return
        except Exception as exc:
            if self.client.status not in ("running", "connecting"):
                raise ClusterError(f"lost the connection to the Dask scheduler: {exc}") from None
            # the job's config was refused (e.g. an unknown key): Hydra's launchers raise it
            self._failed(chunk, FailureKind.CHUNK_FAILED, exc)
            raise
        rows = []
        for job, out in zip(chunk, outs):
            self.returns[job.num] = job_return(job, out, self._configs_of(job))
            if job.trial_id not in self.written:
                self.written.add(job.trial_id)
                rows.append(row(job, out))
        self.add_rows(rows)

    def _failed(self, chunk: List[Any], kind: FailureKind, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        rows = []
        for job in chunk:
            self.returns[job.num] = DaskbenchJobReturn(
                configs=self._configs_of(job), overrides=list(job.overrides), status=JobStatus.FAILED, _return_value=exc
            )
            if job.trial_id not in self.written:
                self.written.add(job.trial_id)
                rows.append(failed_row(job, Status.FAILED, kind, error))
        self.add_rows(rows)

    def _configs_of(self, job: Any) -> Optional[Callable[[], Tuple[Any, Any]]]:
        configs = self.configs
        return None if configs is None else (lambda: configs(job))

    def _cancel(self, pending: Dict[Any, List[Any]], chunks: List[List[Any]]) -> None:
        """Stopping early (Ctrl-C, a refused config): what never finished is recorded ``cancelled``."""
        try:
            self.client.cancel(list(pending))
        except Exception:  # the scheduler may be gone already; the rows are still written
            pass
        rows = [
            failed_row(job, Status.CANCELLED, FailureKind.CANCELLED, "cancelled before it finished")
            for chunk in [*pending.values(), *chunks]
            for job in chunk
            if job.trial_id not in self.written
        ]
        pending.clear()
        self.add_rows(rows)
