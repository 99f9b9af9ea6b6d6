"""Fault injection on real processes: workers SIGKILLed, the driver SIGKILLed and
re-run, trials that crash their worker (os._exit, a segfault, memory past the
worker's limit), trials that hang past ``timeout_s``.

Each test states the guarantee it proves. Network faults are in
test_faults_netns.py, the sustained-load run in test_faults_load.py, and a
simulation shard's worker SIGKILLed in test_sim_actors.py
(test_killing_a_shards_worker_restarts_it_with_the_undisturbed_result).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import daskbench
from tests.conftest import run_cli, write_experiment

FAULTS_PY = '''
"""Trials that misbehave, for the fault tests (no pandas: workers stay small)."""
import ctypes, os, time


def tracked(x=0, folder="", delay=0.3, seed=0):
    """Leaves a file per run (trial, worker pid) so a test can see who ran what."""
    open(os.path.join(folder, f"run-{x}-{os.getpid()}-{time.time_ns()}"), "w").close()
    time.sleep(delay)
    return {"y": x * x, "seed_seen": seed}


def stepped(x=0, delay=0.2, seed=0):
    """Deterministic metrics and a per-step table."""
    import pyarrow as pa
    time.sleep(delay)
    return {"y": x * 3 + seed % 7, "steps": pa.table({"tick": list(range(3)), "v": [x * i for i in range(3)]})}


def crash(x=0, bad=5, how="exit", delay=0.05):
    """Trial `bad` takes its whole process down; the others are fine."""
    if x == bad:
        if how == "exit":
            os._exit(3)
        if how == "segfault":
            ctypes.string_at(0)
        if how == "memory":
            hog = []
            for _ in range(300):  # 10 MB at a time, up to 3 GB: the nanny kills it long before
                hog.append(bytearray(10 * 2**20))
                time.sleep(0.01)
            return {"y": -1}
    time.sleep(delay)
    return {"y": x, "pid": os.getpid()}


def hang(x=0, folder="", hangs="1,3"):
    """Trials listed in `hangs` never return (they note their pid first)."""
    if str(x) in hangs.split(","):
        open(os.path.join(folder, f"hung-{x}"), "w").write(str(os.getpid()))
        while True:
            time.sleep(1)
    return {"y": x}


def raises(x=0):
    raise ValueError(f"x={x} is not welcome")


def kills_the_worker(x=0, bad=1):
    """Trial `bad` kills the Dask worker process it runs under, even from a child
    process: what a failing machine looks like from inside a trial. The worker is
    this process, or the parent of the quarantine's child (daskbench.runner.isolate),
    however cluster.start_method started it."""
    if x == bad:
        import psutil
        p = psutil.Process()
        if "daskbench.runner.isolate" in p.cmdline():
            p = p.parent()
        os.kill(p.pid, 9)
        time.sleep(30)
    return {"y": x}


def needs_worker_dies_twice(x=0, folder=""):
    """Uses its Dask worker, and kills it on its first two runs (x == 1 only)."""
    from distributed import get_worker
    get_worker()
    if x == 1:
        runs = len([p for p in os.listdir(folder) if p.startswith("died-")])
        if runs < 2:
            open(os.path.join(folder, f"died-{runs}"), "w").close()
            os._exit(1)
    return {"y": x}


def reports(x=0):
    import daskbench
    daskbench.report(step=1, x=x)
    daskbench.report(step=2, x=x)
    return {"y": x}
'''

LOCAL = ["cluster.dashboard_address=null", "results.report=false"]


def quiet(*_):
    pass


@pytest.fixture
def faults(user_dir):
    (user_dir / "faults.py").write_text(FAULTS_PY)
    return user_dir


def go(name, overrides=(), client=None):
    return daskbench.run(name, [*LOCAL, *overrides], client=client, config_dir="conf", progress="none", echo=quiet)


def wait_for(cond, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_worker_sigkill_mid_sweep_every_trial_once_ok_and_attempts_count_the_lost_run(faults):
    """Guarantee: a worker SIGKILLed mid-sweep loses no trial and duplicates none;
    every trial is `ok` once, and `attempts` counts the run lost with the worker."""
    runs = faults / "runs"
    runs.mkdir()
    write_experiment(
        faults / "conf",
        "wk",
        f"""
        name: wk
        trial: {{_target_: faults.tracked, folder: '{runs}', delay: 0.3}}
        sweep: {{params: {{trial.x: 'range(0,30)'}}}}
        runner: {{chunk_size: 3}}
    """,
    )
    killed = {}

    def killer():
        wait_for(lambda: len(list(runs.iterdir())) >= 6, what="trials to start")
        latest = max(runs.iterdir(), key=lambda p: int(p.name.split("-")[3]))
        pid = int(latest.name.split("-")[2])  # a worker that has just started a trial
        os.kill(pid, signal.SIGKILL)
        killed["pid"] = pid

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    res = go("wk", ["cluster.n_workers=2"])
    t.join(5)
    assert "pid" in killed and not alive(killed["pid"])
    assert res.exit_code == 0 and res.counts.ok == 30
    df = pd.read_parquet(faults / "results/wk/trials")
    assert len(df) == 30 and df.trial_id.is_unique and (df.status == "ok").all()
    assert sorted(df["trial.x"]) == list(range(30)) and (df.y == df["trial.x"] ** 2).all()
    runs_of = {}
    for p in runs.iterdir():
        _, x, pid, _ = p.name.split("-")
        runs_of.setdefault(int(x), []).append(int(pid))
    attempts = dict(zip(df["trial.x"], df.attempts))
    # every run that began is counted, and a trial run twice has the killed worker in its history
    assert all(attempts[x] >= len(pids) for x, pids in runs_of.items())
    rerun = [x for x, pids in runs_of.items() if len(pids) > 1]
    assert rerun and all(killed["pid"] in runs_of[x] for x in rerun)
    assert all(attempts[x] >= 2 for x in rerun)
    assert (df.attempts >= 2).sum() >= 1 and df.attempts.max() <= 3


def _read_every_file(root: Path) -> dict:
    """Open every file under a results folder the way a reader would; nothing hidden is left."""
    hidden = [p for p in root.rglob(".*")]
    assert not hidden, f"left behind: {hidden}"
    tables = {}
    for p in sorted(root.rglob("*.parquet")):
        tables[p] = pq.read_table(p)  # raises on a partial or corrupt file
    json.loads((root / "manifest.json").read_text())
    return tables


def _table(root: Path, name: str) -> pd.DataFrame:
    df = pd.read_parquet(root / name)
    return df


def test_driver_sigkill_then_same_command_equals_an_undisturbed_run(faults):
    """Guarantee: SIGKILL of the driver mid-sweep (twice), then the same command:
    the final tables equal an undisturbed run's, no trial twice, every file
    readable, nothing half-written left, and the killed driver's workers exit."""
    import psutil

    write_experiment(
        faults / "conf",
        "dk",
        """
        name: dk
        seed: 3
        trial: {_target_: faults.stepped, delay: 0.2}
        sweep: {params: {trial.x: 'range(0,40)'}, replicates: 1}
        results: {flush_seconds: 0.3, flush_rows: 4, compact_parts: 3}
    """,
    )
    base = ["--config-dir", "conf", "+experiment=dk", "cluster.n_workers=2", "runner.progress=plain", *LOCAL]
    ref = run_cli([*base, "results.dir=results/ref"], cwd=faults)
    assert ref.returncode == 0, ref.stderr
    trials = faults / "results/dk/trials"
    for _ in range(2):  # two kills, the second in a resumed run, each once it has written a part
        min_parts = len(list(trials.glob("part-*.parquet"))) + 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "daskbench", *base],
            cwd=faults,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        wait_for(
            lambda min_parts=min_parts, proc=proc: (
                len(list(trials.glob("part-*.parquet"))) >= min_parts or proc.poll() is not None
            ),
            what="results on disk",
        )
        workers = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
        # the LocalCluster's worker processes notice their parent is gone and exit
        wait_for(
            lambda workers=workers: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers),
            timeout=60,
            what="the killed driver's workers to exit",
        )
        done = pd.read_parquet(trials)
        assert done.trial_id.is_unique and 0 < len(done) < 40
    r = run_cli(base, cwd=faults)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "skipped (already ok)" in r.stdout
    for root in (faults / "results/dk", faults / "results/ref"):
        _read_every_file(root)
    for name, key in (("trials", ["trial_id"]), ("steps", ["trial_id", "tick"])):
        got = _table(faults / "results/dk", name).sort_values(key).reset_index(drop=True)
        want = _table(faults / "results/ref", name).sort_values(key).reset_index(drop=True)
        assert got.trial_id.nunique() == 40
        cols = ["trial_id", "trial.x", "seed", "y", "status"] if name == "trials" else ["trial_id", "tick", "v"]
        pd.testing.assert_frame_equal(got[cols], want[cols])
    assert _table(faults / "results/dk", "trials").trial_id.is_unique
    manifest = json.loads((faults / "results/dk/manifest.json").read_text())
    assert [r["outcome"] for r in manifest["runs"]] == ["running", "running", "finished"]


