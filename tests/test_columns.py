"""Per-chunk Arrow tables joined by the store equal the table built from all rows at once."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from daskbench.results import columns


def _rows(start: int, n: int, metric) -> list:
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return [
        {"trial_id": f"id{i}", "seed": i, "worker": "w", "trial.x": i, **metric(i), "status": "ok", "started_at": t}
        for i in range(start, start + n)
    ]


CASES = {
    "ints then floats": (lambda i: {"m": i}, lambda i: {"m": i + 0.5}),
    "ints then text": (lambda i: {"m": i}, lambda i: {"m": f"v{i}"}),
    "bools then ints": (lambda i: {"m": True}, lambda i: {"m": i}),
    "a metric in some chunks only": (lambda i: {}, lambda i: {"m": i, "k": "x"}),
    "all null, then ints": (lambda i: {"m": None}, lambda i: {"m": i}),
    "int past float64's exact range": (lambda i: {"m": 2**60 + i}, lambda i: {"m": 0.5}),
    "a declared column of the wrong type": (lambda i: {"seed": f"s{i}"}, lambda i: {}),
}


def test_joined_chunks_equal_one_table_of_all_rows():
    for name, (first, second) in CASES.items():
        a, b = _rows(0, 3, first), _rows(3, 2, second)
        want = columns.rows_to_table(a + b, ["trial.x"])
        got = columns.concat([columns.rows_to_table(a), columns.rows_to_table(b)], ["trial.x"])
        assert got.schema == want.schema, name
        assert got.to_pylist() == want.to_pylist(), name


def test_one_table_is_put_in_the_declared_order():
    t = columns.rows_to_table([{"trial_id": "a", "status": "ok", "trial.x": 1}])
    assert t.column_names == ["trial_id", "trial.x", "status"]
    got = columns.concat([t.append_column("code_version", pa.array(["c"]))], ["trial.x"])
    assert got.column_names == ["trial_id", "trial.x", "status", "code_version"]


def test_one_table_of_cancelled_rows_gets_the_swept_columns_it_lacks():
    # a store flush that holds only cancelled rows (no swept keys) still gives the row path's table
    rows = [{"trial_id": f"id{i}", "seed": i, "status": "cancelled"} for i in range(3)]
    first = ["trial.x", "trial.y"]
    joined = columns.concat([columns.rows_to_table(rows)], first)
    assert joined.equals(columns.rows_to_table(rows, first))
    assert joined.column_names[:3] == ["trial_id", "trial.x", "trial.y"]
