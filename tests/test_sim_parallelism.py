"""``trial.shards: auto``: the rule (pure), small models in their trial's own task and large
ones sharded on a real cluster, many concurrent simulation trials (some sharded) that all
finish, and more shards than agents refused before a cluster starts."""

from __future__ import annotations

import sys
from typing import Mapping

import cloudpickle
import pandas as pd
import pytest

from daskbench import sim
from daskbench.experiments.boltzmann import Boltzmann
from daskbench.experiments.epidemic import Epidemic
from daskbench.experiments.market import Market
from daskbench.sim import parallelism as par
from daskbench.sim.shard import Layout
from tests.conftest import run_cli, write_experiment

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test models go to the workers by value


class Declared(Boltzmann):
    """Boltzmann agents, with the model's own estimate of a tick standing in for a large model."""

    def __init__(self, n_agents: int = 100, tick_s: float = 1.0):
        super().__init__(n_agents)
        self.tick_s = tick_s

    def tick_cost(self):
        return self.tick_s


def _shards_for(model, workers: int) -> int:
    return par.auto_shards(par.estimate_tick_s(model, Layout.of(model)), Layout.of(model).n_agents, workers)


def test_auto_runs_the_shipped_experiments_locally_and_shards_a_large_model():
    for small in (Boltzmann(10_000), Epidemic(n_people=5_000), Market(n_generators=60)):
        assert _shards_for(small, 2) == 1, type(small).__name__
        assert _shards_for(small, 64) == 1, type(small).__name__
    big = Boltzmann(10_000_000)  # ~0.5 s a tick on one core by the default estimate
    assert _shards_for(big, 2) == 2
    assert _shards_for(big, 8) == 8
    assert _shards_for(big, 1) == 1  # one worker: nothing to shard over
    assert _shards_for(Boltzmann(1_000_000), 16) == 2  # each shard keeps >= SHARD_TICK_S of work
    assert _shards_for(Market(n_generators=20_000), 4) == 4  # plain-object agents cost more each


def test_the_rule_itself():
    t = par.SHARD_TICK_S
    assert par.auto_shards(0.0, 10**6, 8) == 1
    assert par.auto_shards(1.99 * t, 10**6, 8) == 1
    assert par.auto_shards(2 * t, 10**6, 8) == 2
    assert par.auto_shards(100 * t, 10**6, 8) == 8
    assert par.auto_shards(100 * t, 3, 8) == 3  # never more shards than agents
    assert not par.worth_asking(1.99 * t) and par.worth_asking(2 * t)


def test_the_models_own_estimate_decides():
    assert _shards_for(Declared(100, tick_s=0.0), 4) == 1
    assert _shards_for(Declared(100, tick_s=10.0), 4) == 4
    with pytest.raises(sim.SimulationError, match=r"Declared.tick_cost\(\) returned -1"):
        _shards_for(Declared(100, tick_s=-1), 4)


def _run(model, shards, seed=3, ticks=20) -> Mapping:
    out = sim.run(model, sim.Settings(ticks=ticks, shards=shards), seed=seed)
    return {"gini": out.metrics["gini"], "shards": out.metrics["shards"], "workers": out.metrics["shard_workers"]}


def test_auto_on_a_cluster_local_for_small_sharded_for_large(client):
    small = client.submit(_run, Boltzmann(500), "auto", pure=False).result(timeout=120)
    large = client.submit(_run, Declared(500, tick_s=10.0), "auto", pure=False).result(timeout=120)
    ref = _run(Boltzmann(500), 1)
    assert small == {"gini": ref["gini"], "shards": 1, "workers": 1}
    assert large == {"gini": ref["gini"], "shards": 2, "workers": 2}  # same seed, same result
    # outside Dask, auto is one shard in this process whatever the estimate
    assert _run(Declared(500, tick_s=10.0), "auto") == ref


def test_many_concurrent_simulation_trials_some_sharded_all_finish(client):
    jobs = []
    for seed in range(6):
        jobs.append((seed, "auto", Boltzmann(300)))  # local, in the trial's own task
    for seed in range(6, 9):
        jobs.append((seed, 2, Boltzmann(300)))  # two shard actors each
    for seed in range(9, 11):
        jobs.append((seed, "auto", Declared(300, tick_s=10.0)))  # auto: sharded
    futures = [client.submit(_run, model, shards, seed, 40, pure=False) for seed, shards, model in jobs]
    results = client.gather(futures)  # a deadlock between sharded trials would hang here
    for (seed, shards, _), got in zip(jobs, results):
        assert got["gini"] == _run(Boltzmann(300), 1, seed, 40)["gini"], seed
        assert got["shards"] == (1 if shards == "auto" and got["workers"] == 1 else 2), (seed, got)
    assert [r["shards"] for r in results[9:]] == [2, 2]


