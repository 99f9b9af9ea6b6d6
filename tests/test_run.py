"""Sweeps run on a real LocalCluster through the Python API."""

from __future__ import annotations

import gc
import time

import pandas as pd
import pytest

import daskbench
from daskbench.errors import ClusterError, ResultsError
from tests.conftest import write_experiment

CONTRACT = ["trial_id", "seed", "status", "error", "attempts", "worker", "started_at", "duration_s"]


def quiet(*_):
    pass


def go(name, overrides=(), client=None):
    return daskbench.run(name, list(overrides), client=client, config_dir="conf", progress="none", echo=quiet)


@pytest.fixture
def quad(user_dir):
    write_experiment(
        user_dir / "conf",
        "quad",
        """
        name: quad
        seed: 5
        trial: {_target_: usertrials.quad, x: 0.0, y: 0.0}
        sweep:
          params:
            trial.x: 1,2,3
            trial.y: 0.0,0.5
          replicates: 2
    """,
    )
    return user_dir


def test_sweep_table_and_resume(quad, client):
    res = go("quad", client=client)
    assert res.exit_code == 0 and res.counts.ok == 12
    df = pd.read_parquet("results/quad/trials")
    assert len(df) == 12 and df.trial_id.is_unique
    for col in CONTRACT + ["trial.x", "trial.y", "f"]:
        assert col in df.columns, col
    assert (df.status == "ok").all()
    assert set(df.worker) <= set(client.scheduler_info()["workers"])
    # the seed the trial saw is the one recorded, and replicates differ
    assert (df.seed == df.seed_seen).all()
    assert df.groupby(["trial.x", "trial.y"]).seed.nunique().eq(2).all()
    assert df.f.tolist() == [(x - 1) ** 2 + y for x, y in zip(df["trial.x"], df["trial.y"])]

    again = go("quad", client=client)  # same command: nothing to run
    assert again.counts.skipped == 12 and again.counts.done == 0
    more = go("quad", ["trial.x=1,2,3,4"], client=client)  # extend: only the new points
    assert more.counts.ok == 4 and more.counts.skipped == 12
    df = daskbench.load("results/quad")
    assert len(df) == 16 and df.trial_id.is_unique

    ds = daskbench.to_xarray(df)
    assert dict(ds.sizes) == {"trial.x": 4, "trial.y": 2, "replicate": 2}
    assert float(ds.f.sel({"trial.x": 3, "trial.y": 0.5, "replicate": 0})) == 4.5

    import json

    manifest = json.loads((quad / "results/quad/manifest.json").read_text())
    assert len(manifest["runs"]) == 3 and manifest["runs"][0]["outcome"] == "finished"
    assert "dask" in manifest["versions"] and "usertrials.quad" in manifest["config"]
    assert manifest["runs"][2]["counts"]["ok"] == 4 and manifest["runs"][2]["ended_at"]


def test_a_run_freezes_the_drivers_heap_only_while_its_trials_run(quad, client, monkeypatch):
    """A full pass of the garbage collector over the driver's heap (a notebook's, with the
    client and its cluster in it) stopped the driver mid-run: what the process held is
    frozen while the trials run and handed back after; a freeze of the process's own stays."""
    from daskbench.runner.driver import Runner

    seen = []
    real = Runner.run

    def run(self, done):
        seen.append(gc.get_freeze_count())
        return real(self, done)

    monkeypatch.setattr(Runner, "run", run)
    gc.unfreeze()  # what an earlier test in this process may have left (the command line's start-up)
    assert go("quad", client=client).counts.ok == 12
    assert seen[0] > 1000 and gc.get_freeze_count() == 0
    gc.freeze()
    mine = gc.get_freeze_count()
    try:
        assert go("quad", ["trial.x=5"], client=client).counts.ok == 4
        assert seen[1] >= mine // 2 and gc.get_freeze_count() >= mine // 2  # not undone (frozen objects may die)
    finally:
        gc.unfreeze()


def test_workers_are_asked_of_the_scheduler_not_read_from_the_clients_cache(client):
    """The client's own refresh every 2 s stores an identity without workers; landing between
    ``scheduler_info(n_workers=-1)``'s fetch and its return, it made every worker look gone
    (a simulation restarted from its checkpoint on its live workers). ``workers_now`` asks
    the scheduler itself, whatever the refresh does meanwhile."""
    import threading

    from daskbench.dask_compat import workers_now

    stop = threading.Event()

    def refresh():  # what the client's periodic callback does, as often as it can
        while not stop.is_set():
            client.sync(client._update_scheduler_info, n_workers=0)

    thread = threading.Thread(target=refresh, daemon=True)
    thread.start()
    try:
        seen = [len(workers_now(client)) for _ in range(200)]
    finally:
        stop.set()
        thread.join()
    assert seen == [2] * 200, [n for n in seen if n != 2]


