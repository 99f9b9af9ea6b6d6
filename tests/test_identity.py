"""Trial identity: the ids of known configs, pinned.

A trial id is what resume matches on: if the ids a config gives ever change, every
user's next run silently re-runs everything it had already done. These literals were
computed by the code as it stood when identity got its own module; a test here that
fails means ids changed. Change a literal only on purpose, and say so in the release
notes (old results will no longer be skipped).
"""

from __future__ import annotations

import hashlib

import pytest

import daskbench
from daskbench.sweep.identity import DESIGN_STREAM, RUN_KEYS, content, spawn_seed, trial_id
from daskbench.sweep.plan import SweepPlan, axis_from_override, parse_override
from tests.conftest import write_experiment

IDENT_PY = """
def grid(x=0, y=0.0, kind="a", seed=0):
    return {"v": x * y}


def group(size=0, y=0, seed=0):
    return {"v": size + y}


def sampled(x=0.0, k="a", seed=0):
    return {"v": x}
"""


def digest(ids):
    """One short hash of a whole list of ids, so a long sweep is pinned in one literal."""
    return hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]


@pytest.fixture
def ident_dir(user_dir):
    (user_dir / "identtrials.py").write_text(IDENT_PY)
    return user_dir


def plan_ids(name, overrides=()):
    return [t.trial_id for t in daskbench.plan(name, list(overrides), config_dir="conf").plan]


# -- pure: SweepPlan built by hand --------------------------------------------------
def test_pure_plan_ids():
    axes = [axis_from_override(parse_override(o)) for o in ("trial.a=1,2", "trial.b=x,'y z'", "trial.c=0.5,1e3")]
    p = SweepPlan(name="t", axes=axes, bases={(): {"name": "t", "trial._target_": "m.f"}})
    assert [t.trial_id for t in p] == PURE_IDS


def test_spawned_seeds_pinned():
    assert [spawn_seed(0, r) for r in range(3)] == SEEDS_0
    assert [spawn_seed(2026, r) for r in range(3)] == SEEDS_2026
    assert DESIGN_STREAM == (2**32 - 1,)


def test_trial_id_of_content():
    """The hash itself, on a hand-written content: name, groups, sorted items."""
    g = (("model", "small"),)
    assert trial_id("t", g, [("name", "t"), ("trial._target_", "m.f")], {"trial.x": 1}) == CONTENT_ID
    p = SweepPlan(name="t", axes=[], bases={g: {"name": "t", "trial._target_": "m.f"}})
    assert p.trial_id(g, {"trial.x": 1}) == CONTENT_ID


def test_content_leaves_out_run_keys():
    tree = {
        "name": "t",
        "seed": 3,
        "trial": {"_target_": "m.f", "x": 1},
        "vars": {},
        "sweep": {"replicates": 2},
        "results": {"dir": "r"},
        "runner": {"chunk_size": 5},
        "cluster": {"kind": "local"},
        "resources": {"GPU": 1},
        "priority": 1,
        "retries": 2,
        "timeout_s": 9.0,
        "max_failures": 3,
        "hydra": {},
        "model": {"size": 1},
    }
    assert content(tree) == {"name": "t", "seed": 3, "trial._target_": "m.f", "trial.x": 1, "vars": {}, "model.size": 1}
    assert RUN_KEYS == {
        "sweep",
        "results",
        "runner",
        "cluster",
        "resources",
        "priority",
        "retries",
        "timeout_s",
        "max_failures",
        "hydra",
    }


# -- through composition ------------------------------------------------------------
def test_grid_ids(ident_dir):
    write_experiment(
        ident_dir / "conf",
        "grid",
        """
        name: grid
        trial: {_target_: identtrials.grid, x: 0, y: 0.0, kind: a}
        sweep:
          params:
            trial.x: 1,2,3
            trial.y: 0.5,1.5
            trial.kind: a,'b c'
    """,
    )
    ids = plan_ids("grid")
    assert ids[:3] == GRID_FIRST and digest(ids) == GRID_DIGEST and len(ids) == 12
    # settings that steer the run are not content: same ids
    assert plan_ids("grid", ["runner.chunk_size=5", "retries=2", "timeout_s=30", "priority=3"]) == ids
    # extending an axis keeps the old ids
    assert set(ids) < set(plan_ids("grid", ["trial.x=1,2,3,4"]))


