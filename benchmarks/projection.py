"""Projection past this machine: how many workers a sweep keeps busy before the
scheduler (or the driver) saturates, and which chunk size daskbench picks.

Nothing is timed here. The inputs are *measured* by ``bench_scale.py`` (read
from ``results/scale.json``): CPU per task of the scheduler and of the driver,
fitted as ``a + b * chunk_size`` over runs at fixed chunk sizes, and the
scheduler's CPU per raw future. The chunk size is what daskbench's own
``ChunkSizer`` (src/daskbench/runner/chunking.py) returns for a trial length, a number
of worker threads and the trials left. The model (*projected*, not measured):

* a worker thread finishes one chunk every ``k * t`` seconds (``k`` trials of
  ``t`` seconds), so ``W`` threads ask for ``W / (k t)`` tasks per second;
* the scheduler is one thread: it keeps up while ``W / (k t) * (a + b k) < 1``,
  i.e. it keeps at most ``W_s = k t / (a + b k)`` threads busy; the driver,
  also one thread, at most ``W_d = k t / (a_d + b_d k)``;
* one raw future per trial: ``W = t / c_raw``.

It ignores the network (latency hides behind ``max_in_flight = 4 x threads``
queued tasks), the workers' own per-trial cost, and stragglers at the end.

    python -m benchmarks.projection [--smoke|--quick|--full]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402

TRIAL_S = [0.001, 0.01, 0.1, 1.0, 10.0]
WORKERS = [100, 1_000, 10_000]
SWEEPS = [100_000, 1_000_000]


def chunk_size(trial_s: float, threads: int, remaining: int) -> int:
    """What daskbench's ChunkSizer picks once it has measured ``trial_s`` (default runner settings)."""
    from daskbench.runner.chunking import ChunkSizer

    return ChunkSizer(None, mean_s=trial_s).size(remaining, threads)


def capacity(k: int, t: float, per_task_ms: float, per_trial_us: float) -> float:
    """Threads one single-threaded process keeps busy at chunk size ``k``."""
    cost = per_task_ms / 1e3 + per_trial_us / 1e6 * k
    return k * t / cost if cost > 0 else math.inf


def main() -> None:
    mode = C.mode()
    scale = json.loads((C.RESULTS / "scale.json").read_text())
    fit = scale["fixed_chunks"]["fit"]
    s, d = fit["scheduler"], fit["driver"]
    raw_ms = scale["raw_map"]["scheduler_cpu_ms_per_task"]
    print(f"measured (bench_scale --{scale['mode']}, {scale['measured_at']}):")
    print(f"  scheduler: {s['per_task_ms']:.3f} ms per task + {s['per_trial_us']:.2f} us per trial")
    print(f"  driver:    {d['per_task_ms']:.3f} ms per task + {d['per_trial_us']:.2f} us per trial")
    print(f"  one raw future per trial: {raw_ms:.3f} ms of scheduler CPU\n")

    rows: List[List[Any]] = []
    by_length: List[Dict[str, Any]] = []
    for t in TRIAL_S:
        # a long sweep on 100 threads: the spread cap never binds and the task length is
        # runner.target_chunk_seconds (it grows past 250 threads: the table below)
        k = chunk_size(t, 100, 10**12)
        ws, wd = (
            capacity(k, t, s["per_task_ms"], s["per_trial_us"]),
            capacity(k, t, d["per_task_ms"], d["per_trial_us"]),
        )
        wr = t / (raw_ms / 1e3)
        by_length.append(
            {
                "trial_s": t,
                "chunk_size": k,
                "task_s": k * t,
                "workers_scheduler_bound": ws,
                "workers_driver_bound": wd,
                "workers_raw_futures": wr,
            }
        )
        rows.append([_t(t), k, _t(k * t), f"{ws:,.0f}", f"{wd:,.0f}", f"{min(ws, wd):,.0f}", f"{wr:,.0f}"])
    print("threads kept busy before one process saturates (long sweep on 100 threads, default runner settings)\n")
    print(
        C.table(rows, ["trial", "chunk", "task lasts", "scheduler-bound", "driver-bound", "daskbench", "raw futures"])
    )

    picks: List[Dict[str, Any]] = []
    prow: List[List[Any]] = []
    for n in SWEEPS:
        for t in TRIAL_S[:4]:
            row: List[Any] = [f"{n:,}", _t(t)]
            for w in WORKERS:
                k = chunk_size(t, w, n)
                busy = min(
                    w,
                    capacity(k, t, s["per_task_ms"], s["per_trial_us"]),
                    capacity(k, t, d["per_task_ms"], d["per_trial_us"]),
                )
                raw = min(w, t / (raw_ms / 1e3))
                picks.append(
                    {
                        "sweep": n,
                        "trial_s": t,
                        "workers": w,
                        "chunk_size": k,
                        "busy_workers": busy,
                        "utilisation": busy / w,
                        "raw_futures_busy_workers": raw,
                        "raw_futures_utilisation": raw / w,
                    }
                )
                row.append(f"{k:,} ({busy / w:.0%}; raw {raw / w:.0%})")
            prow.append(row)
    print(
        "\nchunk size daskbench picks at the start of a sweep (projected share of workers kept busy;"
        " one raw future per trial)\n"
    )
    print(C.table(prow, ["sweep", "trial", *[f"{w:,} workers" for w in WORKERS]]))
    C.emit(
        "projection",
        {
            "mode": mode,
            "inputs": {
                "scheduler": s,
                "driver": d,
                "raw_future_ms": raw_ms,
                "from": "results/scale.json",
                "scale_measured_at": scale["measured_at"],
            },
            "by_trial_length": by_length,
            "chunk_picks": picks,
            "command": f"python -m benchmarks.projection --{mode}",
        },
    )


def _t(sec: float) -> str:
    return f"{sec * 1e3:g} ms" if sec < 1 else f"{sec:g} s"


if __name__ == "__main__":
    main()
