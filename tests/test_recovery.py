"""Crash recovery's state machine, driven with plain events: no cluster, milliseconds.

The same rules on real processes (workers SIGKILLed, trials that crash them) are
in test_faults.py; the scenarios here mirror those, event by event.
"""

from __future__ import annotations

import subprocess
import sys
from typing import List, NamedTuple, Optional

from daskbench.results import row
from daskbench.results.row import FailureKind, Status
from daskbench.runner.recovery import (
    Cancel,
    ChunkDone,
    ChunkKilled,
    ChunkRaised,
    Recovery,
    SlotsFree,
    Submit,
    Why,
    WorkerRemoved,
    Write,
)

P = "exp-run1-"  # the run's task key prefix


class Ref(NamedTuple):
    trial_id: str
    seed: Optional[int] = None
    replicate: int = 0


A, B, C, D = Ref("a", 1), Ref("b", 2), Ref("c", 3), Ref("d", 4)


def machine(crash_retries: int = 2) -> Recovery[Ref]:
    return Recovery(crash_retries, key_prefix=P)


def ok(t: Ref, attempts: int = 1, **metrics) -> row.Row:
    r = row.started(t.trial_id, t.seed, t.replicate, "tcp://w:1")
    row.set_ok(r, metrics)
    r["attempts"] = attempts
    return r


def failed(t: Ref, kind: FailureKind, error: str, attempts: int = 1) -> row.Row:
    r = row.started(t.trial_id, t.seed, t.replicate, "tcp://w:1")
    row.set_failed(r, Status.FAILED, kind, error, "Traceback ...")
    r["attempts"] = attempts
    return r


def killed(key: str, *trials: Ref, allowed_failures: int = 0) -> ChunkKilled[Ref]:
    return ChunkKilled(P + key, trials, allowed_failures, "tcp://w:2")


def written(decisions) -> List[row.Row]:
    assert all(isinstance(d, Write) for d in decisions), decisions
    return [r for d in decisions for r in d.rows]


def test_a_chunk_without_deaths_is_written_as_it_came():
    m = machine()
    rows = [ok(A, y=1), ok(B, y=2)]
    (d,) = m.handle(ChunkDone(P + "1", [A, B], rows))
    assert d == Write(rows) and d.rows[0] is rows[0] and rows[0]["attempts"] == 1
    assert m.handle(SlotsFree(10)) == []


def test_runs_lost_with_a_worker_before_the_result_count_in_attempts_of_every_trial_of_the_task():
    m = machine()
    # the worker held task 1 (running) and task 2 (next in its queue); task 9 is another run's
    assert m.handle(WorkerRemoved((P + "1", P + "2", "other-run-9"))) == []
    m.handle(WorkerRemoved((P + "1",)))  # task 1 lost twice
    assert [r["attempts"] for r in written(m.handle(ChunkDone(P + "1", [A, B], [ok(A), ok(B)])))] == [3, 3]
    assert [r["attempts"] for r in written(m.handle(ChunkDone(P + "2", [C], [ok(C)])))] == [2]
    assert m.task_deaths == {} and m.trial_deaths == {}


def test_a_removal_after_the_result_changes_nothing_written():
    m = machine()
    first = written(m.handle(ChunkDone(P + "1", [A], [ok(A)])))
    m.handle(WorkerRemoved((P + "1",)))  # late: the task's result is in already
    assert first[0]["attempts"] == 1
    assert written(m.handle(ChunkDone(P + "2", [B], [ok(B)])))[0]["attempts"] == 1
    assert m.trial_deaths == {} and m.handle(SlotsFree(5)) == []


def test_killed_worker_splits_a_chunk_one_trial_per_task_and_counts_every_death():
    m = machine()
    m.handle(WorkerRemoved((P + "1",)))
    # Dask gave up after allowed_failures + 1 = 3 deaths; only one removal has arrived yet
    assert m.handle(killed("1", A, B, C, allowed_failures=2)) == []
    assert m.handle(SlotsFree(2)) == [Submit(A, Why.SPLIT, False), Submit(B, Why.SPLIT, False)]
    assert m.handle(SlotsFree(2)) == [Submit(C, Why.SPLIT, False)]
    rows = written(m.handle(ChunkDone(P + "2", [B], [ok(B)])))
    assert rows[0]["attempts"] == 4  # three lost with the chunk, then this one


