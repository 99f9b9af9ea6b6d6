"""The kept local cluster: `python -m daskbench cluster start|stop|status` and runs
that use it, with real processes. Each test has its own state folder
(DASKBENCH_STATE_DIR), so no test sees another's cluster or a user's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from daskbench.cluster import keep_serve as serve
from daskbench.cluster import keep_state as ks
from daskbench.cluster.keep import pid_alive, token_pids
from daskbench.config.schema import LocalClusterConfig
from tests.conftest import run_cli, wait_for_report, write_experiment

START = ["cluster", "start", "cluster.n_workers=2", "cluster.dashboard_address=127.0.0.1:0"]
RUN = ["--config-dir", "conf", "+experiment=quads", "runner.progress=plain", "results.report=false"]


@pytest.fixture
def state(tmp_path, monkeypatch):
    """This test's state folder; whatever cluster it kept is stopped (or killed) afterwards."""
    folder = tmp_path / "state"
    monkeypatch.setenv(ks.STATE_ENV, str(folder))
    yield folder
    f = folder / ks.STATE_NAME
    if f.exists():
        run_cli(["cluster", "stop"], cwd=tmp_path, timeout=60)
    for pid in _recorded_pids(folder):
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


_SEEN: dict = {}


def _recorded_pids(folder: Path) -> set:
    return _SEEN.pop(folder, set())


def _kept(folder: Path) -> ks.Kept:
    kept = ks.parse((folder / ks.STATE_NAME).read_text())
    _SEEN.setdefault(folder, set()).update({kept.pid, *kept.worker_pids, *token_pids(kept.token)})
    return kept


def _start(cwd: Path, folder: Path, *extra: str) -> ks.Kept:
    r = run_cli([*START, *extra], cwd=cwd)
    assert r.returncode == 0, (r.stdout, r.stderr)
    kept = _kept(folder)
    assert f"kept cluster started at {kept.address} (process {kept.pid}, 2 workers)" in r.stdout
    return kept


def _experiment(user_dir: Path) -> None:
    write_experiment(
        user_dir / "conf",
        "quads",
        """
        name: quads
        trial: {_target_: usertrials.quad, y: 0.5}
        sweep: {params: {trial.x: 'range(0,30)'}}
        """,
    )


def _gone(pids, timeout: float = 20.0) -> list:
    deadline = time.time() + timeout
    while time.time() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if pid_alive(p)]


def test_start_status_reuse_by_sweeps_then_stop_leaves_no_process(user_dir, state):
    _experiment(user_dir)
    kept = _start(user_dir, state)
    assert kept.address.startswith("tcp://127.0.0.1:") and pid_alive(kept.pid)
    assert len(kept.worker_pids) == 2 and all(pid_alive(p) for p in kept.worker_pids)
    assert (state / ks.STATE_NAME).stat().st_mode & 0o077 == 0  # the user's own

    st = run_cli(["cluster", "status"], cwd=user_dir)
    assert st.returncode == 0, st.stderr
    assert f"kept cluster: {kept.address} (process {kept.pid})" in st.stdout
    assert "workers: 2 (2 threads; resources: none)" in st.stdout
    assert f"dashboard: {kept.dashboard}" in st.stdout and kept.dashboard.startswith("http://127.0.0.1:")
    assert "uptime: 0:0" in st.stdout

    r = run_cli(RUN, cwd=user_dir)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"using the kept cluster at {kept.address}" in r.stdout
    df = pd.read_parquet(user_dir / "results" / "quads" / "trials")
    assert len(df) == 30 and (df.status == "ok").all() and df.trial_id.is_unique
    assert ((df.f - ((df["trial.x"] - 1) ** 2 + 0.5)).abs() < 1e-12).all()
    workers_then = set(df.worker)
    assert len(workers_then) <= 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers_then)

    # the user edits the trial code: the next run on the same workers runs the new code
    trials = user_dir / "usertrials.py"
    trials.write_text(trials.read_text().replace('"f": (x - 1) ** 2 + y', '"f": -1.0'))
    r2 = run_cli([*RUN, "trial.x=range(30,40)"], cwd=user_dir)
    assert r2.returncode == 0, (r2.stdout, r2.stderr)
    assert f"using the kept cluster at {kept.address}" in r2.stdout
    df2 = pd.read_parquet(user_dir / "results" / "quads" / "trials")
    new = df2[df2["trial.x"] >= 30]
    assert len(new) == 10 and (new.f == -1.0).all()
    assert set(new.worker) <= set(kept_workers(user_dir)) and all(pid_alive(p) for p in kept.worker_pids)

    assert len(_commands_logged(state)) == 2  # both runs on the driver zygote: no imports of their own

    stop = run_cli(["cluster", "stop"], cwd=user_dir)
    assert stop.returncode == 0, stop.stderr
    assert f"stopped the kept cluster at {kept.address}" in stop.stdout
    assert not (state / ks.STATE_NAME).exists()
    assert _gone([kept.pid, *kept.worker_pids]) == [] and token_pids(kept.token) == []
    st2 = run_cli(["cluster", "status"], cwd=user_dir)
    assert st2.returncode == 1 and "no kept cluster is running" in st2.stdout