CAUSES = {
    "exit": "TrialProcessDied: the trial's process exited with status 3",
    "segfault": "TrialProcessDied: the trial's process was killed by SIGSEGV",
    "memory": "MemoryError",
}


@pytest.mark.parametrize("how", list(CAUSES))
def test_trial_that_kills_its_worker_is_failed_alone_with_its_cause(faults, how):
    """Guarantee: a trial that takes its worker down (os._exit, a segfault, memory
    past the worker's limit) is recorded `failed` with the cause: its chunk is
    split one trial per task, and when its worker dies again it runs alone in a
    child process capped at the worker's memory limit, where it fails on its own.
    The innocent trials of its chunk run again and are `ok`; the rest of the
    sweep completes."""
    write_experiment(
        faults / "conf",
        "cr",
        f"""
        name: cr
        trial: {{_target_: faults.crash, how: {how}, bad: 5}}
        sweep: {{params: {{trial.x: 'range(0,12)'}}}}
        runner: {{chunk_size: 4}}
    """,
    )
    res = go("cr", ["cluster.n_workers=2", "cluster.memory_limit=400MB"])
    assert res.exit_code == 1 and res.counts.ok == 11 and res.counts.failed == 1
    df = pd.read_parquet(faults / "results/cr/trials").set_index("trial.x")
    assert len(df) == 12 and df.trial_id.is_unique
    bad = df.loc[5]
    assert bad.status == "failed"
    prefix = (
        "KilledWorker: the worker died while running this trial (2 time(s)); run alone in a child "
        "process limited to the worker's memory, it failed with: "
    )
    assert bad.error.startswith(prefix + CAUSES[how]), bad.error
    assert bad.attempts == 3  # with its chunk, alone, alone in a child process
    innocents = df.drop(index=5)
    assert (innocents.status == "ok").all() and (innocents.y == innocents.index).all()
    assert (innocents.loc[[4, 6, 7], "attempts"] >= 2).all()  # its chunk-mates ran again
    # a death is charged to every task its worker held (running or next in line), as Dask does
    assert innocents.attempts.between(1, 3).all()


