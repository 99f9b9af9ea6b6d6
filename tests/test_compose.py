"""Composition and validation of experiment configs (Hydra, no cluster)."""

from __future__ import annotations

import pytest

import daskbench
from daskbench.errors import ConfigError, ExperimentNotFound, SweepError, TrialImportError
from tests.conftest import write_experiment


def test_shipped_sweep_experiment_plan(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    rp = daskbench.plan("sweep")
    assert rp.name == "sweep"
    assert [a.key for a in rp.plan.axes] == ["trial.rho", "trial.servers", "trial.customers"]
    assert len(rp.plan) == 3 * 3 * 4 * 4
    assert str(rp.results_dir) == "results/sweep"


def test_command_line_axis_wins_over_config(user_dir):
    write_experiment(user_dir / "conf", "q", """
        name: q
        trial: {_target_: usertrials.quad, x: 0.0, y: 0.0}
        sweep: {params: {trial.x: '1,2,3', trial.y: '0,1'}}
    """)
    rp = daskbench.plan("q", ["trial.x=5,6"], config_dir="conf")
    xs = sorted({t.params["trial.x"] for t in rp.plan})
    assert xs == [5, 6] and len(rp.plan) == 4
    rp = daskbench.plan("q", ["trial.x=7"], config_dir="conf")  # a plain value removes the axis
    assert [a.key for a in rp.plan.axes] == ["trial.y"]


def test_group_sweep(user_dir):
    conf = user_dir / "conf"
    (conf / "model").mkdir()
    (conf / "model" / "small.yaml").write_text("size: 1\n")
    (conf / "model" / "large.yaml").write_text("size: 100\n")
    write_experiment(conf, "g", """
        defaults:
          - /model: small
        name: g
        trial: {_target_: usertrials.quad, x: '${model.size}'}
        sweep: {params: {trial.y: '0,1'}}
    """)
    rp = daskbench.plan("g", ["model=small,large"], config_dir="conf")
    trials = list(rp.plan)
    assert len(trials) == 4
    assert {dict(t.groups)["model"] for t in trials} == {"small", "large"}
    assert {g: b["model"]["size"] for g, b in rp.trial_bases.items()} == {
        (("model", "large"),): 100, (("model", "small"),): 1}


def test_unknown_experiment_lists_available(user_dir):
    write_experiment(user_dir / "conf", "mine", "name: mine\ntrial: {_target_: usertrials.quad}\n")
    with pytest.raises(ExperimentNotFound) as e:
        daskbench.plan("swep", config_dir="conf")
    msg = str(e.value)
    assert "unknown experiment 'swep'" in msg and "did you mean 'sweep'" in msg
    assert "mine" in msg and "sweep" in msg


def test_misspelled_keys(user_dir):
    write_experiment(user_dir / "conf", "m", """
        name: m
        trial: {_target_: usertrials.quad}
        sweep: {parms: {trial.x: '1,2'}}
    """)
    with pytest.raises(ConfigError, match="unknown key sweep.parms.*did you mean 'params'"):
        daskbench.plan("m", config_dir="conf")
    write_experiment(user_dir / "conf", "m2", "name: m2\nretires: 2\ntrial: {_target_: usertrials.quad}\n")
    with pytest.raises(ConfigError, match="unknown top-level key 'retires'.*did you mean 'retries'"):
        daskbench.plan("m2", config_dir="conf")
    write_experiment(user_dir / "conf", "m3", "name: m3\ntrial: {_target_: usertrials.quad, xx: 1}\n")
    with pytest.raises(ConfigError, match="trial.xx: usertrials.quad has no argument 'xx'.*arguments: x, y, seed"):
        daskbench.plan("m3", config_dir="conf")
    with pytest.raises(ConfigError, match="swept key 'trial.z'"):
        daskbench.plan("m3", ["trial.xx=1", "trial.z=1,2"], config_dir="conf")


def test_bad_values(user_dir):
    write_experiment(user_dir / "conf", "b", "name: b\ntrial: {_target_: usertrials.quad}\n")
    with pytest.raises(ConfigError, match="runner"):
        daskbench.plan("b", ["runner.max_chunk_size=lots"], config_dir="conf")
    with pytest.raises(SweepError, match="cannot parse"):
        daskbench.plan("b", ["trial.x=range(1,"], config_dir="conf")
    with pytest.raises(SweepError, match="'trial.x' is an interval"):
        daskbench.plan("b", ["trial.x=interval(0,1)"], config_dir="conf")
    with pytest.raises(ConfigError, match="cluster=address needs the scheduler's address"):
        daskbench.plan("b", ["cluster=address"], config_dir="conf")


def test_target_that_cannot_be_imported(user_dir):
    write_experiment(user_dir / "conf", "i", "name: i\ntrial: {_target_: nosuchmod.run}\n")
    with pytest.raises(TrialImportError, match="cannot import module 'nosuchmod'.*working directory"):
        daskbench.plan("i", config_dir="conf")
    write_experiment(user_dir / "conf", "i2", "name: i2\ntrial: {_target_: usertrials.quadd}\n")
    with pytest.raises(TrialImportError, match="has no 'quadd'.*did you mean 'quad'"):
        daskbench.plan("i2", config_dir="conf")
    write_experiment(user_dir / "conf", "i3", "name: i3\ntrial: {x: 1}\n")
    with pytest.raises(ConfigError, match="no trial._target_"):
        daskbench.plan("i3", config_dir="conf")


def test_replicates_need_a_seed_argument(user_dir):
    write_experiment(user_dir / "conf", "r", """
        name: r
        trial: {_target_: usertrials.no_seed}
        sweep: {params: {trial.x: '1,2'}, replicates: 3}
    """)
    with pytest.raises(ConfigError, match="needs usertrials.no_seed to take a `seed` argument"):
        daskbench.plan("r", config_dir="conf")
    rp = daskbench.plan("r", ["sweep.replicates=1"], config_dir="conf")
    assert not rp.plan.inject_seed and len(rp.plan) == 2


def test_results_dir_default_and_override(user_dir):
    write_experiment(user_dir / "conf", "d", "name: d\ntrial: {_target_: usertrials.quad}\n")
    assert str(daskbench.plan("d", config_dir="conf").results_dir) == "results/d"
    assert str(daskbench.plan("d", ["results.dir=/tmp/x/y"], config_dir="conf").results_dir) == "/tmp/x/y"


def test_flow_style_comma_gets_a_hint(user_dir):
    write_experiment(user_dir / "conf", "fs", """
        name: fs
        trial: {_target_: usertrials.quad}
        sweep: {params: {trial.x: 1,2}}
    """)
    with pytest.raises(ConfigError, match="flow style.*quote"):
        daskbench.plan("fs", config_dir="conf")


@pytest.mark.parametrize("override, message", [
    ("runner.chunk_size=0", "runner.chunk_size=0: use auto or a whole number"),
    ("retries=-1", "retries=-1: must be >= 0"),
    ("timeout_s=0", "timeout_s=0.0: must be > 0"),
    ("runner.progress=fancy", "runner.progress='fancy'"),
])
def test_range_checks(user_dir, override, message):
    write_experiment(user_dir / "conf", "v", "name: v\ntrial: {_target_: usertrials.quad}\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        daskbench.plan("v", [override], config_dir="conf")