def kept_workers(cwd: Path) -> list:
    """Worker addresses of the kept cluster, as its scheduler lists them."""
    from distributed import Client

    kept = ks.parse((Path(os.environ[ks.STATE_ENV]) / ks.STATE_NAME).read_text())
    with Client(kept.address, timeout="10s") as c:
        return list(c.scheduler_info()["workers"])


def test_killed_cluster_is_stale_the_sweep_says_so_and_completes(user_dir, state):
    _experiment(user_dir)
    kept = _start(user_dir, state)
    os.kill(kept.pid, signal.SIGKILL)
    assert _gone([kept.pid]) == []
    r = run_cli([*RUN, "cluster.n_workers=2", "cluster.dashboard_address=127.0.0.1:0"], cwd=user_dir)
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = [ln for ln in r.stdout.splitlines() if "kept cluster" in ln]
    assert lines == [
        f"daskbench: the kept cluster at {kept.address} is gone (process {kept.pid} no longer runs); "
        f"removed {state / ks.STATE_NAME}; starting a local cluster for this run"
    ]
    assert "Traceback" not in r.stdout + r.stderr
    df = pd.read_parquet(user_dir / "results" / "quads" / "trials")
    assert len(df) == 30 and (df.status == "ok").all()
    assert not (state / ks.STATE_NAME).exists()
    assert _gone(kept.worker_pids) == [] and token_pids(kept.token) == []


def test_corrupt_state_file_is_removed_and_the_sweep_completes(user_dir, state):
    _experiment(user_dir)
    state.mkdir()
    (state / ks.STATE_NAME).write_text('{"address": "tcp://127.0.0.1:1", "pid": ')
    r = run_cli([*RUN, "cluster.n_workers=1", "cluster.dashboard_address=null", "trial.x=1,2"], cwd=user_dir)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"daskbench: the state file {state / ks.STATE_NAME} is corrupt (not JSON" in r.stdout
    assert "starting a local cluster for this run" in r.stdout
    assert not (state / ks.STATE_NAME).exists()
    assert len(pd.read_parquet(user_dir / "results" / "quads" / "trials")) == 2


