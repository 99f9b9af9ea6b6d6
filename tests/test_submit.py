"""runner.submit.Submitter.results on fakes: every ended future comes out exactly once."""

from __future__ import annotations

from typing import Any, List

from daskbench.runner.submit import Submitter
from daskbench.sweep.axes import axis_from_override, parse_override
from daskbench.sweep.plan import SweepPlan


class FlippingFuture:
    """A future whose status changes as it is read, as one does whose finished result was
    lost with its worker and computed again elsewhere meanwhile."""

    def __init__(self, key: str, statuses: List[str]) -> None:
        self.key, self._statuses = key, list(statuses)

    @property
    def status(self) -> str:
        return self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0]

    def result(self) -> Any:
        return f"value of {self.key}"


class Batches:
    def __init__(self, futs: List[Any]) -> None:
        self.futs = futs

    def next_batch(self, block: bool = True) -> List[Any]:
        futs, self.futs = self.futs, []
        return futs

    def is_empty(self) -> bool:
        return not self.futs


class Client:
    scheduler = None

    def gather(self, futs: List[Any], direct: Any = None) -> List[Any]:
        return [f"value of {f.key}" for f in futs]


def test_a_future_whose_status_changes_while_read_comes_out_once():
    futs = [
        FlippingFuture("lost-then-finished", ["lost", "finished"]),
        FlippingFuture("finished-then-lost", ["finished", "lost"]),
        FlippingFuture("error", ["error"]),
    ]
    out = Submitter(Client(), "k-", {}, 0, 0).results(Batches(futs), need=3)  # type: ignore[arg-type]
    assert sorted(f.key for f, _ in out) == sorted(f.key for f in futs)
    assert all(v == f"value of {f.key}" for f, v in out)


def test_short_tasks_queue_deeper_long_ones_keep_four_per_thread():
    from daskbench.runner.chunking import MAX_DEEP, ChunkSizer

    one = ChunkSizer(fixed=1)
    assert one.depth(8, 10_000, 2) == 8  # nothing measured yet: the usual depth
    one.mean_s = 1e-4  # 0.1 ms tasks: half a second of them per thread, at most MAX_DEEP
    assert one.depth(8, 10_000, 2) == MAX_DEEP
    one.mean_s = 1.0  # long trials: as before
    assert one.depth(8, 10_000, 2) == 8
    auto = ChunkSizer(fixed=None)
    auto.mean_s = 1e-5  # chunks of 5000 no-ops: no more trials in flight than 8 full chunks
    assert auto.size(10**6, 2) == 5000 and auto.depth(8, 10**6, 2) == 8
    assert ChunkSizer(fixed=100, mean_s=1e-5).depth(8, 10**6, 2) == min(
        MAX_DEEP, 8 * 5000 // 100
    )  # 8 full chunks of trials, at most MAX_DEEP
    assert ChunkSizer(fixed=1, mean_s=1e-4).depth(4000, 10**6, 1000) == 4000  # a large cluster: as it was


def test_a_large_cluster_gets_tasks_long_enough_for_the_scheduler():
    """The task length grows with the cluster past 125 threads (2 x threads x 2 ms of the
    scheduler's or the driver's CPU a task), so 1 s trials on 10,000 threads are not 10,000
    tasks a second; the spread cap still splits the end of a sweep, and a small cluster is
    as before."""
    from daskbench.runner.chunking import ChunkSizer

    one_s = ChunkSizer(fixed=None, mean_s=1.0)
    assert one_s.size(10**6, 2) == 1 and one_s.size(10**6, 125) == 1  # 0.5 s tasks: one trial each
    assert one_s.target(2) == 0.5 and one_s.target(1_000) == 4.0
    assert one_s.size(10**6, 1_000) == 4
    assert one_s.size(10**6, 10_000) == 40
    assert one_s.size(100_000, 10_000) == 5  # two chunks a thread: the end of the sweep balances
    assert ChunkSizer(fixed=1, mean_s=1.0).size(10**6, 10_000) == 1  # runner.chunk_size is kept
    short = ChunkSizer(fixed=None, mean_s=1e-3)
    assert short.size(10**6, 2) == 500 and short.size(10**8, 10_000) == 5000  # runner.max_chunk_size


