"""Turn trials into Dask futures: chunks, a bounded number in flight, results as they arrive.

Trials are pulled lazily from the sweep, grouped into chunks sized so that one
task lasts about ``runner.target_chunk_seconds`` (short trials are batched; long
ones go one per task), and submitted with the experiment's resources, priority
and retries. At most ``max_in_flight`` tasks exist at once, so a sweep of a
million trials never sits whole in the driver or the scheduler. New chunks go in
refills of half that, each one graph update (:mod:`.submit`); a chunk's rows come
back as one Arrow table, written without building a row unless the recovery
machine has something to settle (:meth:`Recovery.passes_through`). A fresh sweep of one long axis
is sent as slices of its recipe (:mod:`daskbench.sweep.batch`): its workers build its trials.

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

Those rules are the pure state machine :class:`~daskbench.runner.recovery.Recovery`;
this module only pumps Dask's events into it and carries out its decisions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AbstractSet, Any, Deque, Dict, List, Optional, Sequence, Tuple

from distributed import Client
from distributed.scheduler import KilledWorker

from ..config.compose import RunPlan
from ..dask_compat import topic_handler, unsubscribe, workers_now
from ..errors import ClusterError
from ..observe.live import TOPIC_LIVE, TOPIC_SWEEP, LiveAggregate
from ..observe.progress import Counts, Progress
from ..observe.trial_events import TrialEvents
from ..results.row import Row
from ..results.store import ResultStore
from ..sweep.plan import Trial
from .chunking import ChunkSizer
from .flight import Flight, unrun
from .recovery import (
    Cancel,
    ChunkDone,
    ChunkKilled,
    ChunkRaised,
    Decision,
    Recovery,
    SlotsFree,
    Submit,
    WorkerRemoved,
    Write,
)
from .spec import ChunkResult, make_spec
from .submit import Submitter
from .tally import Tally

if TYPE_CHECKING:  # Optuna, behind it, is imported by a search only (an optional extra)
    from .adaptive import AdaptiveSource


@dataclass
class RunOutcome:
    """What happened in one run of a sweep."""

    counts: Counts
    interrupted: bool = False
    stopped_early: bool = False
    slowest: List[Tuple[float, str, Dict[str, Any]]] = field(default_factory=list)
    errors: List[Tuple[str, str]] = field(default_factory=list)
    search: Dict[str, Any] = field(default_factory=dict)  # sweep.search: best trial or Pareto front


class Runner:
    """Submits a sweep's trials to a ``Client`` and streams results into a store."""

    def __init__(
        self,
        client: Client,
        rp: RunPlan,
        store: ResultStore,
        counts: Counts,
        progress: Optional[Progress] = None,
        run_id: str = "",
        echo: Any = print,
        source: Optional[AdaptiveSource] = None,
    ):
        self.client, self.rp, self.store, self.counts = client, rp, store, counts
        # an adaptive search (sweep.search) hands out its trials one asked point at a time
        self.source = source
        self.progress = progress or Progress(counts)
        cfg = rp.cfg
        chunk = cfg.runner.chunk_size
        fixed = None if str(chunk) == "auto" else int(chunk)
        if source is not None:
            fixed = 1  # one trial per task: each result is told, and the next point asked, as it arrives
        self.sizer = ChunkSizer(fixed, cfg.runner.target_chunk_seconds, cfg.runner.max_chunk_size)
        self.run_token = uuid.uuid4().hex[:8]
        self.run_id = run_id or self.run_token
        self.spec = make_spec(rp, self.run_id)
        self.live = LiveAggregate(self.run_id, warn=echo)
        self.events = TrialEvents(cfg.name, self.run_id)  # the ended trials, for the scheduler's plugin
        counts.live = self.live.summary
        self._n_chunks = 0
        self._key_prefix = f"{cfg.name}-{self.run_token}-"
        self.recovery: Recovery[Trial] = Recovery(int(cfg.runner.crash_retries), self._key_prefix)
        # remove-worker events, appended on the client's event loop, taken in by run()'s thread:
        # the recovery machine is only ever touched from one thread
        self._removed: Deque[Tuple[str, ...]] = deque()
        self.quarantine_spec = dataclasses.replace(self.spec, quarantine=True)
        self.tally = Tally(counts, rp.plan.inject_seed)
        self.submitter = Submitter(client, self._key_prefix, dict(cfg.resources), int(cfg.priority), int(cfg.retries))

    def threads(self) -> int:
        return max(sum(self._worker_threads()), 1)

    def _worker_threads(self) -> List[int]:
        return [w.get("nthreads", 1) for w in workers_now(self.client).values()]

    def _max_in_flight(self) -> Tuple[int, int]:
        """(tasks at most in flight, threads to keep busy)."""
        threads = self.threads()
        # An adaptive cluster scales on the work queued at the scheduler: size the
        # queue for the largest the cluster may grow to, or it never grows.
        adapt = getattr(self.rp.cluster, "adapt", None)
        if adapt is not None and adapt.maximum > 0:
            per_worker = getattr(self.rp.cluster, "threads_per_worker", None) or max(self._worker_threads() or [1])
            threads = max(threads, adapt.maximum * per_worker)
        if self.source is not None:
            # one running and one ready per thread: Dask hands a worker the next task it holds
            # the moment one ends, so no worker waits for the driver's tell and next ask
            return self.rp.cfg.runner.max_in_flight or 2 * threads, threads
        return self.rp.cfg.runner.max_in_flight or max(4 * threads, 4), threads

    def run(self, done: AbstractSet[str]) -> RunOutcome:
        """Run every trial of the plan whose id is not in ``done``."""
        plan, counts = self.rp.plan, self.counts
        counts.total = len(plan)
        max_in_flight, threads = self._max_in_flight()
        trials = self.source.trials() if self.source is not None else iter(plan)
        # an adaptive search asks one point per free slot; a sweep refills half its queue at once
        refill = 1 if self.source is not None else max(1, max_in_flight // 2)
        fl = Flight(trials, done, max_in_flight, threads, plan.may_repeat(), refill=refill)
        if self.source is None and not self.rp.cfg.runner.max_in_flight:
            fl.base_in_flight = max_in_flight
        if self.source is None and not fl.may_repeat and not done:  # nothing to skip: no trial need be built here
            fl.recipe = plan.axis_trials()
        outcome = RunOutcome(counts)
        self._announce("start")
        live = self.live
        if self.source is not None and self.source.prunes:  # the search reads the reports too
            self.source.client = self.client
            live = _both(self.live, self.source.on_live)
        self.client.subscribe_topic(TOPIC_LIVE, live)
        previous = self._listen()
        self.progress.start()
        try:
            self._fill(fl)
            max_failures = self.rp.cfg.max_failures
            while fl.pending and not outcome.stopped_early:
                # a refill's worth of ended tasks, fetched together: then one refill, one graph update
                for fut, result in self.submitter.results(fl.ac, min(fl.refill, len(fl.pending))):
                    self._finished(fl, fut, result)
                    if max_failures is not None and counts.bad >= max_failures:
                        outcome.stopped_early = True
                        self._cancel(fl.pending)
                        break
                else:
                    self._fill(fl)
                    self.progress.update()
                    self.events.maybe_send(self.client.log_event)
        except KeyboardInterrupt:
            outcome.interrupted = True
            self._cancel(fl.pending)
        finally:
            if fl.pending:  # stopped by an error: nothing may go on fetching results
                with contextlib.suppress(Exception):
                    fl.ac.clear()
                    self.client.cancel(list(fl.pending))
            self.progress.stop()
            self.store.close()
            with contextlib.suppress(Exception):
                unsubscribe(self.client, TOPIC_LIVE)
            self._unlisten(previous)
            with contextlib.suppress(Exception):  # a lost scheduler must not hide the run's own outcome
                self.events.send(self.client.log_event)
            self._announce("end")
        if self.source is not None:
            counts.skipped += self.source.skipped  # asked points whose replicates were all known
            outcome.search = self.source.summary()
        outcome.slowest = sorted(self.tally.slowest, reverse=True)
        outcome.errors = self.tally.errors
        return outcome

    def _fill(self, fl: Flight) -> None:
        """Submit until ``max_in_flight`` tasks are in flight: trials to run again first. New
        chunks go in refills of ``fl.refill`` or more, each one graph update for the scheduler."""
        if fl.base_in_flight is not None:  # short tasks on a small cluster: deeper refills
            fl.max_in_flight = self.sizer.depth(fl.base_in_flight, fl.remaining(self.counts.total), fl.threads)
            fl.refill = max(1, fl.max_in_flight // 2)
        for d in self.recovery.handle(SlotsFree(fl.max_in_flight - len(fl.pending))):
            if isinstance(d, Submit):
                self._send(fl, [[d.trial]], quarantine=d.in_child)
        if fl.pending and fl.max_in_flight - len(fl.pending) < fl.refill:
            return  # enough queued: wait for a refill's worth of free slots
        chunks: List[Sequence[Trial]] = []
        while not fl.drained and len(fl.pending) + len(chunks) < fl.max_in_flight:
            sent = len(fl.pending) + len(chunks)
            slots = self.sizer.slots(fl.max_in_flight - sent, sent, fl.threads)
            size = self.sizer.size(fl.remaining(self.counts.total), fl.threads, slots)
            batch = fl.take(size, self.counts)
            if not batch:
                break
            chunks.append(batch)
        if chunks:
            self._send(fl, chunks)

    def _send(self, fl: Flight, chunks: List[Sequence[Trial]], quarantine: bool = False) -> None:
        # a chunk of trials not yet measured, or grown slower, stops at its time budget
        budget = None if quarantine else self.sizer.budget(fl.threads)
        for fut, batch in zip(self._submit(chunks, budget, quarantine=quarantine), chunks):
            fl.pending[fut] = batch
            fl.ac.add(fut)
            self.counts.in_flight += len(batch)

    def _submit(self, chunks: List[Sequence[Trial]], budget_s: Optional[float], quarantine: bool = False) -> List[Any]:
        """Submit chunks of trials as they are (a ``Trial`` is what a worker reads of an item),
        all in one graph update, each stopping at ``budget_s``; their futures."""
        futs = self.submitter.submit(self.quarantine_spec if quarantine else self.spec, chunks, budget_s)
        self._n_chunks = self.submitter.n
        return futs

    def _finished(self, fl: Flight, fut: Any, result: Any) -> None:
        """One task ended: tell the recovery machine, write what it decides."""
        batch = fl.pending.pop(fut)
        self.counts.in_flight -= len(batch)
        if isinstance(result, tuple) and len(result) == 3 and isinstance(result[1], BaseException):
            result = result[1]  # as_completed(raise_errors=False) gives (type, exc, tb)
        while self._removed:  # the deaths that arrived before this result
            self.recovery.handle(WorkerRemoved(self._removed.popleft()))
        tables: Dict[str, Any] = {}
        if isinstance(result, KilledWorker):
            last = getattr(getattr(result, "last_worker", None), "address", "?")
            event: Any = ChunkKilled(fut.key, batch, int(result.allowed_failures), str(last))
        elif isinstance(result, BaseException):
            if self.client.status not in ("running", "connecting"):
                raise ClusterError(f"lost the connection to the Dask scheduler: {result}")
            event = ChunkRaised(fut.key, batch, f"{type(result).__name__}: {result}")
        else:
            self.sizer.observe(result)
            if result.n < len(batch):  # it stopped at its time budget: the rest go again
                fl.give_back(unrun(batch, result.n))
            self.events.add(result.table, result.counts)
            if self.source is None and self.recovery.passes_through(fut.key, batch):
                self._record_table(batch, result)  # the hot path: no row is touched
                return
            event, tables = ChunkDone(fut.key, batch, result.rows()), result.tables
        rows = _rows(self.recovery.handle(event))
        self._record(batch, rows, tables if rows else {})

    def _announce(self, event: str) -> None:
        """Tell the scheduler (status page, Prometheus) that the sweep starts or ends."""
        c = self.counts
        msg = {
            "event": event,
            "experiment": self.rp.cfg.name,
            "run_id": self.run_id,
            "time": time.time(),
            "total": c.total,
            "results": str(self.rp.results_dir),
            "counts": {
                "ok": c.ok,
                "failed": c.failed,
                "timeout": c.timeout,
                "cancelled": c.cancelled,
                "skipped": c.skipped,
            },
        }
        with contextlib.suppress(Exception):  # a lost scheduler must not hide the run's own outcome
            self.client.log_event(TOPIC_SWEEP, msg)

    def _cancel(self, pending: Dict[Any, Sequence[Trial]]) -> None:
        """Cancel what is still queued or running; record those trials as cancelled."""
        futs = list(pending)
        try:
            self.client.cancel(futs)
        except Exception:  # the cluster may already be gone; the rows still get written
            pass
        batches = [pending.pop(fut) for fut in futs]
        for batch in batches:
            self.counts.in_flight -= len(batch)
        rows = _rows(self.recovery.handle(Cancel([t for batch in batches for t in batch])))
        self.counts.cancelled += len(rows)
        self.store.add(rows, {})

    # -- workers that die --------------------------------------------------------
    def _listen(self) -> Any:
        """Subscribe to the scheduler's ``all`` topic; the handler it replaces, if any."""
        previous = topic_handler(self.client, "all")  # a user's own client may listen to "all" already
        self.client.subscribe_topic(
            "all", self._cluster_event if previous is None else _both(previous, self._cluster_event)
        )
        return previous

    def _unlisten(self, previous: Any) -> None:
        with contextlib.suppress(Exception):
            if previous is None:
                unsubscribe(self.client, "all")
            else:
                self.client.subscribe_topic("all", previous)

    def _cluster_event(self, event: Tuple[float, Dict[str, Any]]) -> None:
        """Handler for the scheduler's ``all`` topic (runs on the client's loop)."""
        msg = event[1] if isinstance(event, tuple) and len(event) == 2 else None
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
            return
        keys = tuple(k for k in msg.get("processing-tasks") or () if isinstance(k, str))
        if keys:
            self._removed.append(keys)

    def _record_table(self, batch: Sequence[Trial], result: ChunkResult) -> None:
        """A chunk's rows as the worker built them: counted from its summary, written as one table."""
        self.tally.chunk(batch, result)
        self.store.add_table(result.table, result.tables)

    def _record(self, batch: Sequence[Trial], rows: List[Row], tables: Dict[str, Any]) -> None:
        """Rows (dicts) the recovery machine wrote or settled: counted and written one by one."""
        if self.source is not None:
            self.source.before_write(rows)  # its trial number; an ok row without the objective fails
        self.tally.rows(batch, rows)
        self.store.add(rows, tables)
        if self.source is not None:
            self.store.flush()  # on disk before the study hears of it: a study never knows a row the table lacks
            self.source.after_write(rows)


def _rows(decisions: List[Decision[Trial]]) -> List[Row]:
    """The rows the decisions write."""
    return [r for d in decisions if isinstance(d, Write) for r in d.rows]


def _both(first: Any, second: Any) -> Any:
    """One event handler that calls two (a client keeps one per topic)."""

    def handler(event: Any) -> None:
        try:
            first(event)
        finally:
            second(event)

    return handler