def test_replicate_ids(ident_dir):
    write_experiment(
        ident_dir / "conf",
        "reps",
        """
        name: reps
        seed: 7
        trial: {_target_: identtrials.grid, x: 0}
        sweep:
          params: {trial.x: '1,2'}
          replicates: 3
    """,
    )
    trials = list(daskbench.plan("reps", config_dir="conf").plan)
    assert [t.trial_id for t in trials] == REPS_IDS
    assert [t.seed for t in trials] == [spawn_seed(7, r) for r in range(3)] * 2


def test_group_ids(ident_dir):
    conf = ident_dir / "conf"
    (conf / "model").mkdir()
    (conf / "model" / "small.yaml").write_text("size: 1\n")
    (conf / "model" / "large.yaml").write_text("size: 100\n")
    write_experiment(
        conf,
        "grp",
        """
        defaults:
          - /model: small
        name: grp
        trial: {_target_: identtrials.group, size: '${model.size}'}
        sweep: {params: {trial.y: '0,1'}}
    """,
    )
    assert plan_ids("grp", ["model=small,large"]) == GROUP_IDS


@pytest.mark.parametrize("design", ["random", "lhs", "sobol"])
def test_sampled_ids(ident_dir, design):
    write_experiment(
        ident_dir / "conf",
        "smp",
        f"""
        name: smp
        seed: 11
        trial: {{_target_: identtrials.sampled, x: 0.0}}
        sweep:
          params: {{trial.x: 'interval(0,1)', trial.k: 'a,b'}}
          design: {design}
          samples: 4
    """,
    )
    assert plan_ids("smp") == SAMPLED_IDS[design]


