"""What keeps the driver flat as a sweep grows: a lazy grid, a compact resume index, a
report that reads a bounded frame of a big table. Real sweeps on a LocalCluster, at a
size a test can afford; the sizes themselves are measured by benchmarks/bench_million.py."""

from __future__ import annotations

import itertools
import re

import pyarrow as pa
import pytest

import daskbench
from daskbench.observe import report_data
from daskbench.observe.report import write_report
from daskbench.results.index import TrialIndex
from daskbench.results.store import ResultStore
from daskbench.sweep.lazy import Rows, product
from tests.test_sweep import plan_for

N = 12_000


# -- the grid, crossed lazily -------------------------------------------------------
def test_integer_range_axis_is_a_lazy_range_with_the_same_trials():
    lazy = plan_for(["trial.x=range(0,1000000000000)", "trial.y=a,b"], replicates=2)
    assert isinstance(lazy.axes[0].values, range)  # not a tuple of 10^12 ints
    assert len(lazy) == 4 * 10**12
    assert "trial.x = range(0,1000000000000)" in lazy.describe()
    assert lazy.may_repeat() is False
    first = list(itertools.islice(lazy, 12))
    listed = plan_for(["trial.x=0,1,2", "trial.y=a,b"], replicates=2)
    assert [t.trial_id for t in first] == [t.trial_id for t in listed]
    assert [(t.params, t.seed) for t in first] == [(t.params, t.seed) for t in listed]
    # a step, and float ranges and shuffled ones stay as Hydra lists them
    assert plan_for(["trial.x=range(1,10,3)"]).axes[0].expr == "range(1,10,3)"
    assert [t.params["trial.x"] for t in plan_for(["trial.x=range(1,10,3)"])] == [1, 4, 7]
    assert plan_for(["trial.x=range(0,1,0.5)"]).axes[0].values == (0.0, 0.5)
    assert not isinstance(plan_for(["trial.x=shuffle(range(0,5))"]).axes[0].values, range)


@pytest.mark.parametrize("dims", [[], [(1, 2)], [range(3), "ab", (True,)], [range(2), (), "xy"], [range(0)]])
def test_lazy_product_is_itertools_product(dims):
    assert list(product(dims)) == list(itertools.product(*dims))


def test_rows_zip_axes_as_one_dimension():
    rows = Rows([range(3), ("a", "b", "c")])
    assert len(rows) == 3 and list(rows) == [(0, "a"), (1, "b"), (2, "c")] and rows[1] == (1, "b")
    plan = plan_for(["trial.a=range(0,3)", "trial.b=x,y,z", "trial.c=1,2"], zip=[["trial.a", "trial.b"]])
    got = [(t.params["trial.a"], t.params["trial.b"], t.params["trial.c"]) for t in plan]
    assert got == [(a, b, c) for a, b in zip(range(3), "xyz") for c in (1, 2)]


# -- the resume index -----------------------------------------------------------------
def test_trial_index_is_a_set_of_ids():
    import hashlib

    ids = [hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in range(1000)]
    ix = TrialIndex.of(ids[:500] + ["a", "launcher-7"])
    assert len(ix) == 502 and ix == set(ids[:500]) | {"a", "launcher-7"}
    assert all(i in ix for i in ids[:500]) and not any(i in ix for i in ids[500:])
    assert "a" in ix and "b" not in ix and 5 not in ix
    assert ids[0].upper() not in ix and "0x" + ids[0][2:] not in ix  # int() would read them
    assert ix.contains(pa.array([*ids[498:502], "a", "zz", None])).tolist() == [1, 1, 0, 0, 1, 0, 0]
    smaller = ix - {*ids[:10], "a"}
    assert len(smaller) == 491 and ids[0] not in smaller and ids[10] in smaller and "a" not in smaller
    assert {ids[0], ids[600]} & ix == {ids[0]}
    assert len(TrialIndex.of([])) == 0 and ids[0] not in TrialIndex.of([])
    column = pa.chunked_array([pa.array(ids[:300]), pa.array([None, *ids[300:600], "x"])])
    assert TrialIndex.from_arrow([column.slice(250, 100), column.slice(350)]) == {*ids[250:600], "x"}  # offsets


TRIAL_PY = """
def t(x=0, seed=0):
    if x % 997 == 3:
        raise ValueError(f"x={x} is unlucky")
    return {"y": x % 7, "z": x * 0.5}
"""


