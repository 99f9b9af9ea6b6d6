"""Running a chunk of trials in-process: isolation, bad returns, retries, timeouts."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from daskbench.runner.execute import normalise, run_chunk
from daskbench.runner.spec import Item, TrialSpec


def spec(target, **kw):
    return TrialSpec(target=target, fast=True, bases={(): {"_target_": target}}, **kw)


def test_each_trial_its_own_failure(user_dir):
    sys.path.insert(0, str(user_dir))
    items = [Item(f"id{x}", (), {"trial.x": x}, None, 0) for x in range(6)]
    res = run_chunk(spec("usertrials.sometimes_fails"), items)
    status = {r["trial_id"]: r["status"] for r in res.rows()}
    assert status == {"id0": "failed", "id1": "ok", "id2": "ok", "id3": "failed", "id4": "ok", "id5": "ok"}
    bad = next(r for r in res.rows() if r["trial_id"] == "id3")
    assert bad["error"] == "ValueError: x=3 is a multiple of three"
    assert "Traceback" in bad["traceback"] and "sometimes_fails" in bad["traceback"]
    assert next(r for r in res.rows() if r["trial_id"] == "id4")["y"] == 8


def test_retries_count_attempts(user_dir):
    sys.path.insert(0, str(user_dir))
    items = [Item("a", (), {"trial.x": 1, "trial.marker_dir": str(user_dir)}, None, 0)]
    assert run_chunk(spec("usertrials.flaky"), items).rows()[0]["status"] == "failed"
    (user_dir / "flaky-1").unlink()
    row = run_chunk(spec("usertrials.flaky", retries=2), items).rows()[0]
    assert row["status"] == "ok" and row["attempts"] == 2


def test_timeout(user_dir):
    sys.path.insert(0, str(user_dir))
    items = [
        Item("a", (), {"trial.x": 1, "trial.delay": 20.0}, None, 0),
        Item("b", (), {"trial.x": 2, "trial.delay": 0.0}, None, 0),
    ]
    rows = run_chunk(spec("usertrials.sleepy", timeout_s=0.3), items).rows()
    assert [r["status"] for r in rows] == ["timeout", "ok"]
    # the timeout ended it, long before its own 20 s (not a timing margin: load cannot add 19 s)
    assert rows[0]["duration_s"] < 20.0


def test_tables_get_trial_ids(user_dir):
    sys.path.insert(0, str(user_dir))
    res = run_chunk(spec("usertrials.with_steps"), [Item("a", (), {"trial.x": 2, "trial.n": 3}, None, 0)])
    assert res.rows()[0]["total"] == 6
    assert res.tables["steps"].column("trial_id").to_pylist() == ["a"] * 3


@pytest.mark.parametrize(
    "value, message",
    [
        ([1, 2], "trial returned list [1, 2]; return a mapping"),
        (None, "trial returned NoneType None"),
        ({"m": [1, 2]}, "metric 'm' is list"),
        ({"status": 1}, "metric 'status' clashes"),
    ],
)
def test_bad_returns(value, message):
    with pytest.raises(TypeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        normalise(value)


def test_good_returns():
    import numpy as np

    metrics, tables = normalise(
        {"a": np.float32(1.5), "b": np.int64(3), "c": True, "d": "x", "t": pd.DataFrame({"v": [1]})}
    )
    assert metrics == {"a": 1.5, "b": 3, "c": True, "d": "x"} and type(metrics["b"]) is int
    assert list(tables) == ["t"]
    assert list(normalise(pd.DataFrame({"v": [1]}))[1]) == ["steps"]


KINDS_PY = """
import os


def exits(x=0):
    os._exit(3)


def uses_worker(x=0):
    from distributed import get_worker
    get_worker()
    return {"y": x}


def hogs(x=0):
    raise MemoryError("no room")


def unsendable(x=0):
    return {"y": lambda: x}
