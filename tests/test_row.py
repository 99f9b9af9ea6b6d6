"""The trials row: its declared columns, their order and types, in a real sweep's table."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import daskbench
from daskbench.results import row
from daskbench.results.row import FailureKind, Status
from daskbench.results.store import rows_to_table
from tests.conftest import write_experiment

MIXED_PY = """
def mixed(x=0, label="a", offset=0.0, seed=0):
    if x == 2 and label == "b":
        raise ValueError("two b")
    out = {"f": x + offset + seed % 3, "n": x * 2, "even": x % 2 == 0, "tag": f"{label}{x}",
           "mixedtype": x if x else "zero"}
    if x == 0:
        out["extra"] = 0.5  # a metric only some trials return
    return out
"""

#: the table of the mixed sweep below, column by column: trial_id, the swept keys in
#: the sweep's order (values first, then the group), the metrics, the fixed tail
MIXED_SCHEMA = [
    ("trial_id", "string"),
    ("trial.x", "int64"),
    ("trial.label", "string"),
    ("model", "string"),
    ("f", "double"),
    ("n", "int64"),
    ("even", "bool"),
    ("tag", "string"),
    ("mixedtype", "string"),  # an int in some rows, text in others: kept readable as text
    ("extra", "double"),
    ("seed", "int64"),
    ("replicate", "int64"),
    ("status", "string"),
    ("error", "string"),
    ("failure_kind", "string"),
    ("attempts", "int64"),
    ("worker", "string"),
    ("started_at", "timestamp[us, tz=UTC]"),
    ("duration_s", "double"),
    ("code_version", "string"),
    ("traceback", "string"),
]


def test_a_mixed_sweeps_table_has_the_declared_columns_in_order_with_their_types(user_dir, client):
    (user_dir / "rowtrials.py").write_text(MIXED_PY)
    conf = user_dir / "conf"
    (conf / "model").mkdir()
    (conf / "model" / "flat.yaml").write_text("offset: 0.0\n")
    (conf / "model" / "raised.yaml").write_text("offset: 100.0\n")
    write_experiment(
        conf,
        "mix",
        """
        defaults:
          - /model: flat
        name: mix
        seed: 3
        trial: {_target_: rowtrials.mixed, x: 0, label: a, offset: '${model.offset}'}
        sweep: {params: {trial.x: '0,1,2', trial.label: 'a,b'}, replicates: 2}
    """,
    )
    res = daskbench.run(
        "mix", ["model=flat,raised"], client=client, config_dir="conf", progress="none", echo=lambda *_: None
    )
    assert res.counts.ok == 20 and res.counts.failed == 4
    table = pq.read_table(user_dir / "results/mix/trials")
    assert [(f.name, str(f.type)) for f in table.schema] == MIXED_SCHEMA
    df = table.to_pandas()
    failed = df[df.status == "failed"]
    assert set(failed["trial.x"]) == {2} and set(failed["trial.label"]) == {"b"}
    assert (failed.failure_kind == "raised").all()
    assert failed.error.str.contains("ValueError('two b')", regex=False).all()  # via Hydra's call: interpolated config
    ok = df[df.status == "ok"]
    assert ok.failure_kind.isna().all() and ok.error.isna().all()
    assert ok.extra.notna().sum() == 8  # x == 0: 2 labels x 2 models x 2 replicates


def test_every_column_daskbench_writes_is_declared_once_and_reserved():
    names = [c.name for c in row.HEAD + row.TAIL]
    assert len(names) == len(set(names))
    assert row.RESERVED == frozenset(names)
    assert {"trial_id", "seed", "status", "error", "attempts", "worker", "started_at", "duration_s"} <= row.RESERVED
    assert all(row.arrow_type(n) is not None for n in names)
    assert row.arrow_type("trial.x") is None and row.arrow_type("some_metric") is None
    assert row.STATUSES == ("ok", "failed", "timeout", "cancelled", "pruned")  # pruned: adaptive search


def test_order_puts_trial_id_then_swept_keys_then_metrics_then_the_tail():
    keys = ["status", "m2", "seed", "trial_id", "trial.b", "m1", "traceback", "worker"]
    assert row.order(keys, first=["trial.a", "trial.b"]) == [
        "trial_id",
        "trial.a",
        "trial.b",
        "m2",
        "m1",
        "seed",
        "status",
        "worker",
        "traceback",
    ]


def test_rows_built_here_become_a_typed_table():
    ok = row.started("a", 7, 0, "tcp://w:1")
    row.set_ok(ok, {"y": 1.5})
    ok.update(attempts=1, started_at=None, duration_s=0.1)
    bad = row.started("b", None, 1, "tcp://w:1")
    row.set_failed(bad, Status.TIMEOUT, FailureKind.TIMEOUT, "TrialTimeout: too long")
    lost = row.ended("c", 3, 0, 4, Status.FAILED, FailureKind.WORKER_LOST, "KilledWorker: ...")
    t = rows_to_table([ok, bad, lost])
    assert t.column_names == [
        "trial_id",
        "y",
        "seed",
        "replicate",
        "status",
        "error",
        "failure_kind",
        "attempts",
        "worker",
        "started_at",
        "duration_s",
        "traceback",
    ]
    assert t["status"].to_pylist() == ["ok", "timeout", "failed"]
    assert t["failure_kind"].to_pylist() == [None, "timeout", "worker_lost"]
    assert t.schema.field("failure_kind").type == pa.string() and t.schema.field("attempts").type == pa.int64()
    assert [row.kind_of(r) for r in (ok, bad, lost)] == [None, FailureKind.TIMEOUT, FailureKind.WORKER_LOST]


@pytest.mark.parametrize(
    "exc, kind", [(ValueError("x"), FailureKind.RAISED), (MemoryError(), FailureKind.OUT_OF_MEMORY)]
)
def test_the_kind_of_an_exception(exc, kind):
    assert row.kind_of_exception(exc) is kind
