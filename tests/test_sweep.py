"""Pure sweep expansion: no cluster, no files."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from daskbench.errors import SweepError
from daskbench.sweep.plan import (
    SEED_KEY,
    SweepPlan,
    axis_from_override,
    axis_from_param,
    parse_override,
    spawn_seed,
)


def plan_for(overrides, **kw):
    axes = [axis_from_override(parse_override(o)) for o in overrides]
    base = {"name": "t", "trial._target_": "m.f"}
    return SweepPlan(name="t", axes=axes, bases={(): base}, **kw)


GRAMMAR = [
    ["trial.a=1,2,3"],
    ["trial.a=0.5,0.9", "trial.b=range(0,4)"],
    ["trial.a=choice(x,'y z',1,2.5,true)", "trial.b=range(1,10,3)"],
    ["trial.a='1,2',\"3\"", "trial.b=1e3,1e-2", "trial.c=range(5)"],
    ["trial.a=[1,2],[3]", "trial.b={k:1},{k:2}"],
    ["trial.a=sort(3,1,2)", "trial.b=abc,def"],
]


@pytest.mark.parametrize("overrides", GRAMMAR)
def test_same_trials_as_hydra_basic_sweeper(tmp_path, overrides):
    """For the grammar both share, the trials equal what Hydra's BasicSweeper composes."""
    (tmp_path / "config.yaml").write_text("trial: {a: 0, b: 0, c: 0}\n")
    parsed = OverridesParser.create().parse_overrides(overrides)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)[0]
    keys = [o.key_or_group for o in parsed]
    hydra_trials = []
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        for job in batches:
            cfg = compose("config", overrides=job)
            vals = tuple(OmegaConf.to_container(OmegaConf.create({"v": OmegaConf.select(cfg, k)}))["v"] for k in keys)
            hydra_trials.append(vals)
    ours = [tuple(t.params[k] for k in keys) for t in plan_for(overrides)]

    def canon(rows):
        return sorted(repr([(type(v).__name__, v) for v in r]) for r in rows)

    assert canon(ours) == canon(hydra_trials)
    assert len(ours) == len(hydra_trials)


def test_product_size_and_lazy():
    p = plan_for(["trial.a=range(0,1000)", "trial.b=range(0,1000)"], replicates=3)
    assert len(p) == 3_000_000
    first = list(itertools.islice(iter(p), 5))  # iterating does not materialise the sweep
    assert [t.params["trial.a"] for t in first] == [0, 0, 0, 0, 0]


def test_zip_moves_axes_together():
    p = plan_for(["trial.n=10,20,40", "trial.h=100,200,400", "trial.k=a,b"], zip=[["trial.n", "trial.h"]])
    pairs = sorted({(t.params["trial.n"], t.params["trial.h"]) for t in p})
    assert pairs == [(10, 100), (20, 200), (40, 400)]
    assert len(p) == 6 == len(list(p))


def test_zip_lengths_must_match():
    with pytest.raises(SweepError, match="same number of values.*trial.n has 3.*trial.h has 2"):
        plan_for(["trial.n=1,2,3", "trial.h=1,2"], zip=[["trial.n", "trial.h"]])


def test_zip_unknown_key():
    with pytest.raises(SweepError, match="'trial.q', which is not a swept key"):
        plan_for(["trial.n=1,2", "trial.h=1,2"], zip=[["trial.n", "trial.q"]])


@pytest.mark.parametrize("design", ["random", "lhs", "sobol"])
def test_sampling_designs_reproducible_and_in_bounds(design):
    kw = dict(design=design, samples=16, root_seed=7)
    a = [t.params for t in plan_for(["trial.x=interval(0,1)", "trial.y=interval(10,20)"], **kw)]
    b = [t.params for t in plan_for(["trial.x=interval(0,1)", "trial.y=interval(10,20)"], **kw)]
    c = [t.params for t in plan_for(["trial.x=interval(0,1)", "trial.y=interval(10,20)"], **dict(kw, root_seed=8))]
    assert a == b and a != c
    assert len(a) == 16
    assert all(0 <= p["trial.x"] <= 1 and 10 <= p["trial.y"] <= 20 for p in a)
    if design == "lhs":  # one sample in each of the 16 strata of every axis
        assert sorted(int(p["trial.x"] * 16) for p in a) == list(range(16))


