"""Turn trials into Dask futures: chunks, a bounded number in flight, results as they arrive.

Trials are pulled lazily from the sweep, grouped into chunks sized so that one
task lasts about ``runner.target_chunk_seconds`` (short trials are batched; long
ones go one per task), and submitted with the experiment's resources, priority
and retries. At most ``max_in_flight`` tasks exist at once, so a sweep of a
million trials never sits whole in the driver or the scheduler.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from distributed import Client, as_completed

from .compose import RunPlan
from .errors import ClusterError
from .live import TOPIC_LIVE, TOPIC_SWEEP, LiveAggregate
from .execute import ChunkResult, Item, TrialSpec, chunk_compute_seconds, pack, run_chunk
from .progress import Counts, Progress
from .store import ResultStore
from .sweep import SEED_KEY, Trial


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
        self._slowest: List[Tuple[float, str, Dict[str, Any]]] = []
        self._errors: List[Tuple[str, str]] = []

    def threads(self) -> int:
        return max(sum(self._worker_threads()), 1)

    def _worker_threads(self) -> List[int]:
        info = self.client.scheduler_info()
        return [w.get("nthreads", 1) for w in info.get("workers", {}).values()]

    def _submit(self, items: List[Item]):
        cfg = self.rp.cfg
        self._n_chunks += 1
        # key prefix = experiment name, so the dashboard groups the tasks by experiment
        key = f"{cfg.name}-{self.run_token}-{self._n_chunks}"
        fut = self.client.submit(
            run_chunk, self.spec, pack(items), key=key, pure=False,
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

        def fill() -> None:
            nonlocal exhausted, processed
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
                items = [(t.trial_id, t.groups, t.params, t.seed, t.replicate) for t in batch]
                fut = self._submit(items)
                pending[fut] = batch
                ac.add(fut)
                counts.in_flight += len(batch)

        self._announce("start")
        self.client.subscribe_topic(TOPIC_LIVE, self.live)
        self.progress.start()
        try:
            fill()
            while pending:
                fut, result = next(ac)
                batch = pending.pop(fut)
                counts.in_flight -= len(batch)
                if isinstance(result, BaseException):
                    result = self._chunk_failed(batch, result)
                else:
                    self.sizer.observe(result)
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
        for fut in futs:
            batch = pending.pop(fut)
            self.counts.in_flight -= len(batch)
            rows = [self._row(t, status="cancelled", error="cancelled before it finished") for t in batch]
            self.counts.cancelled += len(rows)
            self.store.add(rows, {})

    def _row(self, t: Trial, **fields: Any) -> Dict[str, Any]:
        row = {"trial_id": t.trial_id, "seed": t.seed, "replicate": t.replicate, "attempts": 0}
        row.update(fields)
        return row

    def _chunk_failed(self, batch: List[Trial], exc: BaseException) -> ChunkResult:
        if self.client.status not in ("running", "connecting"):
            raise ClusterError(f"lost the connection to the Dask scheduler: {exc}")
        msg = f"{type(exc).__name__}: {exc}"
        return ChunkResult([self._row(t, status="failed", error=msg) for t in batch], {})

    def _record(self, batch: List[Trial], result: ChunkResult) -> None:
        by_id = {t.trial_id: t for t in batch}
        for row in result.rows:
            t = by_id[row["trial_id"]]
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
