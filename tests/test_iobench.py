"""iobench: the storage benchmark experiment, on a real 2-worker LocalCluster and in-process."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

import daskbench
from daskbench.experiments import iobench

OPS = ["write", "read", "list", "delete"]


def _run(client, tmp_path: Path, *overrides: str):
    return daskbench.run(
        "iobench",
        [f"results.dir={tmp_path / 'results'}", *overrides],
        client=client,
        progress="none",
        echo=lambda *a, **k: None,
    )


def _listing(path: Path) -> set:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Where the agents work, with a file of someone else's in it that must survive."""
    d = tmp_path / "data"
    (d / "keep").mkdir(parents=True)
    (d / "keep" / "mine.txt").write_text("not iobench's")
    (d / "other.bin").write_bytes(b"x" * 10)
    return d


def test_sweep_on_two_workers(client, tmp_path, data_dir):
    before = _listing(data_dir)
    result = _run(
        client,
        tmp_path,
        f"trial.path={data_dir}",
        "trial.duration_s=1",
        "trial.concurrency=1,2",
        "trial.start_delay_s=0.2",
        "trial.report_interval_s=0.5",
    )
    assert result.exit_code == 0, result.load()[["status", "error"]]
    trials = result.load()
    assert len(trials) == 2 and set(trials.status) == {"ok"}
    assert sorted(trials["trial.concurrency"]) == [1, 2]
    for col in [
        "ops_s",
        "MB_s",
        "write_p99_ms",
        "read_p99_ms",
        "write_p50_ms",
        "read_p50_ms",
        "n_workers",
        "errors",
        "write_ops_s",
        "read_ops_s",
        "write_MB_s",
        "read_MB_s",
    ]:
        assert col in trials.columns, col
    assert (trials.n_workers == 2).all() and (trials.errors == 0).all()
    assert (trials.ops_s > 0).all() and (trials.MB_s > 0).all()
    assert (trials.write_p99_ms >= trials.write_p50_ms).all() and (trials.read_p99_ms >= trials.read_p50_ms).all()
    assert (trials.cleanup_problems == 0).all()

    workers = result.load("workers")
    addresses = set(client.scheduler_info(n_workers=-1)["workers"])
    assert set(workers.worker) == addresses  # both workers ran an agent
    assert len(workers) == 2 * 2 * 4  # trials x workers x operations
    for (tid, worker), g in workers.groupby(["trial_id", "worker"]):
        assert sorted(g.op) == sorted(OPS)
    assert (workers.ops > 0).all() and (workers.errors == 0).all()
    assert (workers.lat_p99_ms >= workers.lat_p50_ms).all()
    assert (workers.lat_p90_ms >= workers.lat_p50_ms).all()
    assert (workers.lat_max_ms >= workers.lat_p99_ms).all() and (workers.lat_p50_ms > 0).all()
    io = workers[workers.op.isin(["write", "read"])]
    assert (io.bytes > 0).all() and (io.MB_s > 0).all()
    assert (workers.elapsed_s > 0.9).all() and (workers.elapsed_s < 5).all()
    # the per-worker rows add up to the trial's totals
    summed = workers.groupby("trial_id").ops.sum()
    assert trials.set_index("trial_id").ops.to_dict() == summed.to_dict()

    timeline = result.load("timeline")
    assert set(timeline.worker) == addresses
    assert set(timeline.second) == {0}  # duration_s=1: one second per worker and trial
    assert len(timeline) == 2 * 2 and (timeline.ops > 0).all()
    ops_cols = [f"{op}_ops" for op in OPS]
    assert (timeline[ops_cols].sum(axis=1) == timeline.ops).all()

    assert _listing(data_dir) == before  # the benchmark directories are gone, the rest untouched


def test_bad_path_and_resource_fail_their_trials_only(client, tmp_path, data_dir):
    missing = tmp_path / "no-such-dir"
    before = _listing(data_dir)
    result = _run(
        client,
        tmp_path,
        f"trial.path={data_dir},{missing}",
        "trial.resource=null,NVME_NOPE",
        "trial.duration_s=0.3",
        "trial.concurrency=1",
        "trial.start_delay_s=0.1",
    )
    assert result.exit_code == 1
    trials = result.load()
    assert len(trials) == 4  # the sweep went on past the failures
    ok = trials[trials.status == "ok"]
    assert len(ok) == 1 and ok["trial.path"].iloc[0] == str(data_dir) and ok["trial.resource"].isna().all()
    bad_path = trials[(trials["trial.path"] == str(missing)) & trials["trial.resource"].isna()]
    assert list(bad_path.status) == ["failed"]
    err = bad_path.error.iloc[0]
    assert err.startswith("FileNotFoundError") and str(missing) in err and "does not exist" in err
    bad_res = trials[trials["trial.resource"] == "NVME_NOPE"]
    assert list(bad_res.status) == ["failed", "failed"]
    for err in bad_res.error:
        assert "no worker advertises resource 'NVME_NOPE'" in err
    assert _listing(data_dir) == before