def test_sampling_crosses_discrete_axes():
    p = plan_for(["trial.x=interval(0,1)", "trial.k=a,b,c"], design="lhs", samples=4)
    assert len(p) == 12 == len({t.trial_id for t in p})


def test_interval_in_grid_is_an_error():
    with pytest.raises(SweepError, match="'trial.x' is an interval.*sweep.design=random, lhs or sobol"):
        plan_for(["trial.x=interval(0,1)"])


def test_design_needs_samples_and_interval():
    with pytest.raises(SweepError, match="sweep.samples=N"):
        plan_for(["trial.x=interval(0,1)"], design="sobol")
    with pytest.raises(SweepError, match="none is given"):
        plan_for(["trial.x=1,2"], design="lhs", samples=4)
    with pytest.raises(SweepError, match="not a design"):
        plan_for(["trial.x=1,2"], design="latin")


def test_replicates_get_distinct_seeds_from_root_seed():
    p = plan_for(["trial.a=1,2"], replicates=5, root_seed=42, inject_seed=True)
    trials = list(p)
    assert len(trials) == 10
    seeds_a1 = [t.seed for t in trials if t.params["trial.a"] == 1]
    assert len(set(seeds_a1)) == 5
    assert seeds_a1 == [spawn_seed(42, r) for r in range(5)]
    assert all(t.params[SEED_KEY] == t.seed for t in trials)
    import numpy as np

    assert spawn_seed(42, 3) == int(np.random.SeedSequence(42).spawn(5)[3].generate_state(1)[0])


def test_replicates_and_swept_seed_conflict():
    with pytest.raises(SweepError, match="replicates and a swept trial.seed"):
        plan_for(["trial.seed=range(0,3)"], replicates=2)


def test_trial_ids_unique_and_content_based():
    p = plan_for(["trial.a=1,2,3", "trial.b=x,y"], replicates=2, inject_seed=True)
    ids = [t.trial_id for t in p]
    assert len(set(ids)) == 12
    # extending an axis keeps the ids of the old points
    q = plan_for(["trial.a=1,2,3,4", "trial.b=x,y"], replicates=2, inject_seed=True)
    assert set(ids) < {t.trial_id for t in q}
    # the int 1 and the float 1.0 are different trials
    assert plan_for(["trial.a=1,2"]).trial_id((), {"trial.a": 1}) != plan_for(["trial.a=1,2"]).trial_id(
        (), {"trial.a": 1.0}
    )


def test_trial_id_stable_across_processes():
    code = (
        "from daskbench.sweep.plan import *; "
        "p=SweepPlan('t',[axis_from_override(parse_override('trial.a=1,2'))],{():{'name':'t','trial._target_':'m.f'}});"
        "print([t.trial_id for t in p])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": str(s), "PATH": ""}
        ).stdout
        for s in (1, 2)
    }
    assert len(outs) == 1
    here = str([t.trial_id for t in plan_for(["trial.a=1,2"])])
    assert outs.pop().strip() == here


def test_empty_and_malformed_axes():
    with pytest.raises(SweepError, match="cannot parse 'trial.a=range\\(0,'"):
        parse_override("trial.a=range(0,")
    with pytest.raises(SweepError, match="axis 'trial.a' is empty"):
        axis_from_override(parse_override("trial.a=range(0,0)"))
    with pytest.raises(SweepError, match="sweep.params.trial.a is empty"):
        axis_from_param("trial.a", "")
    with pytest.raises(SweepError, match="empty list"):
        axis_from_param("trial.a", [])


def test_param_forms():
    assert axis_from_param("trial.a", "1,2").values == (1, 2)
    assert axis_from_param("trial.a", [1, "x"]).values == (1, "x")
    assert axis_from_param("trial.a", 3).values == (3,)
    assert axis_from_param("trial.a", "interval(0,2)").interval == (0.0, 2.0)