def _subscribers(dask_scheduler=None):
    topics = dask_scheduler._broker._topics  # what the scheduler sends each topic's events to
    return {name: sorted(t.subscribers) for name, t in topics.items()}


def test_runs_on_a_users_client_leave_its_topics_as_they_were(quad, client):
    """Run twice on one client: no topic stays subscribed (the scheduler would write to the
    client as it closes), and a handler the user set on ``all`` is theirs again after each."""
    from daskbench.dask_compat import unsubscribe
    from daskbench.observe.live import TOPIC_LIVE

    def still_subscribed():
        # an unsubscription travels on the client's batched stream (sent within its 10 ms
        # interval), this question on a comm of its own: it may arrive first
        deadline = time.monotonic() + 10
        while True:
            subs = client.run_on_scheduler(_subscribers)
            if client.id not in subs.get("all", []) and client.id not in subs.get(TOPIC_LIVE, []):
                return None
            if time.monotonic() > deadline:
                return subs
            time.sleep(0.05)

    for extra in ([], ["trial.x=1,2,3,4"]):
        assert go("quad", extra, client=client).exit_code == 0
        assert still_subscribed() is None
    seen = []
    client.subscribe_topic("all", seen.append)
    try:
        assert go("quad", ["trial.x=1,2,3,4,5"], client=client).counts.ok == 4
        assert client.id in client.run_on_scheduler(_subscribers)["all"]
        assert client._event_handlers["all"] == seen.append
    finally:
        unsubscribe(client, "all")  # Client.unsubscribe_topic would leave seen.append for later tests


def test_failures_isolated_then_rerun(user_dir, client):
    write_experiment(
        user_dir / "conf",
        "f",
        f"""
        name: f
        trial: {{_target_: usertrials.fails_while_file, path: '{user_dir / "BUG"}'}}
        sweep: {{params: {{trial.x: 'range(0,9)'}}}}
    """,
    )
    (user_dir / "BUG").write_text("")
    res = go("f", client=client)
    assert res.exit_code == 1 and res.counts.failed == 3 and res.counts.ok == 6
    df = daskbench.load("results/f")
    failed = df[df.status == "failed"]
    assert sorted(failed["trial.x"]) == [0, 3, 6]
    assert failed.error.str.startswith("ValueError: x=").all() and failed.traceback.notna().all()
    # fix the trial, run again: only the failed ones run, and each still appears once
    (user_dir / "BUG").unlink()
    res = go("f", client=client)
    assert res.counts.ok == 3 and res.counts.skipped == 6 and res.exit_code == 0
    df = daskbench.load("results/f")
    assert len(df) == 9 and df.trial_id.is_unique and (df.status == "ok").all()


def test_max_failures_stops_early(user_dir, client):
    write_experiment(
        user_dir / "conf",
        "mf",
        """
        name: mf
        max_failures: 2
        runner: {chunk_size: 1, max_in_flight: 1}
        trial: {_target_: usertrials.sometimes_fails}
        sweep: {params: {trial.x: 'range(0,30)'}}
    """,
    )
    res = go("mf", client=client)
    assert res.outcome.stopped_early and res.exit_code == 1
    assert res.counts.failed == 2 and res.counts.done < 30


def test_bad_return_recorded_as_failed(user_dir, client):
    write_experiment(
        user_dir / "conf",
        "br",
        """
        name: br
        trial: {_target_: usertrials.bad_return}
        sweep: {params: {trial.x: '1,2'}}
    """,
    )
    go("br", client=client)
    df = daskbench.load("results/br")
    assert (df.status == "failed").all()
    assert df.error.str.contains("trial returned list").all()


def test_steps_dataset(user_dir, client):
    write_experiment(
        user_dir / "conf",
        "st",
        """
        name: st
        trial: {_target_: usertrials.with_steps, n: 4}
        sweep: {params: {trial.x: '1,2,3'}}
    """,
    )
    go("st", client=client)
    steps = daskbench.load("results/st", "steps")
    trials = daskbench.load("results/st")
    assert len(steps) == 12 and set(steps.trial_id) == set(trials.trial_id)
    merged = steps.merge(trials[["trial_id", "trial.x"]], on="trial_id")
    assert (merged.value == merged["trial.x"] * merged.tick).all()


def test_short_trials_are_chunked(user_dir, client):
    write_experiment(
        user_dir / "conf",
        "many",
        """
        name: many
        trial: {_target_: usertrials.no_seed}
        sweep: {params: {trial.x: 'range(0,3000)'}}
    """,
    )
    from distributed import get_task_stream

    with get_task_stream(client) as ts:
        res = go("many", client=client)
    assert res.counts.ok == 3000
    tasks = [t for t in ts.data if str(t["key"]).startswith("many-")]
    assert 0 < len(tasks) < 300  # far fewer tasks than trials
    df = daskbench.load("results/many")
    assert len(df) == 3000 and df.trial_id.is_unique and sorted(df.y) == list(range(3000))