def test_more_shards_than_agents_is_refused_before_a_cluster_starts(user_dir):
    write_experiment(
        user_dir / "conf",
        "tiny",
        """
        name: tiny
        trial:
          _target_: daskbench.sim.trial
          model: daskbench.experiments.boltzmann.Boltzmann
          params: {n_agents: 20}
          ticks: 5
        sweep:
          params:
            trial.shards: 1,40
        """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=tiny"], user_dir, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stdout + r.stderr
    assert "trial.shards=40 is more than the model's 20 agents" in err and "at most 20 shards" in err, err
    assert "swept key trial.shards" in err
    assert "Traceback" not in err and "Dask dashboard" not in err
    assert not (user_dir / "results").exists()


@pytest.mark.parametrize(
    "shards, swept",
    [
        ("shards: 30", "trial.params.n_agents: 100,20"),  # a later params value, fixed shards
        ("shards: 1", "trial.params.n_agents: 100,20\n            trial.shards: 1,30"),  # crossed
    ],
)
def test_a_swept_params_value_with_too_few_agents_is_refused_before_a_cluster_starts(user_dir, shards, swept):
    """Not only the first value of a swept ``params`` key: each one must hold the largest
    shard count a crossed sweep gives it."""
    write_experiment(
        user_dir / "conf",
        "tiny",
        f"""
        name: tiny
        trial:
          _target_: daskbench.sim.trial
          model: daskbench.experiments.boltzmann.Boltzmann
          params: {{n_agents: 100}}
          ticks: 5
          {shards}
        sweep:
          params:
            {swept}
        """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=tiny"], user_dir, timeout=120)
    err = r.stdout + r.stderr
    assert r.returncode == 2, err
    assert "trial.shards=30 is more than the model's 20 agents" in err, err
    assert "Traceback" not in err and not (user_dir / "results").exists()


def test_a_shards_count_zipped_with_params_is_checked_pair_by_pair(user_dir):
    """``sweep.zip`` pairs 30 shards with 100 agents and 1 with 20: nothing is refused."""
    write_experiment(
        user_dir / "conf",
        "paired",
        """
        name: paired
        trial:
          _target_: daskbench.sim.trial
          model: daskbench.experiments.boltzmann.Boltzmann
          params: {n_agents: 100}
          ticks: 2
        sweep:
          zip: [[trial.params.n_agents, trial.shards]]
          params:
            trial.params.n_agents: 100,20
            trial.shards: 30,1
        """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=paired", "results.report=false"], user_dir, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_shards_axis_mixing_numbers_and_auto_runs_and_keeps_each_choice(user_dir):
    """``trial.shards=1,2,auto`` as a user types it: every trial runs, the swept column is
    text (one type per column) and ``shards`` is the number each trial used."""
    write_experiment(
        user_dir / "conf",
        "mixed",
        """
        name: mixed
        trial:
          _target_: daskbench.sim.trial
          model: daskbench.experiments.boltzmann.Boltzmann
          params: {n_agents: 100}
          ticks: 5
        sweep:
          params:
            trial.shards: 1,2,auto
        results: {report: false}
        """,
    )
    r = run_cli(["--config-dir", "conf", "+experiment=mixed", "runner.progress=plain"], user_dir, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    df = pd.read_parquet(user_dir / "results" / "mixed" / "trials").set_index("trial.shards")
    assert sorted(df.index) == ["1", "2", "auto"] and (df.status == "ok").all()
    assert df.loc["1", "shards"] == 1 and df.loc["2", "shards"] == 2 and df.loc["auto", "shards"] == 1
    assert df.gini.nunique() == 1  # the same seed gives the same result on any number of shards


class CountsGraph(Boltzmann):
    """Boltzmann with a (path) graph that counts how often it is built."""

    built = 0

    def graph(self):
        import networkx as nx

        type(self).built += 1
        return nx.path_graph(self.n_agents)


def test_one_shard_needs_no_graph_for_a_community_allocation():
    one = sim.run(CountsGraph(60), sim.Settings(ticks=6, allocation="community"), seed=1)
    assert CountsGraph.built == 0 and one.metrics["graph_cut_fraction"] == 0.0 and one.metrics["shards"] == 1
    two = sim.run(CountsGraph(60), sim.Settings(ticks=6, shards=2, allocation="community"), seed=1)
    assert CountsGraph.built >= 1 and 0 < two.metrics["graph_cut_fraction"] < 0.5
    assert two.metrics["gini"] == one.metrics["gini"]
