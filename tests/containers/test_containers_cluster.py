"""A containerized Dask cluster serving daskbench from the host: sweeps, GPU pools,
sharded simulations, a worker container killed mid-sweep, the scheduler's pages.

The scheduler and workers run the image built from deploy/Dockerfile; the driver
is ``python -m daskbench ... cluster=address`` on the host; results are read
back from the Parquet files it wrote.
"""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import podman_engine as pe
from host_cli import cli, finish, start_cli

import daskbench


def _address(cluster):
    return ["cluster=address", f"cluster.address={cluster.address}"]


def _planned(experiment, overrides):
    """The trial ids daskbench plans for a command (the public dry-run API)."""
    return {t.trial_id for t in daskbench.plan(experiment, overrides).plan}


def _every_trial_once_ok(folder, expected) -> pd.DataFrame:
    df = daskbench.load(folder)
    assert df.trial_id.is_unique, df.trial_id[df.trial_id.duplicated()].tolist()
    assert set(df.trial_id) == expected, (len(df), len(expected))
    assert (df.status == "ok").all(), df[df.status != "ok"][["trial_id", "status", "error"]].head().to_dict("records")
    return df


def test_sweep_and_a_gpu_sweep_at_once_gpu_trials_only_on_the_gpu_worker(cluster, tmp_path):
    everything, gpu = tmp_path / "all", tmp_path / "gpu"
    everything.mkdir(), gpu.mkdir()
    gpu_args = ["+resources.GPU=1", "trial.customers=1000"]
    a = start_cli(["+experiment=sweep", *_address(cluster)], everything)
    g = start_cli(["+experiment=sweep", *_address(cluster), *gpu_args], gpu)
    finish(a, everything), finish(g, gpu)

    df = _every_trial_once_ok(everything / "results" / "sweep", _planned("sweep", []))
    assert len(df) == 144
    assert set(df.worker) <= set(cluster.workers.values()), set(df.worker)
    df_gpu = _every_trial_once_ok(gpu / "results" / "sweep", _planned("sweep", gpu_args))
    assert len(df_gpu) == 36
    assert (df_gpu.worker == cluster.worker_address("worker-gpu")).all(), df_gpu.worker.value_counts()
    # the metrics are real: the simulated waits approach Erlang C's with the horizon
    assert df.groupby("trial.customers").rel_error.mean().is_monotonic_decreasing