def test_a_trial_that_crashes_its_quarantine_is_blamed_with_its_own_cause():
    """test_faults: a chunk of four, trial 5 os._exits; split, alone, then its child process."""
    m = machine()
    m.handle(killed("1", A, B, C, D))
    [m.handle(SlotsFree(1)) for _ in range(4)]
    written(m.handle(ChunkDone(P + "3", [A], [ok(A)])))
    assert m.handle(killed("4", B)) == []  # alone, its worker died again: quarantine
    assert m.handle(SlotsFree(1)) == [Submit(B, Why.QUARANTINE, True)]
    assert m.in_child("b") and not m.in_child("a")
    cause = "TrialProcessDied: the trial's process exited with status 3 before returning a result (os._exit?)"
    (r,) = written(m.handle(ChunkDone(P + "7", [B], [failed(B, FailureKind.PROCESS_DIED, cause)])))
    assert r["error"] == (
        "KilledWorker: the worker died while running this trial (2 time(s)); run alone in a "
        "child process limited to the worker's memory, it failed with: " + cause
    )
    assert r["attempts"] == 3 and r["status"] == "failed" and r["failure_kind"] == "process_died"
    assert m.quarantined == {} and m.trial_deaths == {"c": 1, "d": 1}  # c and d are still to come back


def test_a_quarantined_trial_out_of_memory_is_blamed_but_one_that_raises_is_not():
    m = machine()
    for t in (A, B):
        m.handle(killed(t.trial_id, t))
    m.handle(SlotsFree(2))
    (oom,) = written(m.handle(ChunkDone(P + "3", [A], [failed(A, FailureKind.OUT_OF_MEMORY, "MemoryError: ")])))
    assert oom["error"].startswith("KilledWorker: the worker died while running this trial (1 time(s)); ")
    assert oom["error"].endswith("it failed with: MemoryError: ")
    (raised,) = written(m.handle(ChunkDone(P + "4", [B], [failed(B, FailureKind.RAISED, "ValueError: no")])))
    assert raised["error"] == "ValueError: no" and raised["attempts"] == 2


def test_a_quarantined_trial_whose_worker_keeps_dying_fails_after_crash_retries():
    """test_faults: crash_retries=1; the machine, not the trial, is failing."""
    m = machine(crash_retries=1)
    assert m.handle(killed("1", A)) == []
    assert m.handle(SlotsFree(4)) == [Submit(A, Why.QUARANTINE, True)]
    assert m.handle(killed("2", A)) == []  # 1 death while quarantined: <= crash_retries
    assert m.handle(SlotsFree(4)) == [Submit(A, Why.CRASH_RETRY, True)]
    (r,) = written(m.handle(killed("3", A)))
    assert r["error"] == (
        "KilledWorker: the worker died while running this trial, 3 time(s), the last on tcp://w:2, 2 of them "
        "while it ran alone (in a child process where it can): the worker's machine, not the trial, seems to "
        "be failing (runner.crash_retries sets how often such a trial is tried)"
    )
    assert (r["status"], r["failure_kind"], r["attempts"], r["seed"]) == ("failed", "worker_lost", 3, 1)
    assert m.handle(SlotsFree(4)) == [] and m.quarantined == {} and m.trial_deaths == {}


def test_crash_retries_zero_fails_at_the_first_death_in_quarantine():
    m = machine(crash_retries=0)
    m.handle(killed("1", A))
    m.handle(SlotsFree(1))
    m.handle(WorkerRemoved((P + "2",)))
    (r,) = written(m.handle(killed("2", A)))
    assert "2 time(s)" in r["error"] and "1 of them while it ran alone" in r["error"] and r["attempts"] == 2