def test_shipped_sweep_ids(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    ids = [t.trial_id for t in daskbench.plan("sweep").plan]
    assert len(ids) == 144 == len(set(ids))
    assert ids[:4] == SWEEP_FIRST and ids[-1] == SWEEP_LAST and digest(ids) == SWEEP_DIGEST


# -- the pinned literals --------------------------------------------------------------
PURE_IDS = [
    "b942e28ee45834d4",
    "38d1b32bb9fe7867",
    "26eda00a6a9f0382",
    "8765cac26f8637b1",
    "cc0e6806b14b11a1",
    "ec236d91ef4decd6",
    "807399d0c48ef179",
    "601caa8f90365649",
]
SEEDS_0 = [3757552657, 673228719, 3241444873]
SEEDS_2026 = [479243620, 454024514, 1818751028]
CONTENT_ID = "55f0232b84376571"
GRID_FIRST = ["9cfd67c086ae8676", "49842d0648160aca", "7188a075d7a6589b"]
GRID_DIGEST = "bf099ce623624507"
REPS_IDS = [
    "f4e3d800073521b6",
    "af8b8b9817112889",
    "9d28c3761767e34a",
    "3cd57830bc5d7856",
    "478fcb1f762c9dea",
    "918d9d18f3f418cd",
]
GROUP_IDS = ["d0d3038b2b6658cd", "0344371404b22f43", "14d3d2902fafa24c", "e70fa646b64c06ba"]
SAMPLED_IDS = {
    "lhs": [
        "b7e9f52230c024b3",
        "aca4d65cb5d5c150",
        "2e32fc095aa3750d",
        "ef8d363219f8122d",
        "945b1848470f58c7",
        "ba2fc8ce20c56147",
        "77f18aa543779558",
        "ea9b202e17067299",
    ],
    "random": [
        "6de1ece30cc04b04",
        "1134ac9fbe8faa2b",
        "b5acca8c9d6915f4",
        "a98a006ee6d5db2d",
        "23476537c2044200",
        "84d71e18e9676d6f",
        "ac7f4ad66b186028",
        "6eef5bec11396930",
    ],
    "sobol": [
        "e5b24d0bc3bcbf97",
        "4ed6ecbc1a48de86",
        "4002964539eda80c",
        "bb961c3342b7b839",
        "148760ccf88604df",
        "95a1683fed6bb966",
        "1acc3dd5a771b22c",
        "80446c925273b13a",
    ],
}
SWEEP_FIRST = ["53a15630a9ddb73f", "85775c6fcf67105f", "acaa9db5ba2f1ca2", "7f5a221a81c1e599"]
SWEEP_LAST = "4393ca5218530022"
SWEEP_DIGEST = "02f5b14114bf2376"


def test_the_batched_hasher_gives_trial_ids_ids():
    """The plan hashes with identity.Hasher (the base encoded once); it must give trial_id's ids
    for every kind of value, key order and group choice."""
    import random

    import numpy as np

    from daskbench.sweep.identity import Hasher

    values = [0, -5, 2**70, 0.5, 1e300, float("nan"), float("inf"), -float("inf"), -0.0, "a", "é ü", 'q"\\']
    values += ["", True, False, None, [1, "x"], {"b": 1, "a": [2]}, (1, 2), np.float64(0.25), np.int64(3), {}]
    rng = random.Random(1)
    checked = 0
    for _ in range(500):
        base = list({f"k{rng.randint(0, 30)}.{i}": rng.choice(values) for i in range(rng.randint(0, 6))}.items())
        groups = tuple(sorted((f"g{i}", rng.choice(["a", "b c"])) for i in range(rng.randint(0, 2))))
        hasher = Hasher("exp", groups, base)
        for _ in range(5):
            keys = rng.sample(["trial.x", "trial.y", "a", "zz", "trial.seed", "k1", "k3.1.z"], rng.randint(0, 4))
            params = {k: rng.choice(values) for k in keys if k not in dict(base)}
            assert hasher(params) == trial_id("exp", groups, base, params), (base, groups, params)
            # a replicate's seed fixed once (Hasher.fixing), the other values per trial: the same id
            fixed = {"trial.seed": rng.choice(values)} if "trial.seed" not in dict(base) else {}
            rest = {k: v for k, v in params.items() if k not in fixed}
            both = {**rest, **fixed}
            assert hasher.fixing(fixed)(rest) == trial_id("exp", groups, base, both), (base, groups, both)
            checked += 1
    assert checked == 2500


LONG_AXES = [
    ("trial.x=range(0,2500)", {}),
    ("trial.x=range(3,1000,7)", {"fixed_seed": 5}),
    ("trial.x=range(0,700)", {"replicates": 3, "inject_seed": True}),
    ("trial.x=range(0,10)", {"inject_seed": True}),
    ("trial.x=0.5,abc,7,true,null,[1,2]", {"replicates": 2, "inject_seed": True}),
]


@pytest.mark.parametrize("override,kw", LONG_AXES)
def test_a_long_axis_built_in_slices_gives_the_sweeps_trials(override, kw):
    """One axis of values is built a batch at a time (sweep.batch), and a fresh sweep's chunk
    goes to its worker as a slice of that recipe: every slice, as the driver reads it and as a
    worker rebuilds it from the packed bytes, must be the trials point_trials() makes, ids and
    seeds and replicate order alike."""
    import random

    from daskbench.runner.spec import Item, pack, unpack
    from daskbench.sweep.batch import TrialSlice

    axes = [axis_from_override(parse_override(override))]
    base = {"name": "t", "trial._target_": "m.f"}
    p = SweepPlan(name="t", axes=axes, bases={(): base}, **kw)
    expected = [t for v in axes[0].values for t in p.point_trials((), {axes[0].key: v})]
    assert list(p) == expected and len(p) == len(expected)
    assert all(t.trial_id == trial_id("t", (), list(base.items()), t.params) for t in expected)
    recipe = p.axis_trials()
    assert recipe is not None and len(recipe) == len(expected)
    rng = random.Random(0)
    for _ in range(100):
        a = rng.randrange(len(expected))
        b = rng.randrange(a + 1, len(expected) + 1)
        part = TrialSlice(recipe, a, b)
        k = rng.randrange(b - a)
        assert part[k] == expected[a + k] and part[-1] == expected[b - 1]  # one trial, built alone
        assert list(part) == expected[a:b]
        items = [Item(t.trial_id, t.groups, t.params, t.seed, t.replicate) for t in expected[a:b]]
        got = unpack(pack(TrialSlice(recipe, a, b)))  # the sweep's Trials: an Item's fields, by name
        assert [Item(*(getattr(t, f) for f in Item._fields)) for t in got] == items
        # a worker reads it as columns (the fast loop) or one trial at a time (its slow paths)
        assert got.ids == [t.trial_id for t in expected[a:b]] and got[k] == expected[a + k]
        assert all(got.params[key] == [t.params[key] for t in expected[a:b]] for key in expected[0].params)


def test_only_one_plain_axis_is_built_in_slices():
    """Groups, several axes, sampled designs and a swept trial.seed take the sweep's own loop."""
    base = {"name": "t", "trial._target_": "m.f"}
    for overrides in (["trial.a=1,2", "trial.b=3,4"], ["trial.seed=1,2"]):
        axes = [axis_from_override(parse_override(o)) for o in overrides]
        assert SweepPlan(name="t", axes=axes, bases={(): base}).axis_trials() is None