def test_long_trials_not_batched_and_keys_named(user_dir, client):
    # chunks go out before any trial is measured; a chunk stops starting trials at its time
    # budget (2 x runner.target_chunk_seconds) and hands the rest back: a trial longer than
    # that runs alone in its task
    write_experiment(
        user_dir / "conf",
        "sl",
        """
        name: sl
        trial: {_target_: usertrials.slow, delay: 0.3}
        sweep: {params: {trial.x: 'range(0,6)'}}
        runner: {target_chunk_seconds: 0.1}
    """,
    )
    from distributed import get_task_stream

    with get_task_stream(client) as ts:
        res = go("sl", client=client)
    assert res.counts.ok == 6
    df = res.load()
    assert len(df) == 6 and df.trial_id.is_unique and sorted(df["trial.x"]) == list(range(6))
    keys = [str(t["key"]) for t in ts.data if str(t["key"]).startswith("sl-")]
    assert len(keys) == 6  # one trial each: the first chunks of two ran one and gave one back
    from dask.utils import key_split

    assert {key_split(k) for k in keys} == {"sl"}  # the dashboard groups by experiment


def test_missing_resources_stop_before_submitting(user_dir, client):
    write_experiment(
        user_dir / "conf",
        "gpu",
        """
        name: gpu
        resources: {GPU: 1}
        trial: {_target_: usertrials.no_seed}
        sweep: {params: {trial.x: '1,2'}}
    """,
    )
    with pytest.raises(ClusterError, match="no worker has the resources.*GPU=1.*no resources"):
        go("gpu", client=client)


def test_results_folder_checked_before_running(user_dir, client):
    write_experiment(user_dir / "conf", "w", "name: w\ntrial: {_target_: usertrials.no_seed}\n")
    (user_dir / "blocker").write_text("")
    with pytest.raises(ResultsError, match="cannot write results"):
        go("w", ["results.dir=blocker/w"], client=client)


def test_interpolated_trial_config(user_dir, client):
    write_experiment(
        user_dir / "conf",
        "ip",
        """
        name: ip
        vars: {scale: 10}
        trial: {_target_: usertrials.quad, x: 0.0, y: '${vars.scale}'}
        sweep: {params: {trial.x: '1,2', vars.scale: '10,20'}}
    """,
    )
    res = go("ip", client=client)
    assert res.counts.ok == 4
    df = daskbench.load("results/ip")
    assert sorted(zip(df["trial.x"], df["vars.scale"], df.f)) == [
        (1, 10, 10.0),
        (1, 20, 20.0),
        (2, 10, 11.0),
        (2, 20, 21.0),
    ]


def test_group_sweep_zip_and_design_run(user_dir, client):
    conf = user_dir / "conf"
    (conf / "model").mkdir()
    (conf / "model" / "flat.yaml").write_text("offset: 0.0\n")
    (conf / "model" / "raised.yaml").write_text("offset: 100.0\n")
    write_experiment(
        conf,
        "gz",
        """
        defaults:
          - /model: flat
        name: gz
        trial: {_target_: usertrials.quad, x: 0.0, y: '${model.offset}'}
    """,
    )
    res = go("gz", ["model=flat,raised", "trial.x=1,2"], client=client)
    assert res.counts.ok == 4
    df = daskbench.load("results/gz")
    assert sorted(zip(df.model, df["trial.x"], df.f)) == [
        ("flat", 1, 0.0),
        ("flat", 2, 1.0),
        ("raised", 1, 100.0),
        ("raised", 2, 101.0),
    ]

    write_experiment(
        conf,
        "zp",
        """
        name: zp
        trial: {_target_: usertrials.quad}
    """,
    )
    res = go("zp", ["trial.x=1,2,3", "trial.y=10,20,30", "sweep.zip=[[trial.x,trial.y]]"], client=client)
    df = daskbench.load("results/zp")
    assert sorted(zip(df["trial.x"], df["trial.y"])) == [(1, 10), (2, 20), (3, 30)]

    args = ["trial.x=interval(0,4)", "trial.y=0,1", "sweep.design=lhs", "sweep.samples=5", "results.dir=results/lhs"]
    res = go("zp", args, client=client)
    assert res.counts.ok == 10
    df = daskbench.load("results/lhs")
    assert df["trial.x"].between(0, 4).all() and df["trial.x"].nunique() == 5
    assert go("zp", args, client=client).counts.skipped == 10  # the same design again: same points