"""


def test_each_failure_carries_its_kind(user_dir):
    """The kind travels with the row as data, beside the error text users read."""
    sys.path.insert(0, str(user_dir))
    kinds = {}
    for target, params, kw in [
        ("usertrials.sometimes_fails", {"trial.x": 3}, {}),
        ("usertrials.bad_return", {"trial.x": 1}, {}),
        ("usertrials.sleepy", {"trial.x": 1, "trial.delay": 2.0}, {"timeout_s": 0.2, "isolation": "thread"}),
        ("usertrials.sometimes_fails", {"trial.x": 1}, {}),
    ]:
        r = run_chunk(spec(target, **kw), [Item("a", (), params, None, 0)]).rows()[0]
        kinds[target, r["status"]] = (r["failure_kind"], r["error"].split(":")[0] if r["error"] else None)
    assert kinds == {
        ("usertrials.sometimes_fails", "failed"): ("raised", "ValueError"),
        ("usertrials.bad_return", "failed"): ("bad_result", "TypeError"),
        ("usertrials.sleepy", "timeout"): ("timeout", "TrialTimeout"),
        ("usertrials.sometimes_fails", "ok"): (None, None),
    }


def test_a_child_process_sends_back_the_kind_of_its_failure(user_dir):
    (user_dir / "kinds.py").write_text(KINDS_PY)
    sys.path.insert(0, str(user_dir))
    items = [Item("a", (), {"trial.x": 1}, None, 0)]
    got = {}
    for name in ("exits", "uses_worker", "hogs", "unsendable"):
        r = run_chunk(spec(f"kinds.{name}", isolation="process"), items).rows()[0]
        assert r["status"] == "failed"
        got[name] = (r["failure_kind"], r["error"].split(":")[0])
    assert got == {
        "exits": ("process_died", "TrialProcessDied"),
        "uses_worker": ("needs_worker", "TrialNeedsWorker"),
        "hogs": ("out_of_memory", "MemoryError"),
        "unsendable": ("bad_result", "TypeError"),
    }


@pytest.mark.parametrize("timeout_s", [None, 30.0], ids=["fast-loop", "per-trial"])
def test_a_chunk_starts_no_trial_past_its_time_budget(user_dir, timeout_s):
    """The driver sends the trials a chunk did not start again: the result holds the ones
    that ran, in order, with their own rows, and never fewer than one."""
    sys.path.insert(0, str(user_dir))
    items = [Item(f"id{x}", (), {"trial.x": x, "trial.delay": 0.05}, None, 0) for x in range(6)]
    kw = {"timeout_s": timeout_s, "isolation": "thread"} if timeout_s else {}
    ran = run_chunk(spec("usertrials.slow", **kw), items, budget_s=0.12)
    n = ran.n  # a sleep never ends early: the 4th trial would start at 0.15 s or later
    assert 1 <= n <= 3 and [r["trial_id"] for r in ran.rows()] == [f"id{x}" for x in range(n)]
    assert ran.counts == {"ok": n} and ran.table.column("trial.x").to_pylist() == list(range(n))
    one = run_chunk(spec("usertrials.slow", **kw), items, budget_s=0.0)
    assert [r["trial_id"] for r in one.rows()] == ["id0"]  # the first always runs
    assert run_chunk(spec("usertrials.slow", **kw), items).n == 6  # no budget: all of them


def test_a_chunk_result_travels_as_arrow_ipc_and_comes_back_equal(user_dir):
    import pickle

    sys.path.insert(0, str(user_dir))
    items = [Item(f"id{x}", (), {"trial.x": x}, None, 0) for x in range(6)]
    res = run_chunk(spec("usertrials.with_steps"), items)
    back = pickle.loads(pickle.dumps(res, protocol=5))
    assert back.table.equals(res.table) and back.table.schema.equals(res.table.schema, check_metadata=True)
    assert set(back.tables) == set(res.tables) and all(back.tables[k].equals(res.tables[k]) for k in res.tables)
    assert (back.counts, back.compute_s, back.slowest, back.errors) == (
        res.counts,
        res.compute_s,
        res.slowest,
        res.errors,
    )