def test_timeout_s_is_refused_clearly(client, tmp_path, data_dir):
    result = _run(
        client, tmp_path, f"trial.path={data_dir}", "trial.duration_s=0.3", "trial.concurrency=1", "timeout_s=60"
    )
    trials = result.load()
    assert list(trials.status) == ["failed"]
    assert "timeout_s" in trials.error.iloc[0] and "secede" in trials.error.iloc[0]


# ---------------------------------------------------------------- in-process, no cluster


def test_in_process_trial_and_cleanup(tmp_path):
    out = iobench.trial(
        duration_s=0.3, concurrency=2, sizes=["1k", "4KiB"], path=str(tmp_path), start_delay_s=0, seed=3
    )
    assert out["n_workers"] == 1 and out["ops"] > 0 and out["errors"] == 0
    assert set(out["workers"].op) == set(OPS) and set(out["workers"].worker) == {"local"}
    assert list(tmp_path.iterdir()) == []


def test_cleanup_on_error_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "precious").write_text("keep me")

    def boom(self):
        raise RuntimeError("boom in list")

    monkeypatch.setattr(iobench._Agent, "_list", boom)
    with pytest.raises(RuntimeError, match="boom in list"):
        iobench.trial(duration_s=2, concurrency=2, mix={"list": 1, "write": 1}, path=str(tmp_path), start_delay_s=0)
    assert [p.name for p in tmp_path.iterdir()] == ["precious"]


def test_workspace_refuses_outside_and_foreign_files(tmp_path):
    ws = iobench.Workspace(str(tmp_path), "w1", "tid")
    assert Path(ws.dir).parent == tmp_path and ws.name.startswith("daskbench-iobench-tid-w1-")
    for name in ["../x", "..", "a/b", ""]:
        with pytest.raises(iobench.IOBenchError):
            ws.path(name)
    Path(ws.path("foreign")).write_text("someone else's")
    with pytest.raises(iobench.IOBenchError, match="not created by this run"):
        ws.delete("foreign")
    problems = ws.remove()  # the foreign file stays, and so does the directory around it
    assert problems and (Path(ws.dir) / "foreign").exists()


def test_bad_paths_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such"):
        iobench.Workspace(str(tmp_path / "no-such"), "w", "t")
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        iobench.Workspace(str(f), "w", "t")
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="not writable"):
            iobench.Workspace(str(ro), "w", "t")


def test_seeded_mix_is_reproducible_and_weighted():
    s = iobench.make_settings(
        mix={"write": 0.4, "read": 0.4, "list": 0.1, "delete": 0.1}, sizes=[4096, "64k"], size_weights=[3, 1]
    )
    a = iobench.OpChooser(s, seed=11, agent=0, thread=0)
    b = iobench.OpChooser(s, seed=11, agent=0, thread=0)
    seq_a = [a.op() for _ in range(20000)]
    assert seq_a == [b.op() for _ in range(20000)]
    c = iobench.OpChooser(s, seed=11, agent=1, thread=0)
    assert [c.op() for _ in range(200)] != seq_a[:200]
    share = {op: seq_a.count(op) / len(seq_a) for op in OPS}
    assert share == pytest.approx({"write": 0.4, "read": 0.4, "list": 0.1, "delete": 0.1}, abs=0.02)
    sizes = [a.size() for _ in range(8000)]
    assert set(sizes) == {4096, 65536} and sizes.count(4096) / len(sizes) == pytest.approx(0.75, abs=0.03)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mix": {"wrte": 1}}, "unknown operation"),
        ({"mix": {"write": 0, "read": 0}}, "all zero"),
        ({"sizes": []}, "trial.sizes is empty"),
        ({"sizes": ["4 parsecs"]}, "not a size"),
        ({"sizes": [4096], "size_weights": [1, 2]}, "one weight per size"),
        ({"concurrency": 0}, "trial.concurrency"),
        ({"duration_s": 0}, "trial.duration_s"),
    ],
)
def test_settings_errors_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        iobench.make_settings(**kwargs)


def test_select_workers_by_resource():
    info = {"tcp://b:1": {"resources": {"SSD": 1}}, "tcp://a:1": {"resources": {}}, "tcp://c:1": {}}
    assert iobench.select_workers(info) == ["tcp://a:1", "tcp://b:1", "tcp://c:1"]
    assert iobench.select_workers(info, "SSD") == ["tcp://b:1"]
    with pytest.raises(iobench.IOBenchError, match=r"no worker advertises resource 'HDD'.*\['SSD'\]"):
        iobench.select_workers(info, "HDD")


def test_histogram_percentiles():
    h = iobench.LatencyHistogram()
    for i in range(1, 1001):
        h.record(i * 1e-4)  # 0.1 ms .. 100 ms
    assert h.percentile(50) == pytest.approx(0.05, rel=0.01)
    assert h.percentile(99) == pytest.approx(0.099, rel=0.01)
    assert h.max == pytest.approx(0.1) and h.percentile(100) <= h.max
    g = iobench.LatencyHistogram.from_dict(h.to_dict())
    assert g.percentile(90) == h.percentile(90) and g.n == 1000
    assert math.isnan(iobench.LatencyHistogram().percentile(50))