def test_trial_whose_worker_keeps_dying_even_when_quarantined_fails_after_crash_retries(faults):
    """Guarantee: when workers keep dying under a trial even while it runs alone in
    a child process, it is recorded `failed` (KilledWorker) after
    runner.crash_retries more deaths, and the sweep completes."""
    write_experiment(
        faults / "conf",
        "kw",
        """
        name: kw
        trial: {_target_: faults.kills_the_worker, bad: 1}
        sweep: {params: {trial.x: 'range(0,4)'}}
        runner: {chunk_size: 1, crash_retries: 1, max_in_flight: 1}
    """,
    )  # one task at a time: a death is charged to every task its worker held, as Dask does
    res = go("kw", ["cluster.n_workers=2"])
    assert res.exit_code == 1 and res.counts.ok == 3 and res.counts.failed == 1
    df = pd.read_parquet(faults / "results/kw/trials").set_index("trial.x")
    bad = df.loc[1]
    assert bad.error.startswith("KilledWorker: the worker died while running this trial, 3 time(s)"), bad.error
    assert "2 of them while it ran alone (in a child process where it can)" in bad.error
    assert bad.attempts == 3 and (df.drop(index=1).status == "ok").all()


def test_quarantined_trial_that_needs_its_worker_runs_alone_in_its_thread(faults):
    """A trial that uses its Dask worker (like simulations and iobench) cannot be
    quarantined in a child process; after two worker deaths it runs alone in its
    worker's thread and its `ok` row counts both lost runs."""
    write_experiment(
        faults / "conf",
        "nw",
        f"""
        name: nw
        trial: {{_target_: faults.needs_worker_dies_twice, folder: '{faults}'}}
        sweep: {{params: {{trial.x: 'range(0,3)'}}}}
        runner: {{chunk_size: 3}}
    """,
    )
    res = go("nw", ["cluster.n_workers=2"])
    assert res.exit_code == 0 and res.counts.ok == 3
    df = pd.read_parquet(faults / "results/nw/trials").set_index("trial.x")
    assert df.loc[1, "attempts"] == 3 and (df.status == "ok").all()
    assert len(list(faults.glob("died-*"))) == 2


