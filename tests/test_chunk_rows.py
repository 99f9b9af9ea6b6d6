"""The fast loop writes what the per-trial path writes.

A chunk of trials called in the worker's thread runs in a loop that appends plain
metrics straight to the chunk's columns (``results/chunk.py``); every other chunk
builds a row per trial and tables them (``rows_to_table``). The per-trial path is the
reference: each chunk here runs both ways (the reference by turning the fast loop off
for the call) and must give the same table, the same columns in the same order, of the
same types, with the same values, and the same counts and errors. Only the clock's
readings differ (and a traceback's frames: whether there is one is compared).
"""

from __future__ import annotations

import sys
import time

import pyarrow as pa
import pytest

from daskbench.observe import live
from daskbench.runner import execute
from daskbench.runner.execute import run_chunk
from daskbench.runner.invoke import resolve_target
from daskbench.runner.spec import Item, TrialSpec, pack, unpack
from daskbench.sweep.axes import axis_from_override, parse_override
from daskbench.sweep.batch import TrialSlice
from daskbench.sweep.plan import SweepPlan

CHUNKY_PY = '''
import numpy as np
import pandas as pd

RUNS = {}


def mixed(x=0, kind="a", seed=0):
    """Every way a trial can end, metrics whose names, types and presence vary."""
    RUNS[x] = RUNS.get(x, 0) + 1
    if x % 11 == 3:
        raise ValueError(f"x={x} fails")
    if x % 13 == 5:
        return [x]  # not a mapping: bad_result
    if x % 17 == 6 and RUNS[x] == 1:
        raise RuntimeError("only the first run fails")  # ok on its retry: attempts 2
    out = {"y": x if x % 4 else x + 0.5, "s": f"{kind}{x}", "opt": None}
    if x % 5 == 0:
        out["np"] = np.float32(x)  # a value to convert
    if x % 7 == 0:
        out["late"] = x  # a metric some trials lack
    if x % 9 == 0:
        out["mix"] = "text" if x % 2 else x  # ints and text in one column
    if x == 20:
        out["steps"] = pd.DataFrame({"tick": range(2), "v": [x, x + 1]})
    return out


def none_first(x=0, seed=0):
    """The first trial returns no metrics: later ones bring theirs."""
    return {} if x == 0 else {"y": x, "seed_seen": seed}


def fails_first(x=0, seed=0):
    if x == 0:
        raise KeyError("first")
    return {"y": float(x)}


def named_as_keys(x=0, seed=0):
    """Metrics named as the swept key and as the hidden seed key."""
    return {"trial.x": -x, "y": x, "trial.seed": 7}


def naps(x=0, seed=0):
    import time

    time.sleep(0.002)
    return {"y": x}


def where(x=0, seed=0):
    """Which trial daskbench says is running, and a live report."""
    import daskbench
    from daskbench.observe import live

    daskbench.report(step=1, x=x)
    return {"ctx": live.current().trial_id}
'''

#: the clock's readings: their names and types are compared, not their values
VARYING = ("started_at", "duration_s", "traceback")


