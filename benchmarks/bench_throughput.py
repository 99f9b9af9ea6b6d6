"""End-to-end throughput of 5,000 no-op trials: raw ``client.map`` vs ``daskbench.run``.

Both run on the same ``LocalCluster(n_workers=2, threads_per_worker=1,
processes=True)`` bound to 127.0.0.1, with the same trial function
(``experiments.noop.trial``):

(a) baseline: ``client.map(noop, range(N), pure=False)``, one future per trial,
    then ``client.gather`` of all of them (results stay in memory, nothing is
    written);
(b) ``daskbench.run("noop", ["trial.x=range(0,N)"], client=client)``: sweep
    expansion, chunking, result rows written to Parquet in a fresh temp folder.

Each is run 3 times (alternating, after one untimed warm-up of each) and the
median trials/s is reported. Target: daskbench >= 5x the raw client.map.

    .venv/bin/python benchmarks/bench_throughput.py [N]
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
REPEATS = 3
TARGET = 5.0


def raw_map(client, n: int) -> float:
    from experiments.noop import trial as noop

    t0 = time.perf_counter()
    futs = client.map(noop, range(n), pure=False)
    out = client.gather(futs)
    dt = time.perf_counter() - t0
    assert len(out) == n and out[-1] == {"y": n - 1}
    del futs, out
    return dt


def daskbench_run(client, n: int, config_dir: Path, results: Path) -> float:
    import daskbench

    t0 = time.perf_counter()
    res = daskbench.run("noop", [f"trial.x=range(0,{n})", f"results.dir={results}"], client=client,
                        config_dir=str(config_dir), progress="none", echo=lambda s: None)
    dt = time.perf_counter() - t0
    assert res.counts.ok == n and res.exit_code == 0, res.counts
    return dt


def main() -> None:
    from distributed import Client, LocalCluster

    work = C.tmpdir("throughput")
    C.write_noop_experiment(work / "conf", work / "results" / "unused", {})
    raw, db = [], []
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            raw_map(client, 200)  # warm-up: workers import the trial module
            daskbench_run(client, 200, work / "conf", work / "results" / "warm")
            for i in range(REPEATS):
                raw.append(raw_map(client, N))
                db.append(daskbench_run(client, N, work / "conf", work / "results" / f"rep{i}"))
                shutil.rmtree(work / "results" / f"rep{i}", ignore_errors=True)
                print(f"  repeat {i + 1}: client.map {N / raw[-1]:,.0f}/s, daskbench.run {N / db[-1]:,.0f}/s",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    raw_tps, db_tps = N / C.median(raw), N / C.median(db)
    ratio = db_tps / raw_tps
    met = ratio >= TARGET
    print(f"\n{N:,} no-op trials on LocalCluster(2 workers x 1 thread, processes), median of {REPEATS}\n")
    print(C.table([
        ["raw client.map + gather (baseline)", C.median(raw), raw_tps, 1.0],
        ["daskbench.run", C.median(db), db_tps, ratio],
    ], ["method", "seconds", "trials/s", "ratio"]))
    print(f"\nratio daskbench/client.map: {ratio:.1f}x;  target >= {TARGET:g}x: {'MET' if met else 'NOT MET'}\n")
    C.emit("throughput", {
        "trials": N, "repeats": REPEATS,
        "raw_client_map": {"seconds_runs": raw, "seconds": C.median(raw), "trials_per_s": raw_tps},
        "daskbench_run": {"seconds_runs": db, "seconds": C.median(db), "trials_per_s": db_tps},
        "ratio": ratio, "target": f">= {TARGET:g}x", "target_met": met,
        "command": ".venv/bin/python benchmarks/bench_throughput.py",
    })


if __name__ == "__main__":
    main()
