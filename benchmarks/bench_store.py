"""Writing results: daskbench's ResultStore against one ``pyarrow.parquet.write_table``.

The same rows go two ways, in one process, timed from Python objects to files
on disk:

* ``ResultStore``: the rows arrive the way the runner hands them over (a chunk
  of ``CHUNK`` trial rows at a time, each with its per-step table for the
  ``steps`` dataset), are buffered, written in parts of ``flush_rows`` rows with
  atomic renames, and compacted on close if the parts grew many;
* baseline: all rows at once, ``pa.Table.from_pylist`` (or ``pa.concat_tables``
  for the steps) and a single ``pq.write_table``: the least any tool can do.

Reports rows/s for the ``trials`` dataset and the ``steps`` dataset, the ratio
store/baseline, and how many files the store leaves for a sweep of ``TRIALS``
trials (few large files, not one per trial or chunk). Median of ``REPEATS``.

    python -m benchmarks.bench_store [--smoke|--quick|--full]
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict, List, Tuple

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402

TRIALS = {"smoke": 5_000, "quick": 100_000, "full": 100_000}
#: trials whose per-step tables go to ``steps``, and rows per table
STEP_TRIALS = {"smoke": 200, "quick": 2_000, "full": 10_000}
STEPS = 100
CHUNK = 500  # rows per runner hand-over (a chunk of short trials)
REPEATS = {"smoke": 1, "quick": 3, "full": 3}


def trial_rows(n: int) -> List[Dict[str, Any]]:
    """Rows shaped like the runner's: swept key, a metric, daskbench's own columns."""
    now = datetime.now(UTC)
    return [
        {
            "trial_id": f"{i:016x}",
            "trial.x": i,
            "y": i * 0.5,
            "seed": 12345 + i,
            "replicate": 0,
            "status": "ok",
            "error": None,
            "traceback": None,
            "attempts": 1,
            "worker": "tcp://127.0.0.1:40000",
            "started_at": now,
            "duration_s": 1e-5,
        }
        for i in range(n)
    ]


def step_tables(rows: List[Dict[str, Any]]):
    import pyarrow as pa

    ticks = pa.array(range(STEPS), pa.int64())
    return [
        pa.table(
            {
                "trial_id": pa.array([r["trial_id"]] * STEPS, pa.string()),
                "tick": ticks,
                "value": pa.array([float(t) for t in range(STEPS)]),
            }
        )
        for r in rows
    ]


def via_store(root: Path, rows, tables=None) -> Tuple[float, Dict[str, int]]:
    import pyarrow as pa

    from daskbench.results.store import ResultStore

    t0 = time.perf_counter()
    store = ResultStore(root, first_columns=["trial.x"])
    store.open_for_resume()
    for i in range(0, len(rows), CHUNK):
        extra = {}
        if tables is not None:
            extra = {"steps": pa.concat_tables(tables[i : i + CHUNK])}  # a chunk's tables, as run_chunk merges them
        store.add(rows[i : i + CHUNK], extra)
    store.close()
    dt = time.perf_counter() - t0
    files = {d.name: len(list(d.glob("*.parquet"))) for d in root.iterdir() if d.is_dir()}
    return dt, files


def via_write_table(path: Path, rows, tables=None) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    table = pa.concat_tables(tables) if tables is not None else pa.Table.from_pylist(rows)
    pq.write_table(table, path)
    return time.perf_counter() - t0


def main() -> None:
    import pandas as pd

    import daskbench

    mode = C.mode()
    n, ns, reps = TRIALS[mode], STEP_TRIALS[mode], REPEATS[mode]
    rows = trial_rows(n)
    srows = trial_rows(ns)
    stabs = step_tables(srows)
    work = C.tmpdir("store")
    t_store, t_base, s_store, s_base = [], [], [], []
    files: Dict[str, int] = {}
    try:
        for r in range(reps):  # alternating
            dt, files = via_store(work / f"store{r}", rows)
            t_store.append(dt)
            got = daskbench.load(work / f"store{r}")
            assert len(got) == n and got["trial_id"].is_unique
            t_base.append(via_write_table(work / f"base{r}.parquet", rows))
            assert len(pd.read_parquet(work / f"base{r}.parquet")) == n
            dt, sfiles = via_store(work / f"steps{r}", [dict(x) for x in srows], stabs)
            s_store.append(dt)
            assert len(daskbench.load(work / f"steps{r}", "steps")) == ns * STEPS
            s_base.append(via_write_table(work / f"sbase{r}.parquet", srows, stabs))
            for p in list(work.iterdir()):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ts, tb, ss, sb = (C.median(x) for x in (t_store, t_base, s_store, s_base))
    res = {
        "mode": mode,
        "repeats": reps,
        "chunk_rows": CHUNK,
        "trials": {
            "rows": n,
            "store_s": ts,
            "store_rows_per_s": n / ts,
            "write_table_s": tb,
            "write_table_rows_per_s": n / tb,
            "ratio": tb / ts,
            "files": files.get("trials"),
            "store_runs": t_store,
            "write_table_runs": t_base,
        },
        "steps": {
            "trials": ns,
            "rows": ns * STEPS,
            "store_s": ss,
            "store_rows_per_s": ns * STEPS / ss,
            "write_table_s": sb,
            "write_table_rows_per_s": ns * STEPS / sb,
            "ratio": sb / ss,
            "files": sfiles,
            "store_runs": s_store,
            "write_table_runs": s_base,
        },
        "command": f"python -m benchmarks.bench_store --{mode}",
    }
    print(f"\nResults writing, median of {reps} (store: chunks of {CHUNK} rows, as the runner hands them over)\n")
    print(
        C.table(
            [
                [f"trials: ResultStore, {n:,} rows", ts, n / ts, tb / ts, files.get("trials")],
                ["trials: one pq.write_table (baseline)", tb, n / tb, 1.0, 1],
                [
                    f"steps: ResultStore, {ns:,} trials x {STEPS} rows",
                    ss,
                    ns * STEPS / ss,
                    sb / ss,
                    sfiles.get("steps"),
                ],
                ["steps: one pq.write_table (baseline)", sb, ns * STEPS / sb, 1.0, 1],
            ],
            ["what", "seconds", "rows/s", "ratio vs write_table", "parquet files"],
        )
    )
    print(f"\n{n:,}-trial sweep leaves {files.get('trials')} Parquet file(s) in trials/\n")
    C.emit("store", res)


if __name__ == "__main__":
    main()
