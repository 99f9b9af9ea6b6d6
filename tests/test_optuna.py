"""Adaptive search (sweep.search=optuna) on real LocalClusters, a real journal storage
on disk and, for resume, a real SIGKILL of a real driver process.

Each test states the guarantee it proves.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

import daskbench
from tests.conftest import run_cli, wait_for_report, write_experiment

OPT_PY = '''
"""Trials for the adaptive-search tests."""
import os, time


def quad(x=0.0, n=1, seed=0, delay=0.0, log=""):
    """(x - 1)^2 + n; each run appends its x and seed to `log` (who ran what)."""
    if log:
        with open(log, "a") as f:
            f.write(f"{x!r} {n} {seed}\\n")
    time.sleep(delay)
    return {"f": (x - 1.0) ** 2 + n, "g": (x + 1.0) ** 2, "noise": seed % 7}


def slow_first(x=0.0, folder="", need=8, seed=0):
    """The first trial to start waits until `need` others have finished: it can end ok
    only if points were asked and run while it was still running."""
    os.makedirs(folder, exist_ok=True)
    try:
        fd = os.open(os.path.join(folder, "first"), os.O_CREAT | os.O_EXCL)
        os.close(fd)
        first = True
    except FileExistsError:
        first = False
    if first:
        deadline = time.monotonic() + 120
        while len([p for p in os.listdir(folder) if p.startswith("done-")]) < need:
            if time.monotonic() > deadline:
                raise RuntimeError("no other trial finished while this one ran: the asks waited for it")
            time.sleep(0.05)
        return {"f": 100.0, "first": True}
    open(os.path.join(folder, f"done-{x!r}"), "w").close()
    return {"f": (x - 1.0) ** 2, "first": False}


def renamed(x=0.0, seed=0):
    """quad after its metric was renamed: it no longer returns f."""
    return {"loss": (x - 1.0) ** 2}


def learning(x=0.0, steps=12, delay=0.1, ask=False, seed=0):
    """A training curve that levels off at (x - 1)^2: bad x stay bad at every step.
    With ask=True it polls daskbench.should_stop(); otherwise report() raises."""
    import daskbench
    loss = None
    for step in range(steps):
        loss = (x - 1.0) ** 2 + 1.0 / (step + 1)
        daskbench.report(step=step, loss=loss)
        for _ in range(20):  # between reports: asking, it can stop before the next one raises
            if ask and daskbench.should_stop():
                return {"loss": loss, "stopped_at": step}
            time.sleep(delay / 20)
    return {"loss": loss, "stopped_at": -1}
'''

LOCAL = ["cluster.dashboard_address=null", "results.report=false", "runner.progress=plain"]


@pytest.fixture
def opt_dir(tmp_path, monkeypatch):
    (tmp_path / "opttrials.py").write_text(OPT_PY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _study(root: Path, name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(root / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def _files(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _tree(root: Path) -> dict:
    """Every file's hash and every folder under ``root``."""
    return {str(p.relative_to(root)): "<dir>" for p in root.rglob("*") if p.is_dir()} | _files(root)


