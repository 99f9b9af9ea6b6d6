"""How the command line starts and ends: workers from the fork server (or forked,
or spawned, as ``cluster.start_method`` says), the cluster started while the config
is checked, the report written in the background. Real subprocesses throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pandas as pd
import pytest

from tests.conftest import run_cli, write_experiment

SMALL = ["runner.progress=plain", "cluster.n_workers=2", "cluster.dashboard_address=127.0.0.1:0"]

#: a user's module, in their own folder: it records which process imported it
WHERE_PY = '''
import os, signal, time

IMPORTED_IN = os.getpid()  # the driver's pid in a forked worker: the import came with the fork


def where(x=0):
    return {"y": x * 2, "pid": os.getpid(), "ppid": os.getppid(), "imported_in": IMPORTED_IN}


def nap(x=0, delay=0.3):
    time.sleep(delay)
    return {"y": x * 2}


def die_once(x=0, marker=""):
    """Kills its own worker the first time x == 0 runs."""
    if x == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return {"y": x * 2, "pid": os.getpid()}
'''


@pytest.fixture
def own_dir(tmp_path):
    """A user's folder with their module in conf/ (found through --config-dir only)."""
    conf = tmp_path / "conf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "wheremod.py").write_text(WHERE_PY)
    return tmp_path


def _popen(args: List[str], cwd: Path) -> subprocess.Popen:
    """``python -m daskbench ARGS`` in a session of its own (so its processes can be found)."""
    return subprocess.Popen(
        [sys.executable, "-m", "daskbench", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,
    )


def _in_session(sid: int) -> List[int]:
    """Live (not zombie) processes of session ``sid``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state ppid pgrp session
            pids.append(int(d.name))
    return pids


def _no_process_left(sid: int) -> None:
    deadline = time.time() + 30  # processes the driver has told to stop may take a moment
    while _in_session(sid) and time.time() < deadline:
        time.sleep(0.2)
    assert _in_session(sid) == [], "processes of the command are still running"


@pytest.mark.parametrize("method", ["forkserver", "fork", "spawn"])
def test_each_start_method_runs_the_users_module_and_leaves_nothing(own_dir, method):
    """Each start method: workers start, every trial runs from the user's module (found
    through --config-dir, imported by the driver to check it), the workers are what
    the method says, and nothing of the command is left running once it has ended."""
    write_experiment(
        own_dir / "conf",
        "wh",
        """
        name: wh
        trial: {_target_: wheremod.where}
        sweep: {params: {trial.x: 'range(0,20)'}}
        results: {report: false}
    """,
    )
    proc = _popen(["--config-dir", "conf", "+experiment=wh", *SMALL, f"cluster.start_method={method}"], own_dir)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, (out, err)
    _no_process_left(proc.pid)
    df = pd.read_parquet(own_dir / "results/wh/trials")
    assert len(df) == 20 and (df.status == "ok").all() and (df.y == df["trial.x"] * 2).all()
    assert proc.pid not in set(df.pid)  # the trials ran in worker processes
    if method == "fork":  # a fork of the driver: the module the driver imported came along
        assert set(df.ppid) == {proc.pid} and set(df.imported_in) == {proc.pid}
    else:  # a fresh interpreter, or a fork of the server: the worker imported it itself
        assert (df.imported_in == df.pid).all()
        parents = set(df.ppid)
        # spawned workers are the driver's children; the server's are not
        assert parents == {proc.pid} if method == "spawn" else proc.pid not in parents


@pytest.mark.parametrize("method", ["forkserver", "fork"])
def test_a_killed_worker_is_replaced(own_dir, method):
    marker = own_dir / "died"
    write_experiment(
        own_dir / "conf",
        "die",
        f"""
        name: die
        trial: {{_target_: wheremod.die_once, marker: '{marker}'}}
        sweep: {{params: {{trial.x: 'range(0,12)'}}}}
        runner: {{chunk_size: 1}}
        results: {{report: false}}
    """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=die", *SMALL, f"cluster.start_method={method}"], cwd=own_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert marker.exists()  # a worker did die
    df = pd.read_parquet(own_dir / "results/die/trials")
    assert len(df) == 12 and (df.status == "ok").all() and df.trial_id.is_unique
    assert int(df.loc[df["trial.x"] == 0, "attempts"].iloc[0]) >= 2


def test_bad_start_method_is_one_message(own_dir):
    write_experiment(own_dir / "conf", "wh", "name: wh\ntrial: {_target_: wheremod.where}\n")
    r = run_cli(["--config-dir", "conf", "+experiment=wh", "cluster.start_method=vfork"], cwd=own_dir)
    assert r.returncode == 2
    assert "cluster.start_method=vfork: choose one of forkserver | fork | spawn" in r.stderr
    assert "Traceback" not in r.stderr and not (own_dir / "results").exists()


def test_a_mistake_found_while_the_cluster_starts_is_one_message_and_leaves_nothing(own_dir):
    """The cluster starts once its section is checked; a mistake found later (the trial's
    arguments) still ends the command with its one message, exit 2, and no process."""
    write_experiment(
        own_dir / "conf",
        "wh",
        """
        name: wh
        trial: {_target_: wheremod.where, nosuch: 1}
        sweep: {params: {trial.x: '1,2'}}
    """,
    )
    proc = _popen(["--config-dir", "conf", "+experiment=wh", *SMALL], own_dir)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 2, (out, err)
    assert "nosuch" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (own_dir / "results").exists()
    _no_process_left(proc.pid)


@pytest.mark.parametrize(
    "words, overrides",
    [
        (["+experiment=x", "trial.a=1,2"], ["+experiment=x", "trial.a=1,2"]),
        (["--config-dir", "conf", "+experiment=x"], ["+experiment=x"]),
        (["+experiment=x", "-cd", "conf", "cluster.n_workers=2"], ["+experiment=x", "cluster.n_workers=2"]),
        (["--config-dir=conf", "+experiment=x"], ["+experiment=x"]),
        (["+experiment=x", "--dry-run"], None),
        (["+experiment=x", "--dry"], None),  # argparse's abbreviation of --dry-run
        (["--cfg", "+experiment=x"], None),
        (["--report", "results/x"], None),
        (["--config-dir"], None),
        (["-h"], None),
    ],
)
def test_the_fork_server_is_asked_for_before_argparse_only_for_a_plain_run(words, overrides):
    """A command line of overrides and --config-dir only starts the fork server before
    argparse runs (~20 ms earlier); its overrides are the ones argparse finds."""
    from daskbench.__main__ import _parser, _plain_run

    assert _plain_run(words) == overrides
    if overrides is not None:
        assert _parser().parse_intermixed_args(words).overrides == overrides


def test_a_dry_run_starts_no_fork_server(own_dir):
    """--dry-run (and --cfg, --list, bad options) run nothing: no server is started for them,
    which would otherwise hold the command's output open while it imports Dask."""
    write_experiment(own_dir / "conf", "wh", "name: wh\ntrial: {_target_: wheremod.where}\n")
    proc = _popen(["--config-dir", "conf", "+experiment=wh", "--dry-run"], own_dir)
    proc.wait(timeout=240)  # its output is a few lines: the pipes do not fill
    left = _in_session(proc.pid)  # as it exits: a server started would still be importing Dask
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0 and "experiment wh: 1 trials" in out, (out, err)
    assert left == []


