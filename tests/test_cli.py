"""`python -m daskbench` end to end in subprocesses, as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import run_cli, write_experiment

SMALL = ["runner.progress=plain", "cluster.n_workers=2", "cluster.dashboard_address=127.0.0.1:0"]


def test_shipped_sweep_from_any_directory(tmp_path):
    """The README's experiment, cut down, from a folder that is not the checkout."""
    r = run_cli(
        ["+experiment=sweep", "trial.customers=1000,4000", "trial.servers=1,2", "sweep.replicates=2", *SMALL],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "Dask dashboard: http://127.0.0.1:" in r.stdout
    assert "[daskbench] 24/24 done  ok 24  failed 0" in r.stdout
    assert "sweep: 24 ok, 0 failed" in r.stdout and "slowest trials:" in r.stdout
    df = pd.read_parquet(tmp_path / "results" / "sweep" / "trials")
    assert len(df) == 24 and df.trial_id.is_unique
    assert {"trial.rho", "trial.servers", "trial.customers", "mean_wait", "exact_mean_wait", "rel_error"} <= set(
        df.columns
    )
    assert (df.rel_error < 1.0).all()
    # the error shrinks as the simulated horizon grows
    err = df.groupby("trial.customers").rel_error.mean()
    assert err[4000] < err[1000]
    r2 = run_cli(
        ["+experiment=sweep", "trial.customers=1000,4000", "trial.servers=1,2", "sweep.replicates=2", *SMALL],
        cwd=tmp_path,
    )
    assert r2.returncode == 0 and "24 skipped (already ok)" in r2.stdout
    assert len(pd.read_parquet(tmp_path / "results" / "sweep" / "trials")) == 24


def test_user_config_dir_and_failures_exit_nonzero(user_dir):
    write_experiment(
        user_dir / "conf",
        "mine",
        """
        name: mine
        trial: {_target_: usertrials.sometimes_fails}
        sweep: {params: {trial.x: 'range(0,6)'}}
    """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=mine", *SMALL], cwd=user_dir)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "2 trial(s) failed" in r.stdout and "ValueError: x=0 is a multiple of three" in r.stdout
    assert "re-run the failed trials with: python -m daskbench --config-dir conf +experiment=mine" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


BAD_INPUTS = [
    (["+experiment=nope"], "unknown experiment 'nope'", "available: "),
    ([], "no experiment given", "sweep"),
    (["+experiment=sweep", "trial.rho=0.5,,0.9"], "cannot parse 'trial.rho=0.5,,0.9'", "Hydra's grammar"),
    (["+experiment=sweep", "trial.rho=range(0,0)"], "axis 'trial.rho' is empty", "give at least one value"),
    (["+experiment=sweep", "trial.rho=interval(0.1,0.9)"], "'trial.rho' is an interval", "sweep.design="),
    (["+experiment=sweep", "sweep.desing=lhs"], "unknown key sweep.desing", "did you mean 'design'"),
    (["+experiment=sweep", "retries=lots"], "bad value for retries", "'lots'"),
    (["+experiment=sweep", "+sweep.desing=lhs"], "unknown key sweep.desing", "did you mean 'design'"),
    (
        ["+experiment=sweep", "trial._target_=daskbench.experiments.nosuch.trial"],
        "cannot import module 'daskbench.experiments.nosuch'",
        "working directory",
    ),
    (["+experiment=sweep", "trial.rhoo=1,2"], "swept key 'trial.rhoo'", "did you mean 'rho'"),
    (
        ["+experiment=sweep", "results.dir=/proc/forbidden/x"],
        "cannot write results to /proc/forbidden/x",
        "results.dir=PATH",
    ),
    (["+experiment=sweep", "cluster=nowhere"], "unknown cluster 'nowhere'", "cluster=local"),
]


@pytest.mark.parametrize("args, first, second", BAD_INPUTS, ids=[" ".join(a) or "none" for a, _, _ in BAD_INPUTS])
def test_bad_input_clear_message(tmp_path, args, first, second):
    r = run_cli(args, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert first in r.stderr and second in r.stderr, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert len(r.stderr.strip().splitlines()) <= 3
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.parquet"))


def test_dry_run_and_list(tmp_path):
    r = run_cli(["--dry-run", "+experiment=sweep", "trial.rho=0.5,0.6"], cwd=tmp_path)
    assert r.returncode == 0 and "experiment sweep: 96 trials" in r.stdout and "trial.rho = 0.5,0.6" in r.stdout
    assert not (tmp_path / "results").exists()
    r = run_cli(["--list"], cwd=tmp_path)
    assert "sweep" in r.stdout.split()


def test_ctrl_c_saves_work_and_resumes(user_dir):
    """SIGINT mid-sweep: finished trials are kept, nothing is corrupt, the next run completes."""
    write_experiment(
        user_dir / "conf",
        "long",
        """
        name: long
        trial: {_target_: usertrials.slow, delay: 0.4}
        sweep: {params: {trial.x: 'range(0,40)'}}
        results: {flush_seconds: 0.5}
    """,
    )
    args = [sys.executable, "-m", "daskbench", "--config-dir", "conf", "+experiment=long", *SMALL]
    # its own process group, signalled as a whole, as a terminal's Ctrl-C does
    proc = subprocess.Popen(
        args,
        cwd=user_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,
    )
    trials = user_dir / "results" / "long" / "trials"
    deadline = time.time() + 120
    while time.time() < deadline and not list(trials.glob("part-*.parquet")):
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted: finished trials are saved. Resume with:" in out
    assert "python -m daskbench --config-dir conf +experiment=long" in out
    assert "Traceback" not in out + err
    df = pd.read_parquet(trials)
    assert df.trial_id.is_unique
    done_first = int((df.status == "ok").sum())
    assert 0 < done_first < 40
    assert set(df.status) <= {"ok", "cancelled"}
    r = run_cli(["--config-dir", "conf", "+experiment=long", *SMALL], cwd=user_dir)
    assert r.returncode == 0, r.stderr
    assert f"{done_first} skipped (already ok)" in r.stdout
    df = pd.read_parquet(trials)
    assert len(df) == 40 and df.trial_id.is_unique and (df.status == "ok").all()
