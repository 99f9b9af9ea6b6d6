"""Shared fixtures: one real LocalCluster for API tests, and user experiment folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# -- a cluster kept on this machine (`python -m daskbench cluster start`) is not used by the
# tests' runs: they get an empty state folder (tests/test_keep.py gives each test its own)
os.environ["DASKBENCH_STATE_DIR"] = tempfile.mkdtemp(prefix="daskbench-test-state-")
# --

# -- a suite started in the background by a non-interactive shell (`make test &`) inherits
# SIGINT ignored, and so would every command it starts: the Ctrl-C tests need it delivered
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# --

# -- `make test` runs the suite on two pytest workers (pytest-xdist), then the tests marked
# `serial` alone: those that time a signal, a kill or a cut link against a deadline, whose
# margins another test's load on 2 cores would eat, and the benchmark suite's smoke run
# (one 80 s process: in the parallel part it lengthens the tail more than it saves here).
# The kept cluster's tests run in the parallel part, except those that kill it or press Ctrl-C.
SERIAL_FILES = {
    "test_faults.py",
    "test_faults_netns.py",
    "test_store_faults.py",
    "test_startup.py",
    "test_launcher_stopping.py",
    "test_benchmarks_smoke.py",
}
SERIAL_WORDS = ("ctrl_c", "sigkill", "killed", "killing", "pruner")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SERIAL_FILES or any(w in item.name for w in SERIAL_WORDS):
            item.add_marker(pytest.mark.serial)


# --

TRIALS_PY = '''
"""Trial functions a user might write (written into a temp folder by the tests)."""
import os, time
import pandas as pd


def quad(x=0.0, y=0.0, seed=0):
    return {"f": (x - 1) ** 2 + y, "seed_seen": seed}


def sometimes_fails(x=0, seed=0):
    if x % 3 == 0:
        raise ValueError(f"x={x} is a multiple of three")
    return {"y": x * 2}


def flaky(x=0, marker_dir=".", seed=0):
    """Fails on its first attempt for each x, then succeeds."""
    marker = os.path.join(marker_dir, f"flaky-{x}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return {"y": x}


def fails_while_file(x=0, path="", seed=0):
    """Fails for multiples of three while `path` exists: a bug the user then fixes."""
    if x % 3 == 0 and os.path.exists(path):
        raise ValueError(f"x={x} is a multiple of three")
    return {"y": x * 2}


def bad_return(x=0):
    return [x, x]


def with_steps(x=0, n=5, seed=0):
    return {"total": x * n, "steps": pd.DataFrame({"tick": range(n), "value": [x * i for i in range(n)]})}


def slow(x=0, delay=0.2, seed=0):
    time.sleep(delay)
    return {"y": x}


def sleepy(x=0, delay=5.0):
    time.sleep(delay)
    return {"y": x}


def reporting(x=0, steps=10, seed=0):
    """Reports live values while it runs, one of them not a number."""
    import daskbench
    for i in range(steps):
        daskbench.report(progress=(i + 1) / steps, loss=1.0 / (i + 1), phase="warmup" if i < 2 else "main")
        time.sleep(0.15)
    return {"y": x}


def no_seed(x=0):
    return {"y": x}
'''


@pytest.fixture(scope="session")
def client():
    """A real 2-process LocalCluster shared by the API tests."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    )
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def write_experiment(conf_dir: Path, name: str, body: str) -> Path:
    """Write DIR/experiment/NAME.yaml (package _global_)."""
    p = conf_dir / "experiment" / f"{name}.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("# @package _global_\n" + textwrap.dedent(body))
    return p


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A user's working folder with a trial module and a config folder; cwd is set to it."""
    (tmp_path / "usertrials.py").write_text(TRIALS_PY)
    conf = tmp_path / "conf"
    (conf / "experiment").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(args, cwd, timeout=240, **kw):
    """Run `python -m daskbench ARGS` in a subprocess; returns CompletedProcess."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "daskbench", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kw,
    )


KILLER_PY = '''
import os, signal, time

def kill_once(x=0, marker="", delay=0.1, seed=0):
    """Kills its own worker process the first time x == 0 runs: a worker leaving mid-sweep."""
    if x == 0 and marker and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(delay)
    return {"y": x, "pid": os.getpid()}
'''


def wait_for_report(results: Path, timeout: float = 180) -> Path:
    """The report folder of a CLI run, once its background process has written the page
    (the command line returns before the report is drawn; the page is renamed into place
    last, and report/report.log holds that process's output)."""
    import time

    report = Path(results) / "report"
    deadline = time.time() + timeout
    while not (report / "report.html").exists() and time.time() < deadline:
        time.sleep(0.2)
    log = report / "report.log"
    assert (report / "report.html").exists(), log.read_text() if log.exists() else f"no report in {results}"
    return report
