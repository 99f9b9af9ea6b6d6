"""Workers that come and go: adaptive LocalClusters, and actor workers kept on scale-down."""

from __future__ import annotations

import pandas as pd

import daskbench
from tests.conftest import KILLER_PY, write_experiment


def test_adaptive_cluster_loses_no_trial(user_dir):
    (user_dir / "killer.py").write_text(KILLER_PY)
    marker = user_dir / "killed-once"
    write_experiment(
        user_dir / "conf",
        "adapt",
        f"""
        name: adapt
        trial: {{_target_: killer.kill_once, marker: '{marker}', delay: 0.2}}
        sweep: {{params: {{trial.x: 'range(0,40)'}}}}
        runner: {{chunk_size: 1}}
    """,
    )
    import dask
    import distributed  # noqa: F401  (its config defaults must exist before we override one)

    said = []
    # Dask scales up once queued work exceeds target-duration per worker; 0.2 s trials need a short one
    with dask.config.set({"distributed.adaptive.target-duration": "0.5s", "distributed.adaptive.interval": "200ms"}):
        res = daskbench.run(
            "adapt",
            ["cluster.adapt.minimum=1", "cluster.adapt.maximum=3", "cluster.dashboard_address=null"],
            config_dir="conf",
            progress="none",
            echo=said.append,
        )
    assert not any("Dask dashboard" in line for line in said)  # off: no link to a page that is not there
    assert marker.exists()  # a worker really died mid-sweep
    assert res.counts.ok == 40 and res.exit_code == 0
    df = pd.read_parquet(user_dir / "results" / "adapt" / "trials")
    assert len(df) == 40 and df.trial_id.is_unique and (df.status == "ok").all()
    assert df.worker.nunique() >= 2  # the cluster grew past its one starting worker


class Counter:
    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1
        return self.n


def test_actor_workers_not_chosen_for_scale_down():
    from distributed import Client, LocalCluster

    # its own cluster: daskbench runs on the shared one have installed the plugin already
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        _check_actor_workers_kept(client)


def _check_actor_workers_kept(client):
    from daskbench.observe.scheduler_plugins import KeepActorWorkers

    workers = sorted(client.scheduler_info()["workers"])
    actor = client.submit(Counter, actor=True, workers=[workers[0]]).result()
    assert actor.inc().result() == 1

    def choose(dask_scheduler):
        return sorted(dask_scheduler.workers_to_close(n=2))

    choose_all = client.run_on_scheduler(choose)
    assert workers[0] in choose_all  # plain Dask would retire the actor's worker
    client.register_plugin(KeepActorWorkers(), name=KeepActorWorkers.name)
    assert client.run_on_scheduler(choose) == [workers[1]]
    # the RPC path that Adaptive uses, and the HTTP API's retire_workers path
    assert list(client.sync(client.scheduler.workers_to_close, n=2)) == [workers[1]]
    del actor