def test_start_twice_and_a_run_asking_for_other_settings(user_dir, state):
    _experiment(user_dir)
    kept = _start(user_dir, state)
    again = run_cli(START, cwd=user_dir)
    assert again.returncode == 0, again.stderr
    assert f"a kept cluster already runs at {kept.address} (process {kept.pid})" in again.stdout
    assert _kept(state).token == kept.token
    other = run_cli([*START[:2], "cluster.n_workers=3"], cwd=user_dir)
    assert other.returncode == 2 and other.stdout == ""
    assert other.stderr.strip() == (
        f"daskbench: error: a kept cluster already runs at {kept.address} and this run asks for "
        "cluster.n_workers=3, the kept cluster has cluster.n_workers=2; stop it first: "
        "`python -m daskbench cluster stop`"
    )
    # a run whose local settings differ runs on a cluster of its own, and says why
    r = run_cli([*RUN, "cluster.threads_per_worker=2", "cluster.dashboard_address=null", "trial.x=1,2"], cwd=user_dir)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert (
        f"daskbench: not using the kept cluster at {kept.address}: this run asks for "
        "cluster.threads_per_worker=2, the kept cluster has cluster.threads_per_worker=1; "
        "starting a local cluster for this run"
    ) in r.stdout
    assert pid_alive(kept.pid)


def test_stop_and_status_when_none_runs(tmp_path, state):
    stop = run_cli(["cluster", "stop"], cwd=tmp_path)
    assert stop.returncode == 0 and stop.stdout.strip() == "no kept cluster is running; nothing to stop"
    st = run_cli(["cluster", "status"], cwd=tmp_path)
    assert st.returncode == 1 and "start one with `python -m daskbench cluster start`" in st.stdout