def test_simulation_shards_live_in_different_worker_containers(cluster, tmp_path):
    sweep = ["+experiment=boltzmann", "trial.shards=2", "trial.params.n_agents=1000,10000", "sweep.replicates=1"]
    r = cli([*sweep, *_address(cluster)], tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    df = _every_trial_once_ok(tmp_path / "results" / "boltzmann", _planned("boltzmann", sweep[1:]))
    assert len(df) == 2 and (df.shards == 2).all()
    assert (df.shard_workers == 2).all(), df[["trial.params.n_agents", "shard_workers"]]  # both containers

    # the same simulations with every shard in one process on the host: the same numbers, tick by tick
    local = tmp_path / "local"
    local.mkdir()
    r = cli([*sweep, "+trial.local=true", "cluster.n_workers=1", "cluster.dashboard_address=null"], local)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    in_containers, here = _gini_by_tick(tmp_path), _gini_by_tick(local)
    assert len(in_containers) >= 200 and in_containers.equals(here)


def _gini_by_tick(cwd) -> pd.Series:
    folder = cwd / "results" / "boltzmann"
    trials, steps = daskbench.load(folder), daskbench.load(folder, "steps")
    n_agents = steps.trial_id.map(dict(zip(trials.trial_id, trials["trial.params.n_agents"])))
    return steps.assign(n_agents=n_agents).set_index(["n_agents", "tick"]).gini.sort_index()


def _status(cluster):
    return json.loads(pe.http_get(f"{cluster.dashboard}/daskbench/status.json"))


def test_worker_container_killed_mid_sweep_loses_no_trial_and_doubles_none(cluster, tmp_path):
    victim = cluster.start_worker("worker-3")
    try:
        cluster.refresh(3)
        before = {r["run_id"] for r in _status(cluster)["runs"]} if _has_status(cluster) else set()
        args = ["+experiment=sweep"]
        p = start_cli([*args, *_address(cluster)], tmp_path)
        seen = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and p.poll() is None:
            runs = [r for r in _status(cluster)["runs"] if r["run_id"] not in before] if _has_status(cluster) else []
            if runs and runs[0]["state"] == "running" and runs[0]["done"] >= 10:
                seen = runs[0]
                pe.podman("kill", victim)
                break
            time.sleep(0.2)
        assert seen is not None, (
            "the sweep ended (or never started) before the kill: " + (tmp_path / "cli.log").read_text()[-2000:]
        )
        assert seen["done"] < seen["total"] == 144  # the kill came mid-sweep
        finish(p, tmp_path)
        assert not pe.state(victim)["Running"]

        df = _every_trial_once_ok(tmp_path / "results" / "sweep", _planned("sweep", args[1:]))
        assert len(df) == 144
        # the killed container held trials: they ran again elsewhere, counted in `attempts`
        assert (df.attempts >= 2).any() and df.attempts.max() <= 3, df.attempts.value_counts()
        assert cluster.workers[victim] not in set(df[df.attempts >= 2].worker)
        assert len(pe.wait_for_workers(cluster.address, 2)) == 2
    finally:
        pe.remove(victim)
        cluster.workers.pop(victim, None)


def test_worker_container_that_joins_mid_run_runs_the_shipped_experiment(cluster, tmp_path):
    """The driver sends trial code when it starts; a worker joining later (as on an
    adaptive cluster) gets it too and runs the trials with the image's daskbench."""
    args = ["+experiment=sweep", "+resources.TPU=1", "trial.customers=1000", "cluster.resource_wait_s=120"]
    p = start_cli([*args, *_address(cluster)], tmp_path)
    deadline = time.monotonic() + 120
    while (
        "waiting up to" not in (tmp_path / "cli.log").read_text() and p.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    late = cluster.start_worker("worker-tpu", "--resources", "TPU=1")
    try:
        finish(p, tmp_path)
        cluster.refresh(3)
        df = _every_trial_once_ok(tmp_path / "results" / "sweep", _planned("sweep", args[1:]))
        assert len(df) == 36 and (df.worker == cluster.workers[late]).all()
    finally:
        pe.remove(late)
        cluster.workers.pop(late, None)


def test_a_users_own_trial_package_is_sent_to_the_worker_containers(cluster, tmp_path):
    """Trial code in the user's folder is not in the image: the driver zips its package and sends it."""
    pkg = tmp_path / "mytrials"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(
        "import os\n\ndef square(x=0, seed=0):\n    return {'y': x * x, 'pid': os.getpid()}\n"
    )
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\nname: mine\ntrial: {_target_: mytrials.models.square}\n"
        "sweep: {params: {trial.x: 'range(0,12)'}}\n"
    )
    r = cli(["--config-dir", "conf", "+experiment=mine", *_address(cluster)], tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"sent {pkg} to the workers" in r.stdout
    df = daskbench.load(tmp_path / "results" / "mine")
    assert len(df) == 12 and (df.status == "ok").all(), df[["trial.x", "status", "error"]].to_dict("records")
    assert sorted(df.y) == [x * x for x in range(12)]


def _has_status(cluster) -> bool:
    try:
        _status(cluster)
        return True
    except OSError:  # 404 until a daskbench driver has installed the plugin
        return False


def test_scheduler_container_serves_metrics_status_and_health(cluster, tmp_path):
    small = ["+experiment=sweep", "trial.customers=1000", "trial.servers=1", "sweep.replicates=1"]
    r = cli([*small, *_address(cluster)], tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    metrics = pe.http_get(f"{cluster.dashboard}/metrics")
    assert "dask_scheduler_workers" in metrics  # distributed's own
    assert re.search(r'^daskbench_trials_total\{[^}]*experiment="sweep"', metrics, re.M), metrics[-2000:]
    page = pe.http_get(f"{cluster.dashboard}/daskbench/status")
    assert "<html" in page.lower() and "sweep" in page
    runs = [x for x in _status(cluster)["runs"] if x["experiment"] == "sweep" and x["state"] == "finished"]
    assert any(x["ok"] == 3 and x["total"] == 3 for x in runs), runs
    assert pe.http_get(f"{cluster.dashboard}/health") == "ok"
    # the image's HEALTHCHECK, run by podman in each container
    for container in [cluster.scheduler, *cluster.workers]:
        r = pe.podman("healthcheck", "run", container, check=False)
        assert r.returncode == 0, (container, r.stdout, r.stderr)
