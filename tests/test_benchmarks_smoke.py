"""The benchmark suite still runs: ``python -m benchmarks --smoke`` on the smallest sizes.

Checks that every benchmark wrote its JSON with the expected keys and sane
values (counts add up, ratios and rates positive, per-trial curves present).
Never a timing threshold: figures on a shared machine are noise to a test.
Baselines whose packages are missing (Mesa, Hydra's joblib launcher) are
skipped by the suite with a reason, which is checked instead.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    results = tmp_path_factory.mktemp("bench-results")  # never overwrite a developer's own figures
    t0 = time.time()
    env = dict(os.environ, DASKBENCH_BENCH_RESULTS=str(results))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=280, env=env
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "=== summary" in proc.stdout

    def load(name: str) -> dict:
        path = results / f"{name}.json"
        assert path.exists(), f"{name}.json not written"
        assert path.stat().st_mtime >= t0 - 1, f"{name}.json is stale"
        data = json.loads(path.read_text())
        assert data["benchmark"] == name and data["machine"]["cores"] >= 1 and data["src_sha256"]
        return data

    return load, proc.stdout


def test_summary(smoke):
    load, out = smoke
    s = load("summary")
    assert s["mode"] == "smoke" and s["failed"] == []
    assert {
        "expand",
        "throughput",
        "hydra",
        "launcher",
        "optuna",
        "scale",
        "projection",
        "million",
        "store",
        "sim",
    } <= set(s["benchmarks"])
    sim = s["benchmarks"]["sim"]
    if not (ROOT / "benchmarks" / "bench_sim.py").exists():
        assert sim["status"] == "not available"
    for row in s["rows"]:
        assert set(row) == {"benchmark", "measure", "daskbench", "baseline", "ratio", "target / met"}


def test_throughput(smoke):
    r = smoke[0]("throughput")
    assert r["mode"] == "smoke" and r["cells"]
    for cell in r["cells"]:
        db = cell["tools"]["daskbench"]
        assert _positive(db["trials_per_s"]) and db["repeats"] >= 1
        for tool in ("dask_map", "dask_chunks", "joblib", "process_pool"):
            v = cell["tools"][tool]
            assert "skipped" in v or (_positive(v["seconds"]) and _positive(v["speedup_vs_dask_map"])), v
        if cell["trial_ms"]:
            # every trial burnt its CPU time and reported it; efficiency is a fraction of the cores
            assert db["cpu_s"] >= cell["trials"] * cell["trial_ms"] / 1000 * 0.99
            assert 0 < db["efficiency"] <= 1.05
    for cell in r["mesa"]:
        b = cell["tools"]["mesa_batch_run"]
        assert "skipped" in b or _positive(b["trials_per_s"])


def test_hydra(smoke):
    r = smoke[0]("hydra")
    noop = r["lengths"][0]
    assert noop["trial_ms"] == 0 and _positive(noop["daskbench_cli"]["seconds"])
    hy = noop["hydra_joblib"]
    assert "skipped" in hy or (_positive(hy["seconds"]) and _positive(r["ratio"]))


def test_optuna(smoke):
    r = smoke[0]("optuna")
    assert [o["sampler"] for o in r["overhead"]] == ["random", "tpe"]
    assert all(_positive(o["ask_tell_ms"]) and _positive(o["per_trial_ms"]) for o in r["overhead"])
    b = r["busy"]
    assert b["ok"] == b["trials"] and 0 < b["busy_fraction"] <= 1.05
    h = r["hydra"]
    assert _positive(h["daskbench_s"]) and math.isfinite(h["daskbench_best"])
    if os.environ.get("DASKBENCH_HYDRA_OPTUNA_PYTHON"):
        assert _positive(h["hydra_s"]) and math.isfinite(h["hydra_best"])
    else:  # Hydra's optuna sweeper needs optuna < 3: skipped with the reason
        assert h["hydra"].startswith("skipped: no --hydra-python") and "hydra_s" not in h


def test_scale(smoke):
    r = smoke[0]("scale")
    assert len(r["runs"]) == len(r["sizes"]) >= 2
    for run, n in zip(r["runs"], r["sizes"]):
        assert run["trials"] == n and 1 <= run["chunks"] <= n
        assert _positive(run["driver_peak_rss_mib"]) and _positive(run["scheduler_peak_rss_mib"])
        assert run["parquet_files"] >= 1
    for key in ("expand_s", "submit_s", "wall_s", "scheduler_cpu_s"):
        assert len(r["per_trial"][key]) == len(r["sizes"])
    assert isinstance(r["growing"], list) and _positive(r["raw_map"]["tasks_per_s"])
    assert {"scheduler", "driver"} <= set(r["fixed_chunks"]["fit"])
    p = smoke[0]("projection")
    assert p["by_trial_length"] and all(c["chunk_size"] >= 1 for c in p["chunk_picks"])


def test_store_and_expand_and_million(smoke):
    load = smoke[0]
    st = load("store")
    assert st["trials"]["files"] >= 1 and _positive(st["trials"]["store_rows_per_s"])
    assert st["steps"]["rows"] == st["steps"]["trials"] * 100 and _positive(st["steps"]["ratio"])
    ex = load("expand")
    assert _positive(ex["us_per_trial"]) and _positive(ex["ratio"])
    mi = load("million")
    assert mi["daskbench_run"]["ok"] == mi["trials"] == mi["daskbench_run"]["rows_on_disk"]


def test_sim(smoke):
    load, _ = smoke
    r = load("sim")
    assert r["mode"] == "smoke"
    assert all(_positive(r["tick_overhead"][f"{s}_shards_ms"]) for s in (1, 2, 4))
    for n, s in r["speedup"].items():
        if n != "took_s":
            assert _positive(s["tick_ms_1_shard"]) and _positive(s["tick_ms_2_shards"]) and _positive(s["step_speedup"])
    assert _positive(r["machine_ceiling"]["ceiling"])
    assert r["transport"] == "socket"  # the shipped default measured throughout
    assert all(
        _positive(r["transports"][t][k]) for t in ("socket", "comm") for k in ("idle_tick_ms", "boltzmann_tick_ms")
    )
    vm = r["vs_mesa"]
    assert "skipped" in vm or (_positive(vm["ratio_actor"]) and _positive(vm["mesa_agent_steps_per_s"]))
    for k in ("2_shards", "4_shards"):  # deterministic: community placement cuts far fewer messages
        assert (
            r["placement"][k]["community"]["cross_shard_fraction"]
            < r["placement"][k]["round_robin"]["cross_shard_fraction"]
        )


def _script(tmp_path, *args: str) -> dict:
    """Run one benchmark script on tiny sizes; its JSON (the last line of stdout)."""
    env = dict(os.environ, DASKBENCH_BENCH_RESULTS=str(tmp_path))
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_profile_shard(tmp_path):
    """The in-process comparison of a 2-shard run's shard with the plain model runs and reports
    its parts (the shard cuts messages by destination shard; the plain model has none to cut)."""
    r = _script(tmp_path, "benchmarks/profile_shard.py", "--agents", "2000", "--ticks", "4")
    assert r["benchmark"] == "profile_shard" and r["agents_per_shard"] == 2000
    assert _positive(r["shard_cpu_ms"]) and _positive(r["plain_cpu_ms"]) and _positive(r["ratio"])
    parts = r["parts_cpu_ms"]
    assert {"shard: model step", "plain: model step", "shard: Outbox.split", "shard: Inbox.count"} <= set(parts)
    assert _positive(parts["shard: Shard.settle (own part)"])


def test_bench_sim_million(tmp_path):
    """``bench_sim.py --million``: 1 and 2 shards beside the 2-process ceiling, per repeat."""
    r = _script(tmp_path, "benchmarks/bench_sim.py", "--million", "--smoke")
    m = r["million"]
    assert r["benchmark"] == "sim_million" and m["agents"] == 20_000 and len(m["share_per_repeat"]) == 1
    assert all(_positive(m[k]) for k in ("tick_ms_1_shard", "tick_ms_2_shards", "ceiling", "share_of_ceiling"))


def test_bench_idle(tmp_path):
    """``bench_idle.py``: the shipped ``cluster.dask_config`` beside Dask's own, and the floor."""
    r = _script(tmp_path, "benchmarks/bench_idle.py", "--smoke")
    assert r["benchmark"] == "idle" and r["repeats"] == 1
    for name in ("daskbench", "dask"):
        assert all(_positive(r[name][k]) for k in ("worker_idle_ms_per_s", "scheduler_idle_ms_per_s"))
        assert r[name]["trial_wall_over_cpu"] >= 1.0
    assert _positive(r["floor"])


def test_throughput_on_the_quietest_cluster_with_an_override(tmp_path):
    """``bench_throughput --cluster=quietest`` (Dask's background at its least) with an
    override for every daskbench run still runs, and a bad override stops it."""
    args = ["benchmarks/bench_throughput.py", "--smoke", "--cluster=quietest", "--tools=daskbench,dask_chunks"]
    r = _script(tmp_path, *args, "--override=runner.chunk_size=4")
    assert r["cluster"] == "quietest" and r["overrides"] == ["runner.chunk_size=4"]
    assert r["cells"] and all(_positive(c["tools"]["daskbench"]["trials_per_s"]) for c in r["cells"])
    bad = subprocess.run(
        [sys.executable, *args, "--override=runner.chunk_size=0"], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert bad.returncode != 0 and "runner.chunk_size" in bad.stdout + bad.stderr