@pytest.fixture
def chunky(tmp_path, monkeypatch):
    (tmp_path / "chunky.py").write_text(CHUNKY_PY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("chunky", None)


def _spec(target, **kw):
    return TrialSpec(target=target, fast=True, bases={(): {"_target_": target, "x": 0}}, **kw)


def _both(spec, items, monkeypatch):
    """The chunk's result from the fast loop, then from the per-trial path."""
    runs = resolve_target(spec.target).__globals__["RUNS"]  # the module the trials' calls use (cached)
    runs.clear()
    fast = run_chunk(spec, items)
    with monkeypatch.context() as m:
        m.setattr(execute, "_fast_calls", lambda *a: None)
        runs.clear()
        slow = run_chunk(spec, items)
    return fast, slow


def _same(fast, slow):
    assert fast.table.schema.names == slow.table.schema.names
    assert [str(t) for t in fast.table.schema.types] == [str(t) for t in slow.table.schema.types]
    for name in fast.table.column_names:
        f, s = fast.table[name], slow.table[name]
        if name == "traceback":
            assert f.is_valid().to_pylist() == s.is_valid().to_pylist()
        elif name not in VARYING:
            assert f.to_pylist() == s.to_pylist(), name
    assert fast.counts == slow.counts and fast.errors == slow.errors
    assert sorted(fast.tables) == sorted(slow.tables)
    for name in fast.tables:
        assert fast.tables[name].equals(slow.tables[name])
    assert [i for _, i in fast.slowest] == [i for _, i in fast.slowest if fast.table["status"][i].as_py() == "ok"]


def _items(xs, reps=1, groups=()):
    return [
        Item(f"id{x}-{r}", groups, {"trial.x": x, "trial.seed": 100 + r}, 100 + r, r) for x in xs for r in range(reps)
    ]


@pytest.mark.parametrize("start", [0, 1, 3, 5])
def test_every_way_a_trial_ends_gives_the_per_trial_paths_table(chunky, monkeypatch, start):
    spec = _spec("chunky.mixed", retries=1, hidden=("trial.seed",))
    fast, slow = _both(spec, _items(range(start, start + 40), reps=2), monkeypatch)
    _same(fast, slow)
    assert {"ok", "failed"} <= set(fast.counts) and "steps" in fast.tables
    assert 2 in fast.table["attempts"].to_pylist()
    assert fast.table["mix"].type == pa.string() and fast.table["y"].type == pa.float64()


@pytest.mark.parametrize("target", ["chunky.none_first", "chunky.fails_first", "chunky.named_as_keys"])
@pytest.mark.parametrize("hidden", [(), ("trial.seed",)])
def test_first_trials_without_metrics_and_metrics_named_as_keys(chunky, monkeypatch, target, hidden):
    fast, slow = _both(_spec(target, hidden=hidden), _items(range(6)), monkeypatch)
    _same(fast, slow)


def test_swept_groups_and_their_bases(chunky, monkeypatch):
    bases = {
        (("model", "a"),): {"_target_": "chunky.mixed", "kind": "a"},
        (("model", "b"),): {"_target_": "chunky.mixed", "kind": "b"},
    }
    spec = TrialSpec(target="chunky.mixed", fast=True, bases=bases)
    items = [it for x in range(12) for it in _items([x], groups=(("model", "ab"[x % 2]),))]
    fast, slow = _both(spec, items, monkeypatch)
    _same(fast, slow)
    assert fast.table["model"].to_pylist()[:2] == ["a", "b"] and fast.table["s"].to_pylist()[1] == "b1"


def test_a_slice_of_a_long_axis_built_by_the_worker(chunky, monkeypatch):
    """The chunk a fresh one-axis sweep sends: the worker builds its trials from the recipe."""
    axes = [axis_from_override(parse_override("trial.x=range(0,50)"))]
    plan = SweepPlan(name="t", axes=axes, bases={(): {"name": "t"}}, replicates=3, root_seed=5, inject_seed=True)
    recipe = plan.axis_trials()
    assert recipe is not None
    data = pack(TrialSlice(recipe, 7, 121))
    spec = _spec("chunky.mixed", hidden=("trial.seed",))
    fast, slow = _both(spec, data, monkeypatch)
    _same(fast, slow)
    assert fast.table["trial_id"].to_pylist() == [t.trial_id for t in unpack(data)]
    assert fast.table["seed"].to_pylist() == [t.seed for t in list(plan)[7:121]]


def test_each_trial_of_the_fast_loop_is_the_running_trial(chunky, monkeypatch):
    """live.current() and daskbench.report() inside a trial name that trial; none after."""
    sent = []
    monkeypatch.setattr(live, "_sender", lambda topic, msg: sent.append(msg["trial_id"]))
    items = _items(range(4))
    res = run_chunk(_spec("chunky.where"), items)
    assert res.table["ctx"].to_pylist() == [t.trial_id for t in items]
    assert sent == [t.trial_id for t in items]
    assert live.current() is None


def test_start_times_and_durations_tell_when_each_trial_ran(chunky):
    """One clock reading per trial boundary: each start follows the one before by at least
    that trial's duration, all within the call (bounds of the order of events, not margins)."""
    before = time.time_ns() // 1000
    res = run_chunk(_spec("chunky.naps"), _items(range(5)))
    after = time.time_ns() // 1000
    started = res.table["started_at"].cast(pa.int64()).to_pylist()
    durations = res.table["duration_s"].to_pylist()
    assert all(d >= 0.002 for d in durations)  # each slept 2 ms: the clock is read around the call
    assert before <= started[0] and started[-1] + durations[-1] * 1e6 <= after + 1
    assert all(b - a >= d * 1e6 - 1 for a, b, d in zip(started, started[1:], durations))