def test_one_slow_trial_does_not_hold_up_the_asks(opt_dir):
    """Guarantee: asks and tells are asynchronous. With two slots, the first trial
    waits until 8 others have finished, so it can end ok only if at least 8 points
    were asked, run and told while it ran; every row has its Optuna trial number."""
    write_experiment(
        opt_dir / "conf",
        "slow",
        f"""
        name: slow
        trial: {{_target_: opttrials.slow_first, folder: '{opt_dir / "marks"}', need: 8}}
        sweep: {{search: optuna, sampler: random, budget: 14, objective: f,
                 params: {{trial.x: 'interval(-2,2)'}}}}
        runner: {{max_in_flight: 2}}
    """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=slow", "cluster.n_workers=2", *LOCAL], cwd=opt_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    df = daskbench.load(opt_dir / "results/slow")
    assert len(df) == 14 and df.trial_id.is_unique and (df.status == "ok").all()
    first = df[df["first"]]
    assert len(first) == 1
    n_first = int(first.optuna_trial.iloc[0])
    assert n_first <= 1  # one of the two first asks
    # the points asked after it and finished before it: asked while it was running
    later = df[(df.optuna_trial > n_first) & ~df["first"]]
    assert len(later) >= 8
    assert sorted(df.optuna_trial) == list(range(14))
    study = _study(opt_dir / "results/slow", "slow")
    assert len(study.trials) == 14
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    told = {t.number: t.value for t in study.trials}
    assert all(told[int(n)] == pytest.approx(f) for n, f in zip(df.optuna_trial, df.f))
    assert "optuna: best trial of 14 complete:" in r.stdout


def test_replicates_tell_the_mean_and_the_api_runs_on_an_existing_client(opt_dir, client):
    """Guarantee: with sweep.replicates=R each asked point runs R times with spawned
    seeds and the value told is the mean of its replicates; daskbench.run works on a
    Client the user made."""
    write_experiment(
        opt_dir / "conf",
        "reps",
        """
        name: reps
        seed: 5
        trial: {_target_: opttrials.quad}
        sweep: {search: optuna, sampler: tpe, budget: 6, objective: noise, replicates: 3,
                params: {trial.x: 'interval(-2,2)', trial.n: 'range(1,4)'}}
    """,
    )
    res = daskbench.run(
        "reps", ["results.report=false"], client=client, config_dir="conf", progress="none", echo=lambda *_: None
    )
    assert res.exit_code == 0
    df = res.load()
    assert len(df) == 18 and df.trial_id.is_unique and set(df.replicate) == {0, 1, 2}
    assert df.groupby("optuna_trial").seed.nunique().eq(3).all()
    study = _study(opt_dir / "results/reps", "reps")
    means = df.groupby("optuna_trial").noise.mean()
    for t in study.trials:
        assert t.value == pytest.approx(means[t.number])
    assert set(df["trial.n"]) <= {1, 2, 3}
    assert res.outcome.search["best"][0]["values"] == [min(t.value for t in study.trials)]


def test_two_objectives_give_a_pareto_front(opt_dir):
    """Guarantee: a list of objectives and directions makes a multi-objective study;
    the summary shows its Pareto front, every front point non-dominated."""
    write_experiment(
        opt_dir / "conf",
        "pareto",
        """
        name: pareto
        trial: {_target_: opttrials.quad}
        sweep: {search: optuna, sampler: nsga2, budget: 16, objective: [f, g], direction: [minimize, minimize],
                params: {trial.x: 'interval(-3,3)'}}
    """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=pareto", "cluster.n_workers=2", *LOCAL], cwd=opt_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "optuna: Pareto front (" in r.stdout
    study = _study(opt_dir / "results/pareto", "pareto")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    front = study.best_trials
    assert front
    df = daskbench.load(opt_dir / "results/pareto")
    for t in front:
        f, g = t.values
        assert not ((df.f < f) & (df.g < g)).any()  # nothing in the table dominates it


def _count_runs(log: Path) -> dict:
    runs: dict = {}
    for line in log.read_text().splitlines():
        runs[line] = runs.get(line, 0) + 1
    return runs


def test_driver_sigkill_then_same_command_continues_the_study_exactly(opt_dir):
    """Guarantee: after a SIGKILL of the driver the same command continues the same
    study to its budget: the budget is counted once (exactly `budget` trials told,
    besides the ones closed because they were in flight), no trial that finished
    runs again, no trial id twice in the table, and every told trial has its row."""
    log = opt_dir / "runs.log"
    write_experiment(
        opt_dir / "conf",
        "kill",
        f"""
        name: kill
        trial: {{_target_: opttrials.quad, delay: 0.4, log: '{log}'}}
        sweep: {{search: optuna, sampler: tpe, budget: 16, objective: f,
                 params: {{trial.x: 'interval(-2,2)', trial.n: 'range(1,6)'}}}}
    """,
    )
    base = ["--config-dir", "conf", "+experiment=kill", "cluster.n_workers=2", *LOCAL]
    root = opt_dir / "results/kill"
    proc = subprocess.Popen(
        [sys.executable, "-m", "daskbench", *base],
        cwd=opt_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (root / "trials").is_dir() and len(list((root / "trials").glob("part-*.parquet"))) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = pd.read_parquet(root / "trials")
    ok_before = set(before[before.status == "ok"].trial_id)
    assert 5 <= len(ok_before) < 16
    r = run_cli(base, cwd=opt_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "will run again" in r.stdout  # the trials in flight at the kill
    df = pd.read_parquet(root / "trials")
    assert df.trial_id.is_unique and (df.status == "ok").all()
    study = _study(root, "kill")
    closed = set(study.user_attrs.get("daskbench.requeued", []))
    assert closed, "trials were in flight at the kill"
    counted = [t for t in study.trials if t.number not in closed]
    assert len(counted) == 16 and all(t.state == optuna.trial.TrialState.COMPLETE for t in counted)
    assert all(study.trials[n].state == optuna.trial.TrialState.FAIL for n in closed)
    # every counted trial's point has its ok row; the finished ones ran exactly once
    ids = {i for t in counted for i in t.user_attrs["daskbench.trial_ids"]}
    assert ids == set(df.trial_id)
    runs = _count_runs(log)
    for _, row in before[before.status == "ok"].iterrows():
        assert runs[f"{row['trial.x']!r} {row['trial.n']} {row['seed']}"] == 1
    assert sum(runs.values()) <= len(df) + len(closed)  # only the points in flight ran twice
    # a third run has nothing left to do
    again = run_cli(base, cwd=opt_dir)
    assert again.returncode == 0 and len(_study(root, "kill").trials) == len(study.trials)


def test_resumed_study_with_another_space_is_refused_and_nothing_changes(opt_dir):
    """Guarantee: a stored study whose search space differs is never mixed with a new
    one: one line saying what changed, exit 2, every file byte for byte as it was."""
    write_experiment(
        opt_dir / "conf",
        "space",
        """
        name: space
        trial: {_target_: opttrials.quad}
        sweep: {search: optuna, sampler: random, budget: 3, objective: f,
                params: {trial.x: 'interval(-2,2)'}}
    """,
    )
    base = ["--config-dir", "conf", "+experiment=space", "cluster.n_workers=1", *LOCAL]
    assert run_cli(base, cwd=opt_dir).returncode == 0
    before = _files(opt_dir / "results")
    for change, needle in [
        (["trial.x=interval(-5,5)"], "trial.x was Float(step=None, low=-2.0, high=2.0"),
        (["trial.n=1,2"], "trial.n was added"),
        (["sweep.direction=maximize"], "sweep.direction was ['minimize'], now ['maximize']"),
    ]:
        r = run_cli([*base, *change], cwd=opt_dir)
        assert r.returncode == 2, r.stdout + r.stderr
        errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(errors) == 1 and needle in errors[0] and "never mixing" in errors[0].lower(), errors
        assert "Traceback" not in r.stderr
        assert _files(opt_dir / "results") == before


def test_an_objective_the_trials_do_not_return_is_one_clear_error(opt_dir):
    """Guarantee: when the first results lack sweep.objective the run stops with exit 2
    and one line naming the metric and what the trial returns; nothing changed on disk:
    a results folder that did not exist does not exist after, and one holding an earlier
    run (manifest, study, trials) is byte for byte as it was."""
    write_experiment(
        opt_dir / "conf",
        "noobj",
        """
        name: noobj
        trial: {_target_: opttrials.quad}
        sweep: {search: optuna, sampler: random, budget: 4, objective: loss,
                params: {trial.x: 'interval(-2,2)'}}
    """,
    )
    base = ["--config-dir", "conf", "+experiment=noobj", "cluster.n_workers=1", *LOCAL]

    def fails(*more: str) -> None:
        r = run_cli([*base, *more], cwd=opt_dir)
        assert r.returncode == 2, r.stdout + r.stderr
        errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
        assert "sweep.objective=" in errors[0] and "the trial returned no metric" in errors[0], errors

    fails()  # a fresh folder
    assert not (opt_dir / "results").exists()
    # fixed, the same command starts the study afresh (not refused as another search)
    r = run_cli([*base, "sweep.objective=f"], cwd=opt_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(daskbench.load(opt_dir / "results/noobj")) == 4
    assert len(_study(opt_dir / "results/noobj", "noobj").trials) == 4
    # the same search resumed with a larger budget, its trial no longer returning f
    before = _tree(opt_dir / "results")
    assert {"noobj/manifest.json", "noobj/study.journal"} <= set(before)
    fails("sweep.objective=f", "sweep.budget=6", "trial._target_=opttrials.renamed")
    assert _tree(opt_dir / "results") == before


@pytest.mark.parametrize("ask", [False, True])
def test_median_pruner_stops_bad_trials_with_status_pruned_and_their_step(opt_dir, ask):
    """Guarantee: with sweep.pruner=median the driver decides from the reported steps;
    the trial learns it at its next report (an exception) or from should_stop(); its
    row is `pruned` with the step it reached, and the study has it PRUNED."""
    write_experiment(
        opt_dir / "conf",
        "prune",
        f"""
        name: prune
        seed: 1
        trial: {{_target_: opttrials.learning, ask: {ask}}}
        sweep: {{search: optuna, sampler: random, budget: 14, objective: loss, pruner: median,
                 params: {{trial.x: 'interval(-4,4)'}}}}
        runner: {{max_in_flight: 2}}
    """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=prune", "cluster.n_workers=2", *LOCAL], cwd=opt_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    df = daskbench.load(opt_dir / "results/prune")
    pruned = df[df.status == "pruned"]
    assert len(pruned) >= 1, df[["trial.x", "status", "loss"]]
    assert pruned.last_step.notna().all() and (pruned.last_step < 11).all()
    assert " pruned, " in r.stdout
    if ask:  # those that saw should_stop() first returned their metrics: the step they stopped at is recorded
        asked = pruned.dropna(subset=["stopped_at"])
        assert len(asked) >= 1 and (asked.stopped_at == asked.last_step).all()
    else:  # report() raised: no metrics came back
        assert pruned.loss.isna().all()
    study = _study(opt_dir / "results/prune", "prune")
    states = {t.number: t.state for t in study.trials}
    for n in pruned.optuna_trial:
        assert states[int(n)] == optuna.trial.TrialState.PRUNED
    ok = df[df.status == "ok"]
    # the pruned points are worse than the median of those that ran to the end
    assert ((pruned["trial.x"] - 1) ** 2).median() > ((ok["trial.x"] - 1) ** 2).min()


def test_shipped_staffing_experiment_finds_a_cheap_staffing_that_meets_the_target(tmp_path):
    """Guarantee: the shipped adaptive experiment runs with its defaults (report on), its
    summary shows the best trial, its report the optimisation history, and the best
    point found keeps the mean wait near the target at a cost close to the cheapest."""
    r = run_cli(["+experiment=staffing", "cluster.n_workers=2", "cluster.dashboard_address=null"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "optuna: best trial of 60 complete:" in r.stdout
    root = tmp_path / "results/staffing"
    wait_for_report(root)  # drawn by a process of its own after the command returns
    assert (root / "report/optimisation.png").is_file()
    assert "optimisation history: cost of 60 complete trials" in (root / "report/summary.md").read_text()
    df = daskbench.load(root)
    assert len(df) <= 60 and df.trial_id.is_unique and (df.status == "ok").all()
    best = df.loc[df.cost.idxmin()]
    # the exact mean wait (Erlang C) of the best staffing misses the 0.05 target by little
    assert best.exact_mean_wait < 0.1
    assert best.cost < 2 * df.staff_cost[df.exact_mean_wait <= 0.05].min()


def test_ctrl_c_then_same_command_finishes_the_budget_with_the_cancelled_points_run_again(opt_dir):
    """Guarantee: Ctrl-C stops the search (exit 130) with the points in flight recorded
    cancelled; the same command re-runs exactly those and reaches the budget, each
    trial id once and every row ok."""
    write_experiment(
        opt_dir / "conf",
        "intr",
        """
        name: intr
        trial: {_target_: opttrials.quad, delay: 0.4}
        sweep: {search: optuna, sampler: random, budget: 12, objective: f,
                params: {trial.x: 'interval(-2,2)'}}
    """,
    )
    base = ["--config-dir", "conf", "+experiment=intr", "cluster.n_workers=2", *LOCAL]
    root = opt_dir / "results/intr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "daskbench", *base],
        cwd=opt_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((root / "trials").glob("part-*.parquet"))) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    first = pd.read_parquet(root / "trials")
    cancelled = set(first[first.status == "cancelled"].trial_id)
    assert cancelled and first.trial_id.is_unique
    r = run_cli(base, cwd=opt_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    df = pd.read_parquet(root / "trials")
    assert df.trial_id.is_unique and (df.status == "ok").all() and cancelled <= set(df.trial_id)
    study = _study(root, "intr")
    closed = set(study.user_attrs["daskbench.requeued"])
    assert len([t for t in study.trials if t.number not in closed]) == 12


def test_a_config_group_is_searched_as_a_choice_with_its_own_column(opt_dir):
    """Guarantee: a swept config group (model=small,large) is a categorical axis of the
    search; each row names the group choice its trial was composed with."""
    for name, n in (("small", 1), ("large", 5)):
        (opt_dir / "conf" / "model").mkdir(parents=True, exist_ok=True)
        (opt_dir / "conf" / "model" / f"{name}.yaml").write_text(f"n: {n}\n")
    write_experiment(
        opt_dir / "conf",
        "groups",
        """
        defaults:
          - /model: small
        name: groups
        trial: {_target_: opttrials.quad, n: '${model.n}'}
        sweep: {search: optuna, sampler: random, budget: 8, objective: f,
                params: {model: 'small,large', trial.x: 'interval(-2,2)'}}
    """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=groups", "cluster.n_workers=2", *LOCAL], cwd=opt_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    df = daskbench.load(opt_dir / "results/groups")
    assert len(df) == 8 and df.trial_id.is_unique and set(df.model) <= {"small", "large"}
    # the group's content reached the trial: f = (x - 1)^2 + n with n from the group
    n = df.model.map({"small": 1, "large": 5})
    assert ((df.f - (df["trial.x"] - 1) ** 2 - n).abs() < 1e-9).all()
