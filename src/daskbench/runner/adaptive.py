"""Adaptive search as a source of trials: Optuna asks, the Runner runs, results are told as they arrive.

The :class:`~daskbench.runner.driver.Runner` pulls trials from a source only when a
slot is free (at most ``runner.max_in_flight`` tasks in flight), so pulling from
:meth:`AdaptiveSource.trials` *is* the asynchronous ask: a point is asked the moment
a slot frees, never in batches, and one slow trial holds up nothing but its own
slot. Each finished trial's row is written and flushed first, then told
(:meth:`AdaptiveSource.after_write`): a study never knows a result the table lacks.

Resume (:meth:`AdaptiveSource.reconcile`): the study is in the results folder
(:mod:`daskbench.results.study`). Optuna trials left *running* by a stopped or
killed driver are closed and their points queued again (``enqueue_trial``), so
the next asks re-run exactly those points; replicates already ``ok`` on disk are
not run again. The budget counts every trial told complete, pruned or failed, and
none of the closed ones, so it is counted once however often the run stops.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import optuna
from optuna.trial import TrialState

from ..errors import SweepError
from ..results import study as stored
from ..results.row import RESERVED, FailureKind, Row, Status
from ..sweep.plan import SweepPlan, Trial
from ..sweep.search import TRIAL_IDS_ATTR, Book, Search, Tell, objective_values, space, space_changes, space_json
from . import prune

#: the column of the trials table holding the Optuna trial number
NUMBER = "optuna_trial"
_STATES = {"complete": TrialState.COMPLETE, "fail": TrialState.FAIL, "pruned": TrialState.PRUNED}


class AdaptiveSource:
    """Asks points from ``study``, yields their trials, tells their results."""

    def __init__(
        self,
        plan: SweepPlan,
        study: optuna.Study,
        known: Dict[str, Tuple[float, ...]],
        echo: Callable[[str], None] = print,
    ):
        assert plan.search is not None
        self.plan, self.study, self.echo = plan, study, echo
        self.search: Search = plan.search
        self.dists = space(plan.axes)
        self.groups = {a.key for a in plan.axes if a.is_group}
        self.book = Book(known)
        self.asked_here = 0  # Optuna trials asked by this run
        self.told_here = 0
        self.skipped = 0  # trials not run: their point's replicates were all known already
        self.ask_tell_s = 0.0  # driver time spent asking and telling (benchmarks read it)
        self.returned_objective = False  # some trial returned the objectives this run
        self.used = 0
        self.fresh = not study.get_trials(deepcopy=False)  # this run created the study
        self.prunes = self.search.pruner != "none"
        self.client: Any = None  # set by the Runner when it prunes: marks trials on the workers
        self._asked: Dict[int, optuna.trial.Trial] = {}  # running Optuna trials, for report()
        # The live handler runs on the client's event loop, asks and tells on the Runner's
        # thread: one lock keeps the study's calls in order.
        self._lock = threading.Lock()

    # -- resume ----------------------------------------------------------------
    def reconcile(self) -> int:
        """Close the trials a stopped run left running and queue their points again;
        returns how many of the budget's trials are already used."""
        leftover: List[int] = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            ids = list(t.user_attrs.get(TRIAL_IDS_ATTR) or [])
            if ids and all(i in self.book.known for i in ids):  # its rows were written, the tell was not
                vals = [self.book.known[i] for i in ids]
                self.study.tell(t.number, [sum(c) / len(c) for c in zip(*vals)])
                continue
            self.study.enqueue_trial(dict(t.params))  # first: a kill right after still re-asks the point
            leftover.append(t.number)
        if leftover:
            stored.mark_requeued(self.study, leftover)  # before the tell: never counted in the budget
            for n in leftover:
                self.study.tell(n, state=TrialState.FAIL)
            self.echo(f"{len(leftover)} point(s) in flight when the last run stopped will run again")
        closed = set(stored.requeued(self.study))
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        self.used = sum(1 for t in self.study.get_trials(deepcopy=False, states=finished) if t.number not in closed)
        return self.used

    def remaining(self) -> int:
        """Optuna trials still to ask before the budget is spent."""
        return max(self.search.budget - self.used - self.asked_here, 0)

    # -- ask ---------------------------------------------------------------------
    def trials(self) -> Iterator[Trial]:
        """The trials to run, asked one point at a time as the Runner pulls them."""
        while self.remaining() > 0:
            t0 = time.perf_counter()
            with self._lock:
                ot = self.study.ask(self.dists)
                self.asked_here += 1
                gkey = tuple(sorted((k, str(v)) for k, v in ot.params.items() if k in self.groups))
                point = {k: v for k, v in ot.params.items() if k not in self.groups}
                trials = self.plan.point_trials(gkey, point)
                ids = [t.trial_id for t in trials]
                ot.set_user_attr(TRIAL_IDS_ATTR, ids)
                run, tell = self.book.asked(ot.number, ids)
                if tell is not None:
                    self._tell([tell])
                elif run and self.prunes:
                    self._asked[ot.number] = ot
            self.skipped += len(trials) - len(run)
            self.ask_tell_s += time.perf_counter() - t0
            yield from (t for t in trials if t.trial_id in run)

    # -- tell --------------------------------------------------------------------
    def before_write(self, rows: List[Row]) -> None:
        """Stamp each row with its Optuna trial; an ok row without the objectives fails."""
        for row in rows:
            row[NUMBER] = self.book.number_of.get(row["trial_id"])
            if row.get("status") != Status.OK:
                continue
            try:
                objective_values({k: v for k, v in row.items() if k not in RESERVED}, self.search.objectives)
                self.returned_objective = True
            except SweepError as exc:
                if not self.returned_objective:  # the very first results: a config mistake, not a bad trial
                    if self.fresh and self.told_here == 0:
                        with self._lock:
                            stored.discard(self.study)  # so the fixed command starts afresh, not "another search"
                    raise
                row.update(status=Status.FAILED, failure_kind=FailureKind.BAD_RESULT, error=str(exc))

    def after_write(self, rows: List[Row]) -> None:
        """The rows are on disk: tell the study the points they complete."""
        t0 = time.perf_counter()
        tells: List[Tell] = []
        for row in rows:
            if row.get("status") == Status.OK:
                tells += self.book.ended(row["trial_id"], objective_values(row, self.search.objectives))
            else:
                tells += self.book.ended(row["trial_id"], None, _pruned_step(row))
        with self._lock:
            self._tell(tells)
        self.ask_tell_s += time.perf_counter() - t0

    def _tell(self, tells: List[Tell]) -> None:
        for t in tells:
            if t.state == "complete":
                self.study.tell(t.number, list(t.values or ()))
            else:
                self.study.tell(t.number, state=_STATES[t.state])
            self.told_here += 1
            self._asked.pop(t.number, None)

    # -- pruning -------------------------------------------------------------------
    def on_live(self, event: Tuple[float, Dict[str, Any]]) -> None:
        """A ``daskbench.report`` (topic daskbench-live, on the client's loop): report its
        step and objective to the Optuna trial; mark the point's trials if it is pruned."""
        msg = event[1] if isinstance(event, tuple) and len(event) == 2 else None
        if not isinstance(msg, dict):
            return
        tid, metrics = msg.get("trial_id"), msg.get("metrics") or {}
        value, step = metrics.get(self.search.objectives[0]), metrics.get("step")
        number = self.book.number_of.get(str(tid))
        if value is None or step is None or number is None:
            return
        with self._lock:
            ot = self._asked.get(number)
            if ot is None:
                return
            with warnings.catch_warnings():  # replicates report the same steps: Optuna keeps the first
                warnings.simplefilter("ignore")
                ot.report(float(value), int(step))
            if not ot.should_prune():
                return
            del self._asked[number]  # decided once: the tell comes with the rows
        ids = self.book.running_ids(number)
        # Client.run waits for the workers: not on the client's own loop, which would deadlock
        threading.Thread(target=self._mark, args=(ids,), daemon=True, name="daskbench-prune").start()

    def _mark(self, ids: List[str]) -> None:
        with contextlib.suppress(Exception):  # a worker gone meanwhile: its trial ends anyway
            self.client.run(prune.mark, ids)

    def summary(self) -> Dict[str, Any]:
        return stored.summary(self.study)


