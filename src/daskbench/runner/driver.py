"""Turn trials into Dask futures: chunks, a bounded number in flight, results as they arrive.

Trials are pulled lazily from the sweep, grouped into chunks sized so that one
task lasts about ``runner.target_chunk_seconds`` (short trials are batched; long
ones go one per task), and submitted with the experiment's resources, priority
and retries. At most ``max_in_flight`` tasks exist at once, so a sweep of a
million trials never sits whole in the driver or the scheduler.

Workers that die: Dask reruns a lost worker's tasks elsewhere, silently. The
scheduler's ``remove-worker`` events (topic ``all``) name the tasks a worker
held when it went, and arrive before those tasks' results, so each trial's
``attempts`` counts the runs lost with a worker too. When Dask gives up on a
task (``KilledWorker``; at once on a LocalCluster daskbench starts):

1. a chunk of several trials is split into one task per trial;
2. a trial alone in its task whose worker dies again is *quarantined*: run in
   a child process limited to the worker's memory limit (:mod:`daskbench.runner.isolate`),
   so a trial that crashes or eats memory fails with its own cause and kills no
   more workers, while the innocent trials that shared its worker run fine;
3. a quarantined trial whose worker still dies (the machine, not the trial)
   is run again up to ``runner.crash_retries`` times, then recorded ``failed``.

Dask counts every task a dead worker held (running or next in its queue) as
suspicious; so does ``attempts``, and that is why nothing is failed on a
worker death alone before the quarantine has had its say.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import heapq
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from distributed import Client, as_completed
from distributed.scheduler import KilledWorker

from ..cluster.dask_compat import topic_handler
from ..config.compose import RunPlan
from ..errors import ClusterError
from ..observe.live import TOPIC_LIVE, TOPIC_SWEEP, LiveAggregate
from .execute import ChunkResult, Item, TrialSpec, chunk_compute_seconds, pack, run_chunk
from ..observe.progress import Counts, Progress
from ..results.store import ResultStore
from ..sweep.plan import SEED_KEY, Trial


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
        target=str(next(iter(trials.values()))["_target_"]), fast=fast, bases=bases,
        retries=int(rp.cfg.retries), timeout_s=rp.cfg.timeout_s,
        sys_path=list(dict.fromkeys(rp.sys_path)), experiment=rp.cfg.name, run_id=run_id,
        isolation=str(rp.cfg.runner.isolation),
    )


def _needs_hydra(node: Any, top: bool = False) -> bool:
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


@dataclass
class ChunkSizer:
    """Chooses trials per task from measured trial durations (EWMA)."""

    fixed: Optional[int]
    target_s: float = 0.5
    max_size: int = 1000
    mean_s: Optional[float] = None

    def observe(self, result: ChunkResult) -> None:
        n = len(result.rows)
        if n:
            per = chunk_compute_seconds(result) / n
            self.mean_s = per if self.mean_s is None else 0.7 * self.mean_s + 0.3 * per

    def size(self, remaining: int, threads: int) -> int:
        if self.fixed:
            return self.fixed
        if self.mean_s is None:
            return 1  # measure first: long trials should never be batched
        want = math.ceil(self.target_s / max(self.mean_s, 1e-6))
        spread = math.ceil(remaining / max(2 * threads, 1))  # keep every thread busy to the end
        return max(1, min(want, self.max_size, max(spread, 1)))


@dataclass
class RunOutcome:
    """What happened in one run of a sweep."""

    counts: Counts
    interrupted: bool = False
    stopped_early: bool = False
    slowest: List[Tuple[float, str, Dict[str, Any]]] = field(default_factory=list)
    errors: List[Tuple[str, str]] = field(default_factory=list)


class Runner:
    """Submits a sweep's trials to a ``Client`` and streams results into a store."""

    def __init__(self, client: Client, rp: RunPlan, store: ResultStore, counts: Counts,
                 progress: Optional[Progress] = None, run_id: str = "", echo: Any = print):
        self.client, self.rp, self.store, self.counts = client, rp, store, counts
        self.progress = progress or Progress(counts)
        cfg = rp.cfg
        chunk = cfg.runner.chunk_size
        fixed = None if str(chunk) == "auto" else int(chunk)
        self.sizer = ChunkSizer(fixed, cfg.runner.target_chunk_seconds, cfg.runner.max_chunk_size)
        self.run_token = uuid.uuid4().hex[:8]
        self.run_id = run_id or self.run_token
        self.spec = make_spec(rp, self.run_id)
        self.live = LiveAggregate(self.run_id, warn=echo)
        counts.live = self.live.summary
        self._n_chunks = 0
        self._key_prefix = f"{cfg.name}-{self.run_token}-"
        self._lock = threading.Lock()
        self._task_deaths: Dict[str, int] = {}  # task key -> workers lost while it held it
        self._trial_deaths: Dict[str, int] = {}  # trial id -> runs lost with a worker
        self._quarantined: Dict[str, int] = {}  # trial id -> workers lost while quarantined
        self._needs_worker: Set[str] = set()  # quarantined, but it uses its worker: alone, in its thread
        self._requeue: collections.deque = collections.deque()  # trials to run again, one per task
        self.quarantine_spec = dataclasses.replace(self.spec, quarantine=True)
        self._slowest: List[Tuple[float, str, Dict[str, Any]]] = []
        self._errors: List[Tuple[str, str]] = []

    def threads(self) -> int:
        return max(sum(self._worker_threads()), 1)

    def _worker_threads(self) -> List[int]:
        info = self.client.scheduler_info()
        return [w.get("nthreads", 1) for w in info.get("workers", {}).values()]

    def _submit(self, items: List[Item], quarantine: bool = False):
        cfg = self.rp.cfg
        self._n_chunks += 1
        # key prefix = experiment name, so the dashboard groups the tasks by experiment
        key = f"{self._key_prefix}{self._n_chunks}"
        fut = self.client.submit(
            run_chunk, self.quarantine_spec if quarantine else self.spec, pack(items), key=key, pure=False,
            resources=dict(cfg.resources) or None, priority=int(cfg.priority), retries=int(cfg.retries),
        )
        return fut

    def run(self, done: Set[str]) -> RunOutcome:
        """Run every trial of the plan whose id is not in ``done``."""
        cfg, plan = self.rp.cfg, self.rp.plan
        counts = self.counts
        counts.total = len(plan)
        threads = self.threads()
        # An adaptive cluster scales on the work queued at the scheduler: size the
        # queue for the largest the cluster may grow to, or it never grows.
        adapt = getattr(self.rp.cluster, "adapt", None)
        if adapt is not None and adapt.maximum > 0:
            per_worker = getattr(self.rp.cluster, "threads_per_worker", None) or max(self._worker_threads() or [1])
            threads = max(threads, adapt.maximum * per_worker)
        max_in_flight = cfg.runner.max_in_flight or max(4 * threads, 4)
        trials: Iterator[Trial] = iter(plan)
        seen: Set[str] = set()
        may_repeat = plan.may_repeat()
        processed = 0
        pending: Dict[Any, List[Trial]] = {}
        ac = as_completed([], with_results=True, raise_errors=False)
        outcome = RunOutcome(counts)
        exhausted = False

        def submit(batch: List[Trial]) -> None:
            items = [(t.trial_id, t.groups, t.params, t.seed, t.replicate) for t in batch]
            tid = batch[0].trial_id
            fut = self._submit(items, quarantine=len(batch) == 1 and tid in self._quarantined
                               and tid not in self._needs_worker)
            pending[fut] = batch
            ac.add(fut)
            counts.in_flight += len(batch)

        def fill() -> None:
            nonlocal exhausted, processed
            while self._requeue and len(pending) < max_in_flight:
                submit([self._requeue.popleft()])
            while not exhausted and len(pending) < max_in_flight:
                size = self.sizer.size(counts.total - processed, threads)
                batch: List[Trial] = []
                for t in trials:
                    processed += 1
                    if t.trial_id in done or t.trial_id in seen:
                        counts.skipped += 1
                        continue
                    if may_repeat:  # only then is a set of every id worth its memory
                        seen.add(t.trial_id)
                    batch.append(t)
                    if len(batch) >= size:
                        break
                else:
                    exhausted = True
                if not batch:
                    break
                submit(batch)

        self._announce("start")
        self.client.subscribe_topic(TOPIC_LIVE, self.live)
        previous = topic_handler(self.client, "all")  # a user's own client may listen to "all" already
        self.client.subscribe_topic("all", self._cluster_event if previous is None
                                    else _both(previous, self._cluster_event))
        self.progress.start()
        try:
            fill()
            while pending:
                fut, result = next(ac)
                batch = pending.pop(fut)
                counts.in_flight -= len(batch)
                if isinstance(result, tuple) and len(result) == 3 and isinstance(result[1], BaseException):
                    result = result[1]  # as_completed(raise_errors=False) gives (type, exc, tb)
                self._lost_runs(fut.key, batch, result)
                if isinstance(result, KilledWorker):
                    result = self._killed(batch, result)
                elif isinstance(result, BaseException):
                    result = self._chunk_failed(batch, result)
                else:
                    self.sizer.observe(result)
                    result = self._unquarantine(batch, result)
                self._record(batch, result)
                del fut, result
                if cfg.max_failures is not None and counts.bad >= cfg.max_failures:
                    outcome.stopped_early = True
                    self._cancel(pending)
                    break
                fill()
                self.progress.update()
        except KeyboardInterrupt:
            outcome.interrupted = True
            self._cancel(pending)
        finally:
            self.progress.stop()
            self.store.close()
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(TOPIC_LIVE)
            with contextlib.suppress(Exception):
                if previous is None:
                    self.client.unsubscribe_topic("all")
                else:
                    self.client.subscribe_topic("all", previous)
            self._announce("end")
        outcome.slowest = sorted(self._slowest, reverse=True)
        outcome.errors = self._errors
        return outcome

    def _announce(self, event: str) -> None:
        """Tell the scheduler (status page, Prometheus) that the sweep starts or ends."""
        c = self.counts
        msg = {"event": event, "experiment": self.rp.cfg.name, "run_id": self.run_id, "time": time.time(),
               "total": c.total, "results": str(self.rp.results_dir),
               "counts": {"ok": c.ok, "failed": c.failed, "timeout": c.timeout, "cancelled": c.cancelled,
                          "skipped": c.skipped}}
        with contextlib.suppress(Exception):  # a lost scheduler must not hide the run's own outcome
            self.client.log_event(TOPIC_SWEEP, msg)

    def _cancel(self, pending: Dict[Any, List[Trial]]) -> None:
        """Cancel what is still queued or running; record those trials as cancelled."""
        futs = list(pending)
        try:
            self.client.cancel(futs)
        except Exception:  # the cluster may already be gone; the rows still get written
            pass
        batches = [pending.pop(fut) for fut in futs]
        for batch in batches:
            self.counts.in_flight -= len(batch)
        if self._requeue:  # waiting to run again after their worker died
            batches.append(list(self._requeue))
            self._requeue.clear()
        for batch in batches:
            rows = [self._row(t, status="cancelled", error="cancelled before it finished") for t in batch]
            self.counts.cancelled += len(rows)
            self.store.add(rows, {})

    def _row(self, t: Trial, **fields: Any) -> Dict[str, Any]:
        row = {"trial_id": t.trial_id, "seed": t.seed, "replicate": t.replicate,
               "attempts": self._trial_deaths.pop(t.trial_id, 0)}
        self._quarantined.pop(t.trial_id, None)
        self._needs_worker.discard(t.trial_id)
        row.update(fields)
        return row

    # -- workers that die --------------------------------------------------------
    def _cluster_event(self, event: Tuple[float, Dict[str, Any]]) -> None:
        """Handler for the scheduler's ``all`` topic (runs on the client's loop)."""
        msg = event[1] if isinstance(event, tuple) and len(event) == 2 else None
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
            return
        with self._lock:
            for key in msg.get("processing-tasks") or ():
                if isinstance(key, str) and key.startswith(self._key_prefix):
                    self._task_deaths[key] = self._task_deaths.get(key, 0) + 1

    def _lost_runs(self, key: str, batch: List[Trial], result: Any) -> None:
        """Runs of this task lost with a worker; charged to each of its trials."""
        with self._lock:
            n = self._task_deaths.pop(key, 0)
        if isinstance(result, KilledWorker):
            # exact: Dask gives up after allowed_failures + 1 deaths, and its
            # last remove-worker event may still be on its way
            n = max(n, int(result.allowed_failures) + 1)
        if n:
            for t in batch:
                self._trial_deaths[t.trial_id] = self._trial_deaths.get(t.trial_id, 0) + n
            tid = batch[0].trial_id
            if len(batch) == 1 and tid in self._quarantined:
                self._quarantined[tid] += n

    def _killed(self, batch: List[Trial], exc: KilledWorker) -> ChunkResult:
        """Dask gave up on a task because its workers died: find the trial to blame."""
        if len(batch) > 1:
            self._requeue.extend(batch)  # one per task: only the culprit's dies again
            return ChunkResult([], {})
        t = batch[0]
        if t.trial_id not in self._quarantined:
            self._quarantined[t.trial_id] = 0  # next: alone, in a child process
            self._requeue.append(t)
            return ChunkResult([], {})
        deaths = self._quarantined[t.trial_id]
        if deaths <= int(self.rp.cfg.runner.crash_retries):
            self._requeue.append(t)
            return ChunkResult([], {})
        last = getattr(getattr(exc, "last_worker", None), "address", "?")
        error = (f"KilledWorker: the worker died while running this trial, {self._trial_deaths.get(t.trial_id, 0)} "
                 f"time(s), the last on {last}, {deaths} of them while it ran alone (in a child process where it can): "
                 "the worker's machine, not the trial, seems to be failing (runner.crash_retries sets how often "
                 "such a trial is tried)")
        return ChunkResult([self._row(t, status="failed", error=error)], {})

    def _unquarantine(self, batch: List[Trial], result: ChunkResult) -> ChunkResult:
        """A quarantined trial that needs its Dask worker (a simulation, iobench)
        cannot run in a child process: run it alone in its worker's thread instead."""
        tid = batch[0].trial_id
        if len(batch) != 1 or tid not in self._quarantined or tid in self._needs_worker or len(result.rows) != 1:
            return result
        if not str(result.rows[0].get("error") or "").startswith("TrialNeedsWorker"):
            return result
        self._needs_worker.add(tid)  # it stopped at get_worker(): not an attempt of the trial's work
        self._requeue.append(batch[0])
        return ChunkResult([], {})

    def _blame(self, row: Dict[str, Any], deaths: int) -> None:
        """A quarantined trial that crashed its child process (or ran out of its
        memory) is the one that killed its workers: say so with its cause."""
        error = str(row.get("error") or "")
        if row.get("status") == "failed" and deaths and error.startswith(("TrialProcessDied", "MemoryError")):
            row["error"] = (f"KilledWorker: the worker died while running this trial ({deaths} time(s)); "
                            f"run alone in a child process limited to the worker's memory, it failed with: "
                            f"{row.get('error')}")

    def _chunk_failed(self, batch: List[Trial], exc: BaseException) -> ChunkResult:
        if self.client.status not in ("running", "connecting"):
            raise ClusterError(f"lost the connection to the Dask scheduler: {exc}")
        msg = f"{type(exc).__name__}: {exc}"
        return ChunkResult([self._row(t, status="failed", error=msg) for t in batch], {})

    def _record(self, batch: List[Trial], result: ChunkResult) -> None:
        by_id = {t.trial_id: t for t in batch}
        for row in result.rows:
            t = by_id[row["trial_id"]]
            if self._trial_deaths:  # runs lost with a worker before this one
                deaths = self._trial_deaths.pop(t.trial_id, 0)
                row["attempts"] = row.get("attempts", 0) + deaths
                self._needs_worker.discard(t.trial_id)
                if self._quarantined.pop(t.trial_id, None) is not None:
                    self._blame(row, deaths)
            cols = t.columns()
            if self.rp.plan.inject_seed:
                cols.pop(SEED_KEY, None)  # spawned seeds live in the `seed` column
            row.update(cols)
            status = row.get("status")
            if status == "ok":
                self.counts.ok += 1
                d = row.get("duration_s") or 0.0
                entry = (d, t.trial_id, cols)
                if len(self._slowest) < 5:
                    heapq.heappush(self._slowest, entry)
                elif d > self._slowest[0][0]:
                    heapq.heapreplace(self._slowest, entry)
            elif status == "timeout":
                self.counts.timeout += 1
            else:
                self.counts.failed += 1
                if len(self._errors) < 5:
                    self._errors.append((t.trial_id, str(row.get("error"))))
        self.store.add(result.rows, result.tables)


def _both(first: Any, second: Any) -> Any:
    """One event handler that calls two (a client keeps one per topic)."""

    def handler(event: Any) -> None:
        try:
            first(event)
        finally:
            second(event)

    return handler
