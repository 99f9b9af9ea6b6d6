"""Simulations on Dask actors: the same results as in one process, shards placed
by resources, trials of a sweep with steps/agents tables, and a worker holding a
shard SIGKILLed mid-simulation (more shards than agents: tests/test_sim_parallelism.py)."""

from __future__ import annotations

import os
import signal
import threading
import time

import cloudpickle
import pandas as pd
import pytest

from daskbench import sim
from daskbench.experiments.boltzmann import Boltzmann
from tests import test_sim_core
from tests.conftest import run_cli, write_experiment
from tests.procs import DaskProcesses

# the test models live in a test module the workers cannot import: ship them by value
cloudpickle.register_pickle_by_value(test_sim_core)

VOLATILE = ("wall_ms", "shard_ms", "messages_local", "messages_remote")


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


@pytest.mark.parametrize(
    "model", [lambda: Boltzmann(n_agents=400), lambda: test_sim_core.Mixed(200, 30)], ids=["boltzmann", "mixed"]
)
def test_actors_give_the_in_process_result_on_1_2_4_shards(client, model):
    ref = sim.run(model(), sim.Settings(ticks=25, shards=1, agent_report_every=8), seed=9)
    for shards in (1, 2, 4):
        out = sim.run(model(), sim.Settings(ticks=25, shards=shards, agent_report_every=8), seed=9, client=client)
        assert _strip(out.steps) == _strip(ref.steps), shards
        assert out.metrics["shards"] == shards and out.metrics["shard_workers"] == min(shards, 2)
        ta, tb = sim.tables(ref)["agents"].to_pandas(), sim.tables(out)["agents"].to_pandas()
        key = ["tick", "agent_id"]
        assert ta.sort_values(key).reset_index(drop=True).equals(tb.sort_values(key).reset_index(drop=True))
    # shard actors are released at the end
    assert sum(client.run(lambda dask_worker: len(dask_worker.state.actors)).values()) == 0