GC_DURING_RUN = """
import gc, sys
import daskbench.__main__ as cli
from daskbench.runner.driver import Runner

seen = []
real = Runner.run
def run(self, done):
    seen.append(gc.isenabled())
    return real(self, done)
Runner.run = run
rc = cli.main(sys.argv[1:])
print("gc", seen, gc.isenabled(), gc.get_freeze_count() > 0, rc)
"""


def test_the_driver_collects_garbage_while_the_trials_run(own_dir):
    """The command line pauses the garbage collector while it imports and composes
    (daskbench/startup_gc.py); it is on again, start-up's objects frozen, before the trials."""
    write_experiment(
        own_dir / "conf", "wh", "name: wh\ntrial: {_target_: wheremod.where}\nsweep: {params: {trial.x: '1,2'}}\n"
    )
    args = ["--config-dir", "conf", "+experiment=wh", "results.report=false", *SMALL]
    r = subprocess.run(
        [sys.executable, "-c", GC_DURING_RUN, *args], cwd=own_dir, capture_output=True, text=True, timeout=240
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "gc [True] True True 0" in r.stdout, r.stdout[-2000:]


def test_report_is_written_in_the_background_and_complete(own_dir):
    """Shipped defaults (report on): the command returns, the report appears whole."""
    write_experiment(
        own_dir / "conf",
        "rep",
        """
        name: rep
        trial: {_target_: wheremod.where}
        sweep: {params: {trial.x: 'range(0,8)'}}
    """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=rep", *SMALL], cwd=own_dir)
    assert r.returncode == 0, r.stderr
    report = own_dir / "results/rep/report"
    assert f"report: {Path('results/rep/report/report.html')} (being written in the background" in r.stdout
    page = report / "report.html"
    deadline = time.time() + 180
    while not page.exists() and time.time() < deadline:
        time.sleep(0.2)
    text = page.read_text()
    # a plot for each metric that varies (which worker ran what varies from run to run), and timing
    df = pd.read_parquet(own_dir / "results/rep/trials")
    varied = [m for m in ("imported_in", "pid", "ppid", "y") if df[m].nunique() > 1]
    assert "y" in varied
    assert text.rstrip().endswith("</html>") and text.count("data:image/png;base64,") == len(varied) + 1
    assert "| ok | 8 |" in (report / "summary.md").read_text()
    assert sorted(p.name for p in report.glob("*.png")) == [*(f"metric-{m}.png" for m in varied), "timing.png"]
    assert "report: " in (report / "report.log").read_text()
    assert not list(report.glob(".*"))  # no partial page left


def test_ctrl_c_with_forked_workers_saves_and_resumes(own_dir):
    """SIGINT to the whole process group, workers forked from the driver: saved, resumed."""
    write_experiment(
        own_dir / "conf",
        "slow",
        """
        name: slow
        trial: {_target_: wheremod.nap}
        sweep: {params: {trial.x: 'range(0,12)'}}
        runner: {chunk_size: 1}
        results: {flush_seconds: 0.2, report: false}
    """,
    )
    args = ["--config-dir", "conf", "+experiment=slow", *SMALL, "cluster.start_method=fork"]
    proc = _popen(args, own_dir)
    trials = own_dir / "results/slow/trials"
    deadline = time.time() + 120
    while time.time() < deadline and not list(trials.glob("part-*.parquet")):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted: finished trials are saved" in out and "Traceback" not in out + err
    _no_process_left(proc.pid)
    first = pd.read_parquet(trials)
    assert 0 < int((first.status == "ok").sum()) < 12
    r = run_cli(args, cwd=own_dir)
    assert r.returncode == 0, r.stderr
    df = pd.read_parquet(trials)
    assert len(df) == 12 and df.trial_id.is_unique and (df.status == "ok").all()