@pytest.mark.parametrize(
    "words, message",
    [
        (["cluster", "start", "cluster.host=0.0.0.0"], "cluster.host=0.0.0.0: a kept cluster binds to 127.0.0.1 only"),
        (["cluster", "start", "trial.x=1"], "cluster start takes cluster.KEY=VALUE settings only, not 'trial.x=1'"),
        (["cluster", "start", "cluster.n_workr=2"], "unknown key cluster.n_workr"),
        (["cluster", "start", "cluster=address", "cluster.address=tcp://h:1"], "cluster start keeps a local cluster"),
        (["cluster", "restart"], "unknown cluster command 'restart'"),
        (["cluster"], "no cluster command given; use: python -m daskbench cluster {start"),
        (["cluster", "stop", "now"], "unknown cluster command 'stop now'"),
    ],
)
def test_cluster_command_mistakes_are_one_line_exit_2(tmp_path, state, words, message):
    r = run_cli(words, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not state.exists()


# -- the pure parts --------------------------------------------------------------


def test_state_dir_override_then_xdg_then_home(tmp_path):
    home = tmp_path / "home"
    assert ks.state_dir({ks.STATE_ENV: "/x/y"}, home) == Path("/x/y")
    assert ks.state_dir({"XDG_STATE_HOME": "/xdg"}, home) == Path("/xdg/daskbench")
    assert ks.state_dir({"XDG_STATE_HOME": "relative"}, home) == home / ".local/state/daskbench"
    assert ks.state_dir({}, home) == home / ".local/state/daskbench"


def test_parse_refuses_what_daskbench_did_not_write():
    good = ks.Kept("tcp://127.0.0.1:1", 5, "t", 1.0, None, ks.settings_of(LocalClusterConfig()))
    assert ks.parse(good.to_json()) == good
    for text, why in [
        ("", "not JSON"),
        ("[]", "not a JSON object"),
        (json.dumps({**json.loads(good.to_json()), "version": 99}), "version 99"),
        (json.dumps({**json.loads(good.to_json()), "extra": 1}), "unexpected keyword"),
        (json.dumps({**json.loads(good.to_json()), "pid": "5"}), "malformed"),
        (json.dumps({**json.loads(good.to_json()), "address": "http://x"}), "malformed"),
    ]:
        with pytest.raises(ks.StateCorrupt, match=why):
            ks.parse(text)


def test_mismatch_only_for_what_the_run_asks_for():
    defaults = ks.settings_of(LocalClusterConfig())
    kept = ks.settings_of(LocalClusterConfig(n_workers=4, resources={"GPU": 1}))
    assert ks.mismatch(defaults, kept, defaults) is None  # the run takes the kept cluster's settings
    assert ks.mismatch(ks.settings_of(LocalClusterConfig(n_workers=4)), kept, defaults) is None
    assert ks.mismatch(ks.settings_of(LocalClusterConfig(dashboard_address=None)), kept, defaults) is None
    why = ks.mismatch(ks.settings_of(LocalClusterConfig(resources={"GPU": 2})), kept, defaults)
    assert why == "this run asks for cluster.resources={GPU:2}, the kept cluster has cluster.resources={GPU:1}"
    loud = ks.settings_of(LocalClusterConfig(dask_config=None))
    assert loud["dask_config"] is None and defaults["dask_config"]["distributed.worker.profile.interval"] == "50ms"
    assert serve.config_of(loud).dask_config is None  # a kept cluster started so keeps Dask's own values
    why = ks.mismatch(loud, kept, defaults)
    assert why == (
        "this run asks for cluster.dask_config=null, the kept cluster has cluster.dask_config="
        "{distributed.worker.profile.interval:50ms,distributed.admin.tick.interval:100ms}"
    )
    assert serve.config_of(kept).dask_config == kept["dask_config"]  # what the kept cluster starts with


def test_uptime_and_status_lines(tmp_path):
    assert ks.uptime(5) == "0:00:05" and ks.uptime(3723) == "1:02:03" and ks.uptime(2 * 86400 + 1) == "2 days 0:00:01"
    kept = ks.Kept("tcp://127.0.0.1:1", 5, "t", 100.0, "http://127.0.0.1:2/status", {})
    workers = {"a": {"nthreads": 2, "resources": {"GPU": 1}}, "b": {"nthreads": 1, "resources": {"GPU": 1}}}
    lines = ks.status_lines(kept, workers, 161.0, tmp_path / "cluster.json")
    assert lines[:4] == [
        "kept cluster: tcp://127.0.0.1:1 (process 5)",
        "workers: 2 (3 threads; resources: GPU=2)",
        "dashboard: http://127.0.0.1:2/status",
        "uptime: 0:01:01",
    ]


def _commands_logged(folder: Path) -> list:
    """Commands the kept cluster's driver zygote ran, from its log."""
    return [ln for ln in (folder / ks.LOG_NAME).read_text().splitlines() if ln.startswith("command ")]


def test_ctrl_c_reaches_a_run_on_the_driver_zygote_which_saves_and_resumes(user_dir, state):
    write_experiment(
        user_dir / "conf",
        "long",
        """
        name: long
        trial: {_target_: usertrials.slow, delay: 0.4}
        sweep: {params: {trial.x: 'range(0,40)'}}
        results: {flush_seconds: 0.5, report: false}
        """,
    )
    kept = _start(user_dir, state)
    args = [sys.executable, "-m", "daskbench", "--config-dir", "conf", "+experiment=long", "runner.progress=plain"]
    proc = subprocess.Popen(  # its own process group, signalled as a whole, as a terminal's Ctrl-C does
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
    assert f"using the kept cluster at {kept.address}" in out
    assert "interrupted: finished trials are saved. Resume with:" in out and "Traceback" not in out + err
    assert [ln.split(": ", 1)[1] for ln in _commands_logged(state)] == [" ".join(args[3:])]
    df = pd.read_parquet(trials)
    done_first = int((df.status == "ok").sum())
    assert df.trial_id.is_unique and 0 < done_first < 40 and set(df.status) <= {"ok", "cancelled"}
    r = run_cli(args[3:], cwd=user_dir)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"{done_first} skipped (already ok)" in r.stdout
    df = pd.read_parquet(trials)
    assert len(df) == 40 and df.trial_id.is_unique and (df.status == "ok").all()
    assert pid_alive(kept.pid) and all(pid_alive(p) for p in kept.worker_pids)


def test_a_command_the_zygote_cannot_serve_runs_in_its_own_process_on_the_kept_cluster(user_dir, state):
    """Another sys.path (here an extra PYTHONPATH folder) than the zygote imported with."""
    _experiment(user_dir)
    kept = _start(user_dir, state)
    (user_dir / "extra").mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(user_dir / "extra"), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(
        [sys.executable, "-m", "daskbench", *RUN, "trial.x=1,2,3"],
        cwd=user_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"using the kept cluster at {kept.address}" in r.stdout
    assert _commands_logged(state) == []
    df = pd.read_parquet(user_dir / "results" / "quads" / "trials")
    assert len(df) == 3 and (df.status == "ok").all()


def _holders(pipe_inode: int) -> list:
    """The processes that hold a pipe, other than this one: (pid, command line)."""
    found = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == f"pipe:[{pipe_inode}]" and int(fd.parts[2]) != os.getpid():
                found.append((int(fd.parts[2]), Path(f"/proc/{fd.parts[2]}/cmdline").read_bytes()[:200]))
        except OSError:
            continue
    return found


def test_a_run_on_the_zygote_leaves_nothing_holding_its_output(user_dir, state):
    """Read through a pipe (`| tail`, CI logs, subprocess), the command is over when it
    exits: nothing it started (a fork server it has no use for, the report writer) keeps
    its stdout or stderr open after it."""
    _experiment(user_dir)
    _start(user_dir, state)
    proc = subprocess.Popen(
        [sys.executable, "-m", "daskbench", *RUN[:-1]],  # the report on, as shipped
        cwd=user_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    pipes = [os.fstat(s.fileno()).st_ino for s in (proc.stdout, proc.stderr)]
    assert proc.wait(timeout=120) == 0
    left = [h for ino in pipes for h in _holders(ino)]
    out, err = proc.communicate(timeout=60)
    assert left == [], left
    assert b"using the kept cluster" in out and b"quads: 30 ok" in out, (out, err)
    assert len(_commands_logged(state)) == 1  # it ran on the driver zygote
    wait_for_report(user_dir / "results" / "quads")


def test_a_kept_cluster_whose_daskbench_changed_since_it_started_is_not_used(user_dir, state, tmp_path, monkeypatch):
    """Its workers imported daskbench as it started: after an upgrade or an edit of
    daskbench's source, a command neither runs on its driver zygote nor sends its chunks
    to those workers; it says why, in one line, and runs on a local cluster of its own."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    copy = tmp_path / "daskbench-copy"
    shutil.copytree(
        root / "src" / "daskbench", copy / "src" / "daskbench", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(root / "conf", copy / "conf")
    monkeypatch.setenv("PYTHONPATH", str(copy / "src"))
    _experiment(user_dir)
    kept = _start(user_dir, state)
    assert kept.driver["package"] == str(copy / "src" / "daskbench")
    r = run_cli(RUN, cwd=user_dir)
    assert r.returncode == 0 and f"using the kept cluster at {kept.address}" in r.stdout, (r.stdout, r.stderr)
    assert len(_commands_logged(state)) == 1

    later = time.time() + 5
    os.utime(copy / "src" / "daskbench" / "api.py", (later, later))  # as an upgrade or an edit leaves it
    r = run_cli([*RUN, "trial.x=range(30,36)"], cwd=user_dir)
    assert r.returncode == 0, (r.stdout, r.stderr)
    line = f"daskbench: not using the kept cluster at {kept.address}: daskbench's source changed since it started"
    assert line in r.stdout and "python -m daskbench cluster stop" in r.stdout, r.stdout
    assert "using the kept cluster at" not in r.stdout.replace("not using the kept cluster at", "")
    assert len(_commands_logged(state)) == 1  # the zygote refused it too
    assert "daskbench's source changed since the driver imported it" in (state / ks.LOG_NAME).read_text()
    df = pd.read_parquet(user_dir / "results" / "quads" / "trials")
    assert len(df) == 36 and (df.status == "ok").all()
    assert not set(df[df["trial.x"] >= 30].worker) & set(df[df["trial.x"] < 30].worker)  # not the kept workers