def test_a_quarantined_trial_that_needs_its_worker_runs_alone_in_its_thread():
    """test_faults: it uses get_worker(); after two deaths its ok row counts both lost runs."""
    m = machine()
    m.handle(killed("1", A, B, C))
    m.handle(SlotsFree(3))
    m.handle(killed("2", B))
    assert m.handle(SlotsFree(1)) == [Submit(B, Why.QUARANTINE, True)]
    stop = failed(B, FailureKind.NEEDS_WORKER, "TrialNeedsWorker: this trial runs in a child process ...")
    assert m.handle(ChunkDone(P + "5", [B], [stop])) == []  # not written: not an attempt
    assert m.handle(SlotsFree(1)) == [Submit(B, Why.IN_THREAD, False)]
    assert not m.in_child("b")
    m.handle(killed("6", B))  # its worker dies again, in the thread: retried there, never in a child
    assert m.handle(SlotsFree(1)) == [Submit(B, Why.CRASH_RETRY, False)]
    (r,) = written(m.handle(ChunkDone(P + "7", [B], [ok(B, y=1)])))
    assert r["attempts"] == 4 and r["status"] == "ok"
    assert m.needs_worker == set() and m.quarantined == {}


def test_a_trial_that_needs_its_worker_outside_a_quarantine_is_written_failed():
    """runner.isolation=process with a trial that uses its worker: the user's own setting."""
    m = machine()
    stop = failed(A, FailureKind.NEEDS_WORKER, "TrialNeedsWorker: ...")
    assert written(m.handle(ChunkDone(P + "1", [A], [stop]))) == [stop]


def test_a_chunk_that_raises_fails_each_of_its_trials_with_its_lost_runs():
    m = machine()
    m.handle(WorkerRemoved((P + "1",)))
    rows = written(m.handle(ChunkRaised(P + "1", [A, B], "OSError: cannot send")))
    assert [(r["trial_id"], r["status"], r["failure_kind"], r["error"], r["attempts"]) for r in rows] == [
        ("a", "failed", "chunk_failed", "OSError: cannot send", 1),
        ("b", "failed", "chunk_failed", "OSError: cannot send", 1),
    ]


def test_cancel_writes_the_pending_trials_and_every_rerun_as_cancelled():
    m = machine()
    m.handle(killed("1", A, B))  # both wait to run again
    rows = written(m.handle(Cancel([C])))
    assert [(r["trial_id"], r["status"], r["failure_kind"], r["attempts"]) for r in rows] == [
        ("c", "cancelled", "cancelled", 0),
        ("a", "cancelled", "cancelled", 1),
        ("b", "cancelled", "cancelled", 1),
    ]
    assert {r["error"] for r in rows} == {"cancelled before it finished"}
    assert m.handle(SlotsFree(5)) == [] and m.trial_deaths == {} and m.handle(Cancel([])) == []


def test_the_machine_imports_neither_dask_nor_pyarrow():
    code = (
        "import sys, daskbench.runner.recovery; "
        "print(sorted(m for m in ('distributed', 'dask', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _state(m: Recovery[Ref]):
    return (dict(m.task_deaths), dict(m.trial_deaths), dict(m.quarantined), set(m.needs_worker), list(m.reruns))


def test_passes_through_only_when_the_event_would_write_the_rows_as_they_came_and_change_nothing():
    """The driver writes a chunk's table without building rows when passes_through says so:
    it must be exactly the case where ChunkDone returns the rows untouched."""
    m = machine()
    assert m.passes_through(P + "1", [A, B])
    before = _state(m)
    rows = [ok(A), ok(B)]
    assert m.handle(ChunkDone(P + "1", [A, B], rows)) == [Write(rows)] and _state(m) == before
    m.handle(WorkerRemoved((P + "2",)))  # task 2's worker died: its trials' attempts grow
    assert not m.passes_through(P + "2", [C])
    assert m.passes_through(P + "3", [D])  # another task is untouched while no trial owes a death
    m.handle(ChunkDone(P + "2", [C], [ok(C)]))
    m.handle(killed("4", A))  # A alone: quarantined next, and it owes a run lost with a worker
    assert not m.passes_through(P + "5", [A]) and not m.passes_through(P + "6", [B, C])
    m.handle(ChunkDone(P + "5", [A], [ok(A)]))  # settled: its attempts count the lost run
    assert m.passes_through(P + "6", [B, C]) and m.passes_through(P + "7", [A])