def test_crash_in_an_isolated_trial_ends_only_its_process(faults):
    """Guarantee: with runner.isolation=process a segfaulting trial is `failed`
    with the signal and Python's fault traceback, its worker lives on, and
    the trials of its chunk are not run again."""
    write_experiment(
        faults / "conf",
        "ci",
        """
        name: ci
        trial: {_target_: faults.crash, how: segfault, bad: 2}
        sweep: {params: {trial.x: 'range(0,6)'}}
        runner: {chunk_size: 3, isolation: process}
    """,
    )
    res = go("ci", ["cluster.n_workers=1"])
    assert res.exit_code == 1
    df = pd.read_parquet(faults / "results/ci/trials").set_index("trial.x")
    assert df.loc[2, "status"] == "failed"
    assert "killed by SIGSEGV" in df.loc[2, "error"]
    assert "Segmentation fault" in df.loc[2, "traceback"] and "faults.py" in df.loc[2, "traceback"]
    assert (df.drop(index=2).status == "ok").all() and (df.attempts == 1).all()
    assert df.worker.nunique() == 1  # the same worker throughout: it never died


def test_hanging_trial_times_out_its_process_is_killed_and_the_slot_comes_back(faults):
    """Guarantee: a trial past `timeout_s` is recorded `timeout`, its process is
    killed, and its worker slot runs the next trials (one worker, one thread)."""
    write_experiment(
        faults / "conf",
        "hg",
        f"""
        name: hg
        timeout_s: 3
        trial: {{_target_: faults.hang, folder: '{faults}', hangs: '1,3'}}
        sweep: {{params: {{trial.x: 'range(0,6)'}}}}
        runner: {{chunk_size: 1, max_in_flight: 1}}
    """,
    )
    res = go("hg", ["cluster.n_workers=1", "cluster.threads_per_worker=1"])
    assert res.exit_code == 1 and res.counts.timeout == 2 and res.counts.ok == 4
    df = pd.read_parquet(faults / "results/hg/trials").set_index("trial.x")
    assert list(df.loc[[1, 3], "status"]) == ["timeout", "timeout"]
    assert df.loc[1, "error"] == "TrialTimeout: trial ran longer than timeout_s=3; its process was killed"
    assert (df.drop(index=[1, 3]).status == "ok").all()
    # the ones after a hung trial ran on the same single slot
    assert df.loc[4, "started_at"] > df.loc[3, "started_at"] and df.worker.nunique() == 1
    for x in (1, 3):
        assert not alive(int((faults / f"hung-{x}").read_text()))