def test_a_simulation_sweep_writes_trials_steps_and_agents(user_dir):
    write_experiment(
        user_dir / "conf",
        "wealth",
        """
        name: wealth
        seed: 5
        trial:
          _target_: daskbench.sim.trial
          model: daskbench.experiments.boltzmann.Boltzmann
          params: {n_agents: 100}
          ticks: 12
          agent_report_every: 5
        sweep:
          params:
            trial.shards: 2,1
        cluster: {dashboard_address: null}
        results: {report: false}
    """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=wealth"], user_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    trials = pd.read_parquet(user_dir / "results/wealth/trials").set_index("trial.shards")
    ok = trials.loc[[1, 2]]
    assert (ok["status"] == "ok").all() and ok["ticks"].tolist() == [12, 12]
    assert ok["gini"].nunique() == 1  # same seed, same result, whatever the sharding
    assert ok.loc[2, "cross_shard_fraction"] > 0.3 and ok.loc[1, "cross_shard_fraction"] == 0
    steps = pd.read_parquet(user_dir / "results/wealth/steps")
    assert set(steps["trial_id"]) == set(ok["trial_id"]) and len(steps) == 24
    assert {"tick", "gini", "messages_local", "messages_remote"} <= set(steps.columns)
    agents = pd.read_parquet(user_dir / "results/wealth/agents")
    assert sorted(agents["tick"].unique().tolist()) == [0, 5, 10, 11]
    assert len(agents) == 2 * 4 * 100


@pytest.fixture
def hosts(tmp_path_factory):
    p = DaskProcesses(tmp_path_factory.mktemp("simhosts"))
    p.start_scheduler()
    yield p
    p.stop()


def test_shards_go_only_to_workers_with_the_trials_resources(hosts, user_dir):
    hosts.start_worker("gpu", resources="GPU=1")
    hosts.start_worker("plain")
    names = hosts.wait_for_workers(2)
    write_experiment(
        user_dir / "conf",
        "placed",
        """
        name: placed
        trial:
          _target_: daskbench.sim.trial
          model: daskbench.experiments.boltzmann.Boltzmann
          params: {n_agents: 50}
          ticks: 5
        resources: {GPU: 1}
        results: {report: false}
    """,
    )
    r = run_cli(
        ["--config-dir", "conf", "+experiment=placed", "cluster=address", f"cluster.address={hosts.address}"], user_dir
    )
    assert r.returncode == 0, r.stdout + r.stderr
    row = pd.read_parquet(user_dir / "results/placed/trials").iloc[0]
    assert row["worker"] == names["gpu"]
    assert row["shards"] == 1 and row["shard_workers"] == 1  # one per worker with GPU


@pytest.mark.parametrize("checkpoint_every,transport", [(50, "socket"), (0, "socket"), (50, "comm")])
def test_killing_a_shards_worker_restarts_it_with_the_undisturbed_result(hosts, checkpoint_every, transport):
    from distributed import Client

    procs = {name: hosts.start_worker(name) for name in ("a", "b", "c")}
    names = hosts.wait_for_workers(3)
    # long enough (several seconds on 2 cores) that the kill lands mid-run: 1,500 ticks of
    # 600 agents were sometimes over within the second the test waits before the kill
    settings = dict(ticks=8000, shards=2, checkpoint_every=checkpoint_every, agent_report_every=500)
    ref = sim.run(Boltzmann(n_agents=600), sim.Settings(**settings), seed=11)
    settings["transport"] = transport
    box = {}
    with Client(hosts.address) as client:

        def go():
            try:
                box["out"] = sim.run(Boltzmann(n_agents=600), sim.Settings(**settings), seed=11, client=client)
            except BaseException as exc:  # handed to the test thread
                box["error"] = exc

        t = threading.Thread(target=go)
        t.start()
        deadline = time.time() + 60
        holding = []
        while time.time() < deadline and not holding:
            time.sleep(0.3)
            actors = client.run(lambda dask_worker: len(dask_worker.state.actors))
            holding = [n for n, a in names.items() if actors.get(a)]
        assert holding, "no shard was placed"
        time.sleep(1.0)  # mid-simulation: past the first checkpoints
        os.killpg(procs[holding[0]].pid, signal.SIGKILL)
        t.join(240)
        assert not t.is_alive(), "the simulation hung after its worker died"
    assert "error" not in box, box.get("error")
    out = box["out"]
    assert out.metrics["restarts"] == 1, "the simulation ended before its worker was killed"
    assert out.metrics["shard_transport"] == transport
    assert _strip(out.steps) == _strip(ref.steps)
    assert [r["tick"] for r in out.steps] == list(range(8000))
    assert len(out.agents) == len(ref.agents)


def test_shards_in_step_among_themselves_give_the_same_result_with_lookahead(client):
    """The barrier between shards, with lookahead 1 (fast-forward decided by the shards) and
    more (shards exchange every L ticks and step idle ticks): the in-process result."""
    settings = dict(ticks=60, agent_report_every=9, checkpoint_every=20)
    ref = sim.run(test_sim_core.Delayed(), sim.Settings(shards=1, **settings), seed=4)
    assert ref.metrics["ticks"] < 60  # ticks were skipped
    for shards, lookahead in ((2, 1), (2, 3), (4, 2), (4, 3)):
        out = sim.run(
            test_sim_core.Delayed(), sim.Settings(shards=shards, lookahead=lookahead, **settings), seed=4, client=client
        )
        assert _strip(out.steps) == _strip(ref.steps), (shards, lookahead)
        assert test_sim_core._agents(out).equals(test_sim_core._agents(ref)), (shards, lookahead)
        assert out.metrics["messages_remote"] > 0


def test_a_message_due_sooner_than_the_lookahead_fails_the_simulation(client):
    with pytest.raises(sim.SimulationError, match="sent by agent 0 at tick 6 is due 1 tick.*clock.lookahead=3"):
        sim.run(test_sim_core.Delayed(soon=6), sim.Settings(ticks=30, shards=2, lookahead=3), seed=1, client=client)
    # the other shard was waiting for the failed one's envelope: freed, and the actors released
    assert sum(client.run(lambda dask_worker: len(dask_worker.state.actors)).values()) == 0
