"""Crash recovery as a pure state machine: events in, decisions out.

In the manner of distributed's ``worker_state_machine``: :class:`Recovery` holds
what the driver knows about trials whose workers died, and changes only through
:meth:`Recovery.handle`. It takes plain data (task keys, trials with an id, a
seed and a replicate, counts) and returns plain decisions; it imports no Dask,
holds no ``Client`` and does no I/O, so its rules are tested in milliseconds
(tests/test_recovery.py). :class:`~daskbench.runner.driver.Runner` pumps the
events and carries out the decisions.

Events:

- :class:`WorkerRemoved`: the scheduler removed a worker, with the keys of the
  tasks it held (running or next in its queue). Dask runs those tasks again
  elsewhere, silently; every trial of such a task is charged one lost run in its
  ``attempts``. These arrive before the tasks' results.
- :class:`ChunkDone`: a task returned its rows.
- :class:`ChunkKilled`: Dask gave up on a task (``KilledWorker``) after
  ``allowed_failures + 1`` workers died running it.
- :class:`ChunkRaised`: a task failed outside any trial.
- :class:`SlotsFree`: the driver can submit this many more tasks.
- :class:`Cancel`: the sweep stops; these trials' tasks are cancelled.

Decisions: :class:`Write` (rows for the ``trials`` table) and :class:`Submit`
(run a trial again, alone in its task, and why).

The rules, on ``KilledWorker``:

1. a chunk of several trials is split: each runs again alone in its task
   (:attr:`Why.SPLIT`), so only the culprit's worker dies again;
2. a trial alone in its task is *quarantined*: run in a child process limited to
   the worker's memory (:attr:`Why.QUARANTINE`), where a trial that crashes or
   eats memory fails with its own cause, which its row then blames for the deaths;
3. a quarantined trial that turns out to need its Dask worker (it fails with
   :attr:`~daskbench.results.row.FailureKind.NEEDS_WORKER`) runs alone in its
   worker's thread instead (:attr:`Why.IN_THREAD`); that stop is not an attempt;
4. a quarantined trial whose worker still dies (the machine, not the trial) is
   run again (:attr:`Why.CRASH_RETRY`) until more than ``crash_retries`` deaths
   while quarantined, then written ``failed``
   (:attr:`~daskbench.results.row.FailureKind.WORKER_LOST`).

Nothing is failed on a worker death alone before the quarantine has had its say:
Dask counts every task a dead worker held as suspicious, and so does ``attempts``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Deque, Dict, Generic, List, Optional, Protocol, Sequence, Set, Tuple, TypeVar, Union

from ..results import row as trow
from ..results.row import CRASHED, FailureKind, Row, Status


class TrialRef(Protocol):
    """What the machine needs of a trial (the sweep's ``Trial`` is one)."""

    @property
    def trial_id(self) -> str: ...

    @property
    def seed(self) -> Optional[int]: ...

    @property
    def replicate(self) -> int: ...


T = TypeVar("T", bound=TrialRef)


class Why(StrEnum):
    """Why a trial runs again."""

    SPLIT = "split"  #: its chunk's workers kept dying: one trial per task
    QUARANTINE = "quarantine"  #: alone, in a child process limited to the worker's memory
    IN_THREAD = "in_thread"  #: quarantined, but it needs its worker: alone, in its worker's thread
    CRASH_RETRY = "crash_retry"  #: quarantined and its worker died again: runner.crash_retries


# -- events ----------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerRemoved:
    """The scheduler removed a worker that held these task keys."""

    keys: Tuple[str, ...]


@dataclass(frozen=True)
class ChunkDone(Generic[T]):
    """Task ``key``, running ``trials``, returned ``rows`` (one per trial)."""

    key: str
    trials: Sequence[T]
    rows: List[Row]


@dataclass(frozen=True)
class ChunkKilled(Generic[T]):
    """Dask gave up on task ``key`` (``KilledWorker``)."""

    key: str
    trials: Sequence[T]
    allowed_failures: int
    last_worker: str


@dataclass(frozen=True)
class ChunkRaised(Generic[T]):
    """Task ``key`` failed outside any trial, with ``error`` (type and message)."""

    key: str
    trials: Sequence[T]
    error: str


@dataclass(frozen=True)
class SlotsFree:
    """The driver may submit ``n`` more tasks."""

    n: int


@dataclass(frozen=True)
class Cancel(Generic[T]):
    """The sweep stops: the tasks of ``trials`` are cancelled, and so is every rerun."""

    trials: Sequence[T]


Event = Union[WorkerRemoved, ChunkDone[T], ChunkKilled[T], ChunkRaised[T], SlotsFree, Cancel[T]]


# -- decisions --------------------------------------------------------------------
@dataclass(frozen=True)
class Write:
    """Rows to write to the ``trials`` table."""

    rows: List[Row]


@dataclass(frozen=True)
class Submit(Generic[T]):
    """Run ``trial`` again, alone in its task; ``in_child``: in a child process
    limited to the worker's memory (the quarantine)."""

    trial: T
    why: Why
    in_child: bool


Decision = Union[Write, Submit[T]]


class Recovery(Generic[T]):
    """The state of crash recovery for one run; see the module docstring.

    ``key_prefix``: the run's task keys start with it (a shared cluster runs other
    tasks too). ``crash_retries``: ``runner.crash_retries``.
    """

    def __init__(self, crash_retries: int, key_prefix: str = "") -> None:
        self.crash_retries = crash_retries
        self.key_prefix = key_prefix
        self.task_deaths: Dict[str, int] = {}  # task key -> workers lost while it held it
        self.trial_deaths: Dict[str, int] = {}  # trial id -> runs lost with a worker
        self.quarantined: Dict[str, int] = {}  # trial id -> workers lost while quarantined
        self.needs_worker: Set[str] = set()  # quarantined, but it uses its worker: alone, in its thread
        self.reruns: Deque[Tuple[T, Why]] = deque()  # to run again, one per task, before new trials

    def handle(self, event: Event[T]) -> List[Decision[T]]:
        """Apply one event; the decisions the driver is to carry out, in order."""
        if isinstance(event, ChunkDone):
            return self._done(event)
        if isinstance(event, WorkerRemoved):
            for key in event.keys:
                if key.startswith(self.key_prefix):
                    self.task_deaths[key] = self.task_deaths.get(key, 0) + 1
            return []
        if isinstance(event, SlotsFree):
            return self._submit(event.n)
        if isinstance(event, ChunkKilled):
            return self._killed(event)
        if isinstance(event, ChunkRaised):
            self._charge(event.key, event.trials, 0)
            return [Write([self._end(t, FailureKind.CHUNK_FAILED, event.error) for t in event.trials])]
        return self._cancel(event)

    def passes_through(self, key: str, trials: Sequence[T]) -> bool:
        """Whether a :class:`ChunkDone` of task ``key`` running ``trials`` would change
        nothing and write its rows as they came (no run of them was lost with a worker,
        none is quarantined): the driver may then write the chunk's table without
        building its rows, and need not send the event."""
        if key in self.task_deaths or self.trial_deaths:
            return False
        return not (len(trials) == 1 and trials[0].trial_id in self.quarantined)

    def in_child(self, trial_id: str) -> bool:
        """Whether the trial's next run is quarantined in a child process."""
        return trial_id in self.quarantined and trial_id not in self.needs_worker

    # -- transitions -------------------------------------------------------------
    def _charge(self, key: str, trials: Sequence[T], at_least: int) -> None:
        """Runs of task ``key`` lost with a worker: charged to each of its trials."""
        n = max(self.task_deaths.pop(key, 0), at_least)
        if not n:
            return
        for t in trials:
            self.trial_deaths[t.trial_id] = self.trial_deaths.get(t.trial_id, 0) + n
        tid = trials[0].trial_id
        if len(trials) == 1 and tid in self.quarantined:
            self.quarantined[tid] += n

    def _done(self, event: ChunkDone[T]) -> List[Decision[T]]:
        self._charge(event.key, event.trials, 0)
        rows, tid = event.rows, event.trials[0].trial_id
        if (
            len(event.trials) == 1
            and len(rows) == 1
            and self.in_child(tid)
            and trow.kind_of(rows[0]) is FailureKind.NEEDS_WORKER
        ):
            # it stopped at get_worker(): not an attempt of the trial's work
            self.needs_worker.add(tid)
            self.reruns.append((event.trials[0], Why.IN_THREAD))
            return []
        if self.trial_deaths:  # runs lost with a worker before these (else nothing to do: the hot path)
            for row in rows:
                self._settle(row)
        return [Write(rows)]

    def _settle(self, row: Row) -> None:
        """A trial ended with a row of its own: count its lost runs, and blame it if
        it crashed its quarantine's process after killing workers."""
        tid = row["trial_id"]
        deaths = self.trial_deaths.pop(tid, 0)
        row["attempts"] = row.get("attempts", 0) + deaths
        self.needs_worker.discard(tid)
        if (
            self.quarantined.pop(tid, None) is not None
            and deaths
            and row.get("status") == Status.FAILED
            and trow.kind_of(row) in CRASHED
        ):
            row["error"] = (
                f"KilledWorker: the worker died while running this trial ({deaths} time(s)); "
                f"run alone in a child process limited to the worker's memory, it failed with: "
                f"{row.get('error')}"
            )

    def _killed(self, event: ChunkKilled[T]) -> List[Decision[T]]:
        # exact: Dask gives up after allowed_failures + 1 deaths, and its last
        # remove-worker event may still be on its way
        self._charge(event.key, event.trials, event.allowed_failures + 1)
        if len(event.trials) > 1:
            self.reruns.extend((t, Why.SPLIT) for t in event.trials)  # only the culprit's dies again
            return []
        t = event.trials[0]
        if t.trial_id not in self.quarantined:
            self.quarantined[t.trial_id] = 0  # next: alone, in a child process
            self.reruns.append((t, Why.QUARANTINE))
            return []
        deaths = self.quarantined[t.trial_id]
        if deaths <= self.crash_retries:
            self.reruns.append((t, Why.CRASH_RETRY))
            return []
        error = (
            f"KilledWorker: the worker died while running this trial, {self.trial_deaths.get(t.trial_id, 0)} "
            f"time(s), the last on {event.last_worker}, {deaths} of them while it ran alone (in a child "
            "process where it can): the worker's machine, not the trial, seems to be failing "
            "(runner.crash_retries sets how often such a trial is tried)"
        )
        return [Write([self._end(t, FailureKind.WORKER_LOST, error)])]

    def _submit(self, n: int) -> List[Decision[T]]:
        out: List[Decision[T]] = []
        while self.reruns and len(out) < n:
            t, why = self.reruns.popleft()
            out.append(Submit(t, why, self.in_child(t.trial_id)))
        return out

    def _cancel(self, event: Cancel[T]) -> List[Decision[T]]:
        trials = list(event.trials) + [t for t, _ in self.reruns]  # reruns: waiting after their worker died
        self.reruns.clear()
        rows = [self._end(t, FailureKind.CANCELLED, "cancelled before it finished", Status.CANCELLED) for t in trials]
        return [Write(rows)] if rows else []

    def _end(self, t: T, kind: FailureKind, error: str, status: Status = Status.FAILED) -> Row:
        """The row of a trial that ends without a row of its own; forgets the trial."""
        self.quarantined.pop(t.trial_id, None)
        self.needs_worker.discard(t.trial_id)
        attempts = self.trial_deaths.pop(t.trial_id, 0)
        return trow.ended(t.trial_id, t.seed, t.replicate, attempts, status, kind, error)