@pytest.fixture
def many(user_dir):
    from tests.conftest import write_experiment

    (user_dir / "scaletrial.py").write_text(TRIAL_PY)
    write_experiment(
        user_dir / "conf",
        "many",
        f"""
        name: many
        trial: {{_target_: scaletrial.t, x: 0}}
        sweep:
          params:
            trial.x: range(0,{N})
        results: {{report: false}}
    """,
    )
    return user_dir


def go(overrides=(), client=None):
    return daskbench.run("many", list(overrides), client=client, config_dir="conf", progress="none", echo=print)


def test_resumed_run_with_many_trials_skips_the_done_ones(many, client):
    bad = len([x for x in range(N) if x % 997 == 3])
    first = go(client=client)
    assert first.counts.ok == N - bad and first.counts.failed == bad
    done = ResultStore(many / "results" / "many").open_for_resume("many")
    assert isinstance(done, TrialIndex) and len(done) == N - bad
    again = go(client=client)  # the failed ones run again (and fail again), nothing else
    assert again.counts.skipped == N - bad and again.counts.failed == bad and again.counts.ok == 0
    more = go([f"trial.x=range(0,{N + 500})"], client=client)  # extended: only the new points
    new_bad = len([x for x in range(N, N + 500) if x % 997 == 3])
    assert more.counts.skipped == N - bad and more.counts.ok == 500 - new_bad
    df = daskbench.load(many / "results" / "many")
    assert len(df) == N + 500 and df.trial_id.is_unique and sorted(df["trial.x"]) == list(range(N + 500))


# -- the report of a big table -----------------------------------------------------------
def test_report_of_a_big_table_reads_a_sample_and_counts_every_row(many, client):
    go(client=client)
    root = many / "results" / "many"
    full = daskbench.load(root)
    failed = full[full.status == "failed"]
    frame = report_data.load(root, ["trial.x"], slowest=10, max_rows=1000)
    whole = frame.attrs["daskbench_whole"]
    assert whole["rows"] == N and dict(whole["status"]) == full.status.value_counts().to_dict()
    assert len(frame) < 2000 + len(failed) and whole["in_frame"] == len(frame) and frame.trial_id.is_unique
    assert set(failed.trial_id) <= set(frame.trial_id)  # every failure, for its table
    assert set(full.nlargest(10, "duration_s").trial_id) <= set(frame.trial_id)  # the slowest of all rows
    assert whole["describe"]["trial.x"] == f"{N} values in [0, {N - 1:.4g}]"
    assert "traceback" not in frame.columns and "y" in frame.columns
    assert frame.equals(report_data.load(root, ["trial.x"], slowest=10, max_rows=1000))  # seeded: same sample

    small = report_data.load(root, max_rows=N)  # at most max_rows: read whole, only the columns shown
    assert len(small) == N and "daskbench_whole" not in small.attrs and "traceback" not in small.columns

    md = (write_report(root, max_rows=1000).parent / "summary.md").read_text()
    assert f"| ok | {N - len(failed)} |" in md and f"| failed | {len(failed)} |" in md and f"| total | {N} |" in md
    assert re.search(r"\| of them in the plots and tables below \(a random sample\) \| \d+ \|", md)
    assert f"{N} values in [0, {N - 1:.4g}]" in md
    assert all(tid in md for tid in failed.trial_id)


def test_key_stats_describe_a_swept_key_over_every_batch(monkeypatch):
    """The distinct values of a swept key counted batch by batch (a NumPy sort for numbers):
    listed when few, a count and range for a continuous key, a bound past MAX_DISTINCT."""
    cases = [
        (pa.array(list(range(50)) * 3), "50 values in [0, 49]"),
        (pa.array([0.5, 0.25, None, 0.5, 0.125]), "0.125, 0.25, 0.5"),
        (pa.array([3, 1, 2, 1, None]), "1, 2, 3"),
        (pa.array([x / 10 for x in range(40)]), "40 values in [0, 3.9]"),
        (pa.array(["b", "a", None, "b"]), "a, b"),
        (pa.array([True, False, True]), "False, True"),
    ]
    for column, text in cases:
        stats = report_data._KeyStats()
        for lo in range(0, len(column), 4):  # batches of 4 rows
            stats.add(pa.chunked_array([column.slice(lo, 4)]))
        assert stats.describe() == text, column
    monkeypatch.setattr(report_data, "MAX_DISTINCT", 120)
    stats = report_data._KeyStats()
    for lo in range(0, 10_000, 100):
        stats.add(pa.chunked_array([pa.array(range(lo, lo + 100))]))
    assert stats.many and stats.describe() == "more than 120 values in [0, 9999]" and not stats.parts