def _pruned_step(row: Row) -> Optional[int]:
    step = row.get("last_step")
    return int(step) if row.get("status") == "pruned" and step is not None else None


def open_source(rp: Any, echo: Callable[[str], None] = print) -> Optional[AdaptiveSource]:
    """The source of an adaptive run (``rp`` a RunPlan; None without ``sweep.search``): its
    study opened (created on the first run) and reconciled with the trials table. Writes:
    call once the cluster is up."""
    from ..results.dataset import Dataset

    search = rp.plan.search
    if search is None:
        return None
    study = stored.open_study(rp.results_dir, rp.cfg.name, search, space_json(space(rp.plan.axes)))
    table = Dataset(rp.results_dir / "trials", writer=False).read()
    source = AdaptiveSource(rp.plan, study, stored.known_objectives(table, list(search.objectives)), echo)
    used = source.reconcile()
    echo(
        f"{rp.cfg.name}: optuna search ({search.sampler}), {used} of a budget of {search.budget} "
        f"point(s) done, study in {stored.study_path(rp.results_dir)}"
    )
    return source


def check_resume(rp: Any) -> None:
    """Before a cluster starts: refuse to continue a stored study whose search space,
    objectives or directions differ from this run's, saying what changed."""
    search = rp.plan.search
    before = stored.stored_search(rp.results_dir, rp.cfg.name) if search is not None else None
    if before is None:
        return
    old_space, old_objectives, old_directions = before
    changes = space_changes(old_space, space_json(space(rp.plan.axes)))
    if old_objectives != list(search.objectives):
        changes.append(f"sweep.objective was {old_objectives}, now {list(search.objectives)}")
    if old_directions != list(search.directions):
        changes.append(f"sweep.direction was {old_directions}, now {list(search.directions)}")
    if changes:
        raise SweepError(
            f"the study in {stored.study_path(rp.results_dir)} was run with another search: {'; '.join(changes)}. "
            "Never mixing the two: undo the change, or set results.dir=PATH (or move the folder away) to start "
            "a new study"
        )
