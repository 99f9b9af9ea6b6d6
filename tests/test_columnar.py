"""The columnar path writes the same tables as the row path it replaced.

``tests/data/columnar_*.parquet`` were written by the row path (a dict per trial,
``rows_to_table`` on the driver) before results went columnar; the same sweep,
mixing metric types across trials and chunks, failures, bad results, retries,
per-step tables and replicates, must give the same columns, in the same order,
of the same types, with the same values. Only what differs from run to run is
left out of the values: the worker, the times, the code version and the
traceback's text (its line numbers move with the code).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import daskbench
from tests.conftest import write_experiment

DATA = Path(__file__).parent / "data"

#: columns whose values change from run to run (their names, order and types are still compared)
VARYING = ("worker", "started_at", "duration_s", "code_version", "traceback")

MIXED_PY = '''
import pandas as pd


def mixed(x=0, kind="a", seed=0):
    """Metrics whose types differ between trials and between chunks, failures, tables."""
    if x % 7 == 3:
        raise ValueError(f"x={x} fails")
    if x == 5 and kind == "b":
        return [x]  # not a mapping: bad_result
    out = {"s": kind, "mix": x if seed % 2 else f"v{x}", "mix2": x if x % 2 else f"v{x}", "opt": None}
    out["m"] = x if x % 4 == 0 else x + 0.5  # int64 in some chunks, float64 in others
    if x % 4 == 0:  # the last keys, so that their place does not depend on which chunk ends first
        out["flag"] = True
        out["extra"] = x * 2
        out["steps"] = pd.DataFrame({"tick": range(3), "value": [x * i for i in range(3)]})
    return out
'''

MIXED_YAML = """
name: mixed
seed: 3
retries: 1
runner: {chunk_size: 4}
trial: {_target_: mixedtrials.mixed, x: 0, kind: a}
sweep:
  params:
    trial.x: range(0,12)
    trial.kind: a,b
  replicates: 2
"""


def run_mixed(folder: Path, client) -> dict:
    """Run the mixed sweep in ``folder`` (the working directory); its tables as written."""
    (folder / "mixedtrials.py").write_text(MIXED_PY)
    write_experiment(folder / "conf", "mixed", MIXED_YAML)
    res = daskbench.run("mixed", [], client=client, config_dir="conf", progress="none", echo=lambda *_: None)
    assert res.counts.ok and res.counts.failed
    out = {}
    for name in ("trials", "steps"):
        parts = sorted((folder / "results" / "mixed" / name).glob("part-*.parquet"))
        assert len(parts) == 1, parts  # one flush: one part
        out[name] = pq.read_table(parts[0])
    return out


def _comparable(table: pa.Table, keys) -> pa.Table:
    t = table.sort_by([(k, "ascending") for k in keys])
    cols = {}
    for name in t.column_names:
        if name == "traceback":
            cols[name] = t[name].is_valid()  # whether there is one, not its text
        elif name not in VARYING:
            cols[name] = t[name]
    return pa.table(cols)


@pytest.mark.parametrize("name,keys", [("trials", ["trial_id"]), ("steps", ["trial_id", "tick"])])
def test_columnar_tables_equal_the_row_paths(user_dir, client, name, keys):
    got = run_mixed(user_dir, client)[name]
    want = pq.read_table(DATA / f"columnar_{name}.parquet")
    assert got.schema.names == want.schema.names
    assert [str(t) for t in got.schema.types] == [str(t) for t in want.schema.types]
    assert got.num_rows == want.num_rows
    g, w = _comparable(got, keys), _comparable(want, keys)
    for col in w.column_names:
        assert g[col].to_pylist() == w[col].to_pylist(), col
