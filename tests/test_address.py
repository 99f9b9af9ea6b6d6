"""cluster=address against real `dask scheduler` / `dask worker` processes on 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest

from tests.conftest import run_cli, write_experiment
from tests.procs import DASK, DaskProcesses, free_port, make_cert

PLAIN = ["runner.progress=plain"]


@pytest.fixture
def procs(tmp_path_factory):
    p = DaskProcesses(tmp_path_factory.mktemp("hosts"))
    p.start_scheduler()
    p.start_worker("plain")
    p.start_worker("gpu", resources="GPU=1")
    names = p.wait_for_workers(2)
    p.names = names
    yield p
    p.stop()


def test_resource_tags_and_code_shipping(user_dir, procs):
    write_experiment(
        user_dir / "conf",
        "tagged",
        """
        name: tagged
        resources: {GPU: 1}
        trial: {_target_: usertrials.quad}
        sweep: {params: {trial.x: 'range(0,8)'}}
    """,
    )
    args = ["--config-dir", "conf", "+experiment=tagged", "cluster=address", f"cluster.address={procs.address}", *PLAIN]
    # workers run in other folders and cannot import the user's module unless it is sent
    r = run_cli([*args, "cluster.upload_code=false", "results.dir=results/noship"], cwd=user_dir)
    assert r.returncode == 1
    df = pd.read_parquet(user_dir / "results" / "noship" / "trials")
    assert (df.status == "failed").all() and df.error.str.contains("usertrials").all()

    r = run_cli(args, cwd=user_dir)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"sent {user_dir / 'usertrials.py'} to the workers" in r.stdout
    df = pd.read_parquet(user_dir / "results" / "tagged" / "trials")
    assert len(df) == 8 and (df.status == "ok").all()
    assert set(df.worker) == {procs.names["gpu"]}  # tagged trials ran only on the tagged worker


def test_a_trial_package_is_shipped_and_importable_on_the_workers(user_dir, procs):
    """A package folder (not a single file) is zipped and sent; the workers import it from the zip."""
    pkg = user_dir / "mytrials"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text("def square(x=0, seed=0):\n    return {'y': x * x}\n")
    write_experiment(
        user_dir / "conf",
        "pkg",
        """
        name: pkg
        trial: {_target_: mytrials.models.square}
        sweep: {params: {trial.x: 'range(0,6)'}}
    """,
    )
    r = run_cli(
        ["--config-dir", "conf", "+experiment=pkg", "cluster=address", f"cluster.address={procs.address}", *PLAIN],
        cwd=user_dir,
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"sent {pkg} to the workers" in r.stdout
    df = pd.read_parquet(user_dir / "results" / "pkg" / "trials")
    assert len(df) == 6 and (df.status == "ok").all() and sorted(df.y) == [x * x for x in range(6)]


def test_daskbench_itself_is_never_shipped():
    from daskbench.cluster.shipping import code_root

    # the shipped experiments live in the package: the workers have them installed
    assert code_root("daskbench.experiments.mmc_queue.trial") is None


def test_missing_resources_listed(user_dir, procs):
    write_experiment(
        user_dir / "conf",
        "tpu",
        """
        name: tpu
        resources: {TPU: 1}
        trial: {_target_: usertrials.quad}
        sweep: {params: {trial.x: '1,2'}}
    """,
    )
    r = run_cli(
        ["--config-dir", "conf", "+experiment=tpu", "cluster=address", f"cluster.address={procs.address}"], cwd=user_dir
    )
    assert r.returncode == 3
    assert "no worker has the resources this experiment asks for (TPU=1); the workers have: GPU=1" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli(
        [
            "--config-dir",
            "conf",
            "+experiment=tpu",
            "cluster=address",
            f"cluster.address={procs.address}",
            "cluster.resource_wait_s=2",
        ],
        cwd=user_dir,
    )
    assert r.returncode == 3 and "waiting up to 2s for a worker with TPU=1" in r.stdout
    assert "joined within 2s" in r.stderr


def test_dashboard_link_only_when_the_scheduler_has_a_dashboard(user_dir, procs, tmp_path_factory):
    write_experiment(
        user_dir / "conf",
        "dash",
        """
        name: dash
        trial: {_target_: usertrials.quad}
        sweep: {params: {trial.x: '1,2'}}
        results: {report: false}
    """,
    )
    args = ["--config-dir", "conf", "+experiment=dash", "cluster=address", *PLAIN]
    # `dask scheduler --no-dashboard` still serves /metrics on its HTTP port, which
    # Client.dashboard_link names: a link there would answer 404
    r = run_cli([*args, f"cluster.address={procs.address}", "results.dir=results/nodash"], cwd=user_dir)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "Dask dashboard" not in r.stdout and "Traceback" not in r.stderr

    other = DaskProcesses(tmp_path_factory.mktemp("dashhosts"))
    http_port = free_port()
    other.scheduler = other._start(
        [
            DASK,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(other.port),
            "--dashboard-address",
            f"127.0.0.1:{http_port}",
        ],
        "scheduler",
    )
    other.start_worker("a")
    try:
        other.wait_for_workers(1)
        r = run_cli([*args, f"cluster.address={other.address}", "results.dir=results/dash"], cwd=user_dir)
        assert r.returncode == 0, (r.stdout, r.stderr)
        link = re.search(r"Dask dashboard: (\S+)", r.stdout)
        assert link and link.group(1) == f"http://127.0.0.1:{http_port}/status", r.stdout
        with urllib.request.urlopen(link.group(1), timeout=30) as page:  # the link printed answers
            assert page.status == 200 and b"Dask" in page.read()
    finally:
        other.stop()


def test_unreachable_address(user_dir):
    from tests.procs import free_port

    port = free_port()
    write_experiment(user_dir / "conf", "u", "name: u\ntrial: {_target_: usertrials.quad}\n")
    r = run_cli(
        [
            "--config-dir",
            "conf",
            "+experiment=u",
            "cluster=address",
            f"cluster.address=tcp://127.0.0.1:{port}",
            "cluster.timeout_s=2",
        ],
        cwd=user_dir,
    )
    assert r.returncode == 3
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port} (waited" in r.stderr
    assert "cluster.timeout_s=2" in r.stderr and "Traceback" not in r.stderr


def test_tls(user_dir, tmp_path_factory):
    certs = make_cert(tmp_path_factory.mktemp("certs"))
    p = DaskProcesses(tmp_path_factory.mktemp("tlshosts"), tls=certs)
    p.start_scheduler()
    p.start_worker("a")
    try:
        p.wait_for_workers(1)
        write_experiment(
            user_dir / "conf",
            "sec",
            """
            name: sec
            trial: {_target_: usertrials.quad}
            sweep: {params: {trial.x: 'range(0,4)'}}
        """,
        )
        base = ["--config-dir", "conf", "+experiment=sec", "cluster=address", f"cluster.address={p.address}"]
        sec = [f"cluster.security.{k}={v}" for k, v in certs.items()]
        r = run_cli([*base, "cluster.security.mode=files", *sec, *PLAIN], cwd=user_dir)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert len(pd.read_parquet(user_dir / "results" / "sec" / "trials")) == 4

        r = run_cli(base, cwd=user_dir)  # tls:// without certificates
        assert r.returncode == 2 and "uses TLS but cluster.security.mode is none" in r.stderr
        r = run_cli(
            [*base, "cluster.security.mode=files", *sec[:2], "cluster.security.key_file=/nope.pem"], cwd=user_dir
        )
        assert r.returncode == 2 and "cluster.security.key_file=/nope.pem: no such file" in r.stderr
        other = make_cert(tmp_path_factory.mktemp("other"), "other")  # a CA the scheduler does not trust
        bad = [f"cluster.security.{k}={v}" for k, v in other.items()]
        r = run_cli([*base, "cluster.security.mode=files", *bad, "cluster.timeout_s=3"], cwd=user_dir)
        assert r.returncode == 3 and "cannot reach the Dask scheduler" in r.stderr
        assert "CA and certificate match" in r.stderr and "Traceback" not in r.stderr
    finally:
        p.stop()


def test_temporary_tls_local_cluster(user_dir):
    write_experiment(
        user_dir / "conf",
        "lt",
        """
        name: lt
        trial: {_target_: usertrials.quad}
        sweep: {params: {trial.x: '1,2'}}
    """,
    )
    r = run_cli(
        [
            "--config-dir",
            "conf",
            "+experiment=lt",
            "cluster.security.mode=temporary",
            "cluster.n_workers=1",
            "cluster.dashboard_address=127.0.0.1:0",
            *PLAIN,
        ],
        cwd=user_dir,
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "Dask dashboard: http://127.0.0.1:" in r.stdout  # the dashboard stays on localhost


def test_scheduler_lost_then_resume(user_dir, tmp_path_factory):
    p = DaskProcesses(tmp_path_factory.mktemp("lost"))
    p.start_scheduler()
    p.start_worker("a")
    p.start_worker("b")
    try:
        p.wait_for_workers(2)
        write_experiment(
            user_dir / "conf",
            "lost",
            """
            name: lost
            trial: {_target_: usertrials.slow, delay: 0.3}
            sweep: {params: {trial.x: 'range(0,40)'}}
            results: {flush_seconds: 0.5}
        """,
        )
        args = [
            "--config-dir",
            "conf",
            "+experiment=lost",
            "cluster=address",
            f"cluster.address={p.address}",
            "cluster.timeout_s=5",
            *PLAIN,
        ]
        proc = subprocess.Popen(
            [sys.executable, "-m", "daskbench", *args],
            cwd=user_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        trials = user_dir / "results" / "lost" / "trials"
        deadline = time.time() + 60
        while time.time() < deadline and not list(trials.glob("part-*.parquet")):
            time.sleep(0.2)
        p.kill_scheduler()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 3, (out, err)
        assert "lost the connection to the Dask scheduler" in err and "Traceback" not in err
        df = pd.read_parquet(trials)
        assert df.trial_id.is_unique and 0 < (df.status == "ok").sum() < 40
        done = int((df.status == "ok").sum())

        p.stop()  # a new scheduler and workers on the same address; the same command resumes
        p.start_scheduler()
        p.start_worker("c")
        p.wait_for_workers(1)
        r = run_cli(args, cwd=user_dir)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert f"{done} skipped (already ok)" in r.stdout
        df = pd.read_parquet(trials)
        assert len(df) == 40 and df.trial_id.is_unique and (df.status == "ok").all()
    finally:
        p.stop()
