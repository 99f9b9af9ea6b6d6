"""The Parquet results store: atomic parts, one schema, no duplicates, recovery."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pytest

from daskbench.errors import ResultsError
from daskbench.results.dataset import Dataset
from daskbench.results.store import ResultStore, rows_to_table


def row(tid, status="ok", **metrics):
    return dict(trial_id=tid, status=status, attempts=1, error=None if status == "ok" else "E: x", **metrics)


def test_batched_parts_readable_with_pandas(tmp_path):
    st = ResultStore(tmp_path / "r", flush_rows=3, flush_seconds=1e9)
    for i in range(7):
        st.add([row(f"t{i}", y=float(i))], {})
    st.close()
    parts = list((tmp_path / "r" / "trials").glob("part-*.parquet"))
    assert len(parts) == 3  # 3 + 3 + 1 rows: batched, not one file per trial
    df = pd.read_parquet(tmp_path / "r" / "trials")
    assert sorted(df.trial_id) == [f"t{i}" for i in range(7)]
    assert not list((tmp_path / "r" / "trials").glob(".*"))  # no temp files left


def test_new_metric_columns_unify_schema(tmp_path):
    st = ResultStore(tmp_path / "r", flush_rows=1)
    st.add([row("a", status="failed")], {})
    st.add([row("b", y=1)], {})
    st.add([row("c", y=2.5, z="label")], {})
    st.close()
    df = pd.read_parquet(tmp_path / "r" / "trials").set_index("trial_id")
    assert df.loc["c", "z"] == "label" and df.loc["c", "y"] == 2.5 and df.loc["b", "y"] == 1.0
    assert pd.isna(df.loc["a", "y"])


def test_rerun_replaces_failed_row_never_duplicates(tmp_path):
    st = ResultStore(tmp_path / "r", flush_rows=1)
    st.add([row("a", status="failed"), row("b", y=1)], {})
    st.close()
    st = ResultStore(tmp_path / "r", flush_rows=1)
    assert st.open_for_resume() == {"b"}
    st.add([row("a", y=5)], {})
    st.close()
    df = pd.read_parquet(tmp_path / "r" / "trials")
    assert sorted(df.trial_id) == ["a", "b"]
    assert (df.status == "ok").all()


def test_steps_written_with_trial_ids_and_orphans_removed(tmp_path):
    st = ResultStore(tmp_path / "r")
    t = pa.table({"trial_id": ["a", "a"], "tick": [0, 1]})
    st.add([row("a")], {"steps": t})
    st.close()
    # an orphan: steps written for a trial whose row never landed (run died in between)
    Dataset(tmp_path / "r" / "steps").append(pa.table({"trial_id": ["zz"], "tick": [0]}))
    st = ResultStore(tmp_path / "r")
    assert st.open_for_resume() == {"a"}
    steps = pd.read_parquet(tmp_path / "r" / "steps")
    assert list(steps.trial_id) == ["a", "a"]


def test_interrupted_swap_is_finished_or_rolled_back(tmp_path):
    d = Dataset(tmp_path / "trials")
    d.append(rows_to_table([row("a")]))
    # crash after the old folder was moved away, before the new one was moved in
    os.replace(tmp_path / "trials", tmp_path / ".trials.old")
    (tmp_path / ".trials.new").mkdir()
    Dataset._write_part(tmp_path / ".trials.new", rows_to_table([row("a"), row("b")]))
    d = Dataset(tmp_path / "trials")
    assert sorted(pd.read_parquet(tmp_path / "trials").trial_id) == ["a", "b"]
    assert not (tmp_path / ".trials.old").exists() and not (tmp_path / ".trials.new").exists()
    # crash while the new folder was still being written: roll back
    (tmp_path / ".trials.new").mkdir()
    (tmp_path / ".trials.new" / ".part-x.parquet.tmp").write_bytes(b"half")
    Dataset(tmp_path / "trials")
    assert not (tmp_path / ".trials.new").exists()
    assert sorted(pd.read_parquet(tmp_path / "trials").trial_id) == ["a", "b"]


def test_half_written_part_is_ignored_and_removed(tmp_path):
    d = Dataset(tmp_path / "trials")
    d.append(rows_to_table([row("a")]))
    (tmp_path / "trials" / ".part-1.parquet.abc.tmp").write_bytes(b"PAR1 garbage")
    assert list(pd.read_parquet(tmp_path / "trials").trial_id) == ["a"]  # hidden from readers
    Dataset(tmp_path / "trials")
    assert not list((tmp_path / "trials").glob(".*"))


def test_compaction_past_threshold(tmp_path):
    st = ResultStore(tmp_path / "r", flush_rows=1, compact_parts=4)
    for i in range(10):
        st.add([row(f"t{i}", y=i)], {})
    st.close()
    assert len(list((tmp_path / "r" / "trials").glob("part-*"))) == 1
    assert len(pd.read_parquet(tmp_path / "r" / "trials")) == 10


def test_unwritable_results_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ResultsError, match="cannot write results to .*results.dir=PATH"):
        ResultStore(blocker / "sub")


def test_mixed_type_column_kept_as_text():
    t = rows_to_table([row("a", k="x"), row("b", k=1)])
    assert t["k"].to_pylist() == ["x", "1"]


def test_batches_scan_row_groups_of_every_part_as_one_schema(tmp_path):
    """``Dataset.batches`` reads row group by row group (flat memory at 10^7 rows): the same
    rows, in the same order, cast to the folder's schema, filtered, as one pyarrow scan."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    folder = tmp_path / "trials"
    folder.mkdir()
    n = 2_500
    ids = [f"{i:016x}" for i in range(n)]
    status = ["ok" if i % 7 else "failed" for i in range(n)]
    # a compacted part of many row groups, with y an integer; then a part where y is a float and z new
    pq.write_table(
        pa.table({"trial_id": ids, "status": status, "y": list(range(n))}),
        folder / "part-1.parquet",
        row_group_size=300,
    )
    pq.write_table(
        pa.table({"trial_id": ["x1", "x2"], "status": ["ok", "ok"], "y": [0.5, 1.5], "z": ["a", "b"]}),
        folder / "part-2.parquet",
    )
    dset = Dataset(folder, writer=False)
    assert pq.ParquetFile(folder / "part-1.parquet").num_row_groups == 9
    schema = dset.schema()
    parts = [str(p) for p in dset.parts()]
    for cols, where in [(["trial_id", "y", "z"], None), (["trial_id", "z"], ds.field("status") == "ok")]:
        got = pa.Table.from_batches(list(dset.batches(cols, where)))
        want = ds.dataset(parts, schema=schema, format="parquet").to_table(columns=cols, filter=where)
        assert got.equals(want) and got.num_rows == (n + 2 if where is None else n - len(range(0, n, 7)) + 2)
    assert pa.Table.from_batches(list(dset.batches(["trial_id", "y"])))["y"].type == pa.float64()