def test_isolated_trial_gets_sys_path_and_sends_back_errors_and_tracebacks(tmp_path, monkeypatch):
    """The child process imports the trial from the worker's sys.path (not its
    working directory) and hands back the value, or the error and traceback."""
    from daskbench.runner.execute import run_chunk
    from daskbench.runner.spec import Item, TrialSpec

    code = tmp_path / "elsewhere"
    code.mkdir()
    (code / "faults.py").write_text(FAULTS_PY)
    monkeypatch.chdir(tmp_path)  # faults.py is not importable from here
    monkeypatch.syspath_prepend(str(code))

    def spec(target, **kw):
        return TrialSpec(target=target, fast=True, bases={(): {"_target_": target}}, isolation="process", **kw)

    rows = run_chunk(spec("faults.crash"), [Item("a", (), {"trial.x": 1}, None, 0)]).rows()
    assert rows[0]["status"] == "ok" and rows[0]["y"] == 1 and rows[0]["pid"] != os.getpid()
    row = run_chunk(spec("faults.raises", retries=1), [Item("b", (), {"trial.x": 4}, None, 0)]).rows()[0]
    assert row["status"] == "failed" and row["error"] == "ValueError: x=4 is not welcome" and row["attempts"] == 2
    assert "Traceback (most recent call last)" in row["traceback"] and "in raises" in row["traceback"]
    row = run_chunk(spec("faults.crash"), [Item("c", (), {"trial.x": 5, "trial.how": "exit"}, None, 0)]).rows()[0]
    assert row["status"] == "failed" and "exited with status 3" in row["error"]
    # daskbench.report() in the child reaches the worker's side, tagged with the trial
    from daskbench.observe import live

    sent = []
    monkeypatch.setattr(live, "_sender", lambda topic, msg: sent.append((topic, msg)))
    run_chunk(spec("faults.reports"), [Item("d", (), {"trial.x": 7}, None, 0)])
    assert [t for t, _ in sent] == [live.TOPIC_LIVE] * 2  # the first at once, the throttled last at the end
    assert [m["metrics"] for _, m in sent] == [{"step": 1.0, "x": 7.0}, {"step": 2.0, "x": 7.0}]
    assert {m["trial_id"] for _, m in sent} == {"d"}


def test_thread_isolation_keeps_the_old_timeout_and_bad_values_are_named(user_dir):
    """runner.isolation=thread: the timeout is recorded but the call cannot be
    stopped (documented); an unknown isolation value is a one-line config error."""
    from daskbench.errors import ConfigError
    from daskbench.runner.execute import run_chunk
    from daskbench.runner.spec import Item, TrialSpec

    sys.path.insert(0, str(user_dir))
    spec = TrialSpec(
        target="usertrials.sleepy",
        fast=True,
        bases={(): {"_target_": "usertrials.sleepy"}},
        timeout_s=0.3,
        isolation="thread",
    )
    row = run_chunk(spec, [Item("a", (), {"trial.x": 1, "trial.delay": 2.0}, None, 0)]).rows()[0]
    assert row["status"] == "timeout" and "runner.isolation=thread: it may still be running" in row["error"]
    assert not spec.in_process and TrialSpec(target="t", fast=True, bases={}, timeout_s=1.0).in_process
    with pytest.raises(ConfigError, match="runner.isolation='fork': use auto, thread or process"):
        daskbench.plan("sweep", ["runner.isolation=fork"])
    with pytest.raises(ConfigError, match="runner.crash_retries=-1: must be >= 0"):
        daskbench.plan("sweep", ["runner.crash_retries=-1"])


def test_live_reports_from_isolated_trials_reach_the_progress_line(user_dir):
    """daskbench.report() in a trial running in its child process (timeout_s set)
    is relayed through its worker while it runs: the driver shows it live."""
    write_experiment(
        user_dir / "conf",
        "lvp",
        """
        name: lvp
        timeout_s: 60
        trial: {_target_: usertrials.reporting, steps: 12}
        sweep: {params: {trial.x: '1,2'}}
        runner: {progress: plain, progress_interval_s: 0.5}
    """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=lvp", "cluster.n_workers=2", *LOCAL], cwd=user_dir)
    assert r.returncode == 0, (r.stdout, r.stderr)
    live = [line for line in r.stdout.splitlines() if line.startswith("[daskbench]") and "| live (" in line]
    assert live and "loss=" in live[-1], r.stdout
    assert r.stdout.count("metric 'phase'") == 1