def test_chunks_go_out_before_a_trial_is_measured_and_carry_a_time_budget():
    """No probe wave: unmeasured chunks are sized by the spread alone (at most FIRST_MAX),
    the last slots of a refill take what is left, and every automatic chunk stops at its
    budget (2 task lengths); runner.chunk_size fixes both size and no budget."""
    from daskbench.runner.chunking import BUDGET_TARGETS, FIRST_MAX, ROUND_TRIP_S, ChunkSizer

    fresh = ChunkSizer(fixed=None)
    assert fresh.size(200, 2, slots=8) == 50  # a quarter per thread pair, not one trial
    assert fresh.size(15, 2, slots=1) == 15  # the refill's last slot: the rest, no tail left
    assert fresh.size(10**6, 2, slots=8) == FIRST_MAX  # a long sweep's first chunks stay small
    assert fresh.size(3, 2, slots=8) == 1
    assert fresh.budget(2) == BUDGET_TARGETS * 0.5 and fresh.budget(10_000) == BUDGET_TARGETS * 40.0
    assert ChunkSizer(fixed=7).budget(2) is None and ChunkSizer(fixed=7).size(200, 2, slots=8) == 7
    measured = ChunkSizer(fixed=None, mean_s=1e-3)
    assert measured.size(15, 2, slots=1) == 15  # 15 ms: shorter than a refill's round trip
    rest = int(2 * ROUND_TRIP_S / 1e-3)  # twice as long as a round trip: spread, not taken at once
    assert measured.size(rest, 2, slots=1) == -(-rest // 4)


def test_trials_a_chunk_did_not_run_are_handed_out_again_first():
    from daskbench.observe.progress import Counts
    from daskbench.runner.flight import Flight, unrun
    from daskbench.sweep.batch import TrialSlice

    plan = SweepPlan(
        "p", [axis_from_override(parse_override("trial.x=range(0,100)"))], {(): {"trial": {"_target_": "m.f"}}}
    )
    recipe = plan.axis_trials()
    fl = Flight(iter(()), set(), 8, 2, False, ac=None)  # bookkeeping only: no Dask here
    fl.recipe = recipe
    counts = Counts()
    first = fl.take(40, counts)
    assert isinstance(first, TrialSlice) and (first.start, first.stop) == (0, 40)
    fl.give_back(unrun(first, 10))  # the chunk ran 10 of its 40
    assert fl.remaining(100) == 100 - 40 + 30 and not fl.drained
    again = fl.take(25, counts)  # handed back first, still a slice: no trial built
    assert isinstance(again, TrialSlice) and (again.start, again.stop) == (10, 35)
    assert [t.trial_id for t in again] == [t.trial_id for t in list(plan)[10:35]]
    assert (fl.take(25, counts).start, fl.n_returned) == (35, 0)  # the rest of it, then...
    nxt = fl.take(25, counts)
    assert (nxt.start, nxt.stop) == (40, 65)  # ...the sweep goes on where it was
    trials = list(plan)[:5]
    assert list(unrun(trials, 2)) == trials[2:]  # a list of trials (a resumed sweep) likewise


def _first_wave(sizer, n: int, threads: int = 2, in_flight: int = 8) -> list:
    """The chunk sizes the driver's first refill sends for ``n`` unmeasured trials."""
    sizes: list = []
    left = n
    while left and len(sizes) < in_flight:
        k = sizer.size(left, threads, sizer.slots(in_flight - len(sizes), len(sizes), threads))
        sizes.append(min(k, left))
        left -= sizes[-1]
    return sizes


def test_a_small_unmeasured_sweep_goes_out_as_two_equal_chunks_a_thread():
    """Before any trial is measured, the first FIRST_PER_THREAD tasks a thread share the
    sweep (each task fewer is Dask's work saved); a long sweep still fills every slot with
    chunks of at most FIRST_MAX; once measured, or with runner.chunk_size, slots are as free."""
    from daskbench.runner.chunking import FIRST_MAX, FIRST_PER_THREAD, ChunkSizer

    fresh = ChunkSizer(fixed=None)
    assert FIRST_PER_THREAD == 2
    assert _first_wave(fresh, 200) == [50, 50, 50, 50]
    assert _first_wave(fresh, 501) == [126, 125, 125, 125]
    assert _first_wave(fresh, 3) == [1, 1, 1]
    assert _first_wave(fresh, 10_000) == [FIRST_MAX] * 8  # the rest waits for a measured refill
    assert _first_wave(fresh, 2_000) == [FIRST_MAX] * 7 + [2_000 - 7 * FIRST_MAX]
    assert fresh.slots(free=6, sent=2, threads=2) == 2 and fresh.slots(free=4, sent=4, threads=2) == 1
    assert ChunkSizer(fixed=None, mean_s=1e-3).slots(free=6, sent=2, threads=2) == 6
    assert ChunkSizer(fixed=10).slots(free=6, sent=2, threads=2) == 6
