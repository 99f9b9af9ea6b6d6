"""What Dask's background costs the trials: daskbench's cluster with its ``cluster.dask_config``
(the quieter profiler and event-loop check) against the same cluster with Dask's own settings.

For each setting, a LocalCluster made as daskbench makes its own (``cluster.create.connect``:
fork-server workers, the scheduler in a process of its own) with 2 one-thread workers:

* **idle CPU**: the CPU each worker process and the scheduler's process spend in
  ``SECONDS`` with no task (``getrusage``, read in each process);
* **a trial's wall time**: each worker runs 100 trials of 1 ms of its thread's CPU
  (:func:`benchmarks.workloads.busy`), both at once, as a sweep keeps both cores busy;
  the wall time per trial over the CPU it burns is how much the rest of the machine
  (each worker's own event loop and profiler, the scheduler) took from it. The same loop
  in two bare processes is the floor.

The two settings alternate ``--repeats`` times; medians are kept.

    python benchmarks/bench_idle.py [--smoke|--quick|--full] [--repeats=N]
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402
from benchmarks.workloads import busy  # noqa: E402

SECONDS = {"smoke": 1.0, "quick": 4.0, "full": 8.0}
REPEATS = {"smoke": 1, "quick": 3, "full": 5}
TRIALS = 100  # per worker, per round
ROUNDS = {"smoke": 2, "quick": 6, "full": 10}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _trials(n: int) -> Tuple[float, float]:
    """(wall, thread CPU) of ``n`` one-millisecond trials in a row."""
    t0, c0 = time.perf_counter(), time.thread_time()
    for i in range(n):
        busy(1.0, i)
    return time.perf_counter() - t0, time.thread_time() - c0


def _measure(dask_config: Optional[Dict[str, Any]], seconds: float, rounds: int) -> Dict[str, float]:
    from daskbench.cluster.create import connect
    from daskbench.config.schema import LocalClusterConfig

    cfg = LocalClusterConfig(n_workers=2, dashboard_address="127.0.0.1:0", dask_config=dask_config)
    with connect(cfg) as client:
        client.gather(client.map(_trials, [10, 10], pure=False))  # imports, first connections
        time.sleep(1.0)
        w0, s0 = client.run(_cpu_s), client.run_on_scheduler(_cpu_s)
        time.sleep(seconds)
        w1, s1 = client.run(_cpu_s), client.run_on_scheduler(_cpu_s)
        ratios: List[float] = []
        for _ in range(rounds):
            for wall, cpu in client.gather(client.map(_trials, [TRIALS, TRIALS], pure=False)):
                ratios.append(wall / cpu)
    return {
        "worker_idle_ms_per_s": C.median([(w1[k] - w0[k]) * 1000 / seconds for k in w1]),
        "scheduler_idle_ms_per_s": (s1 - s0) * 1000 / seconds,
        "trial_wall_over_cpu": C.median(ratios),
    }


def _floor(rounds: int) -> float:
    """The same trials in two bare processes (no Dask): the wall over CPU nothing takes from."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_trials, [10, 10])
        ratios = [w / c for _ in range(rounds) for w, c in pool.map(_trials, [TRIALS, TRIALS])]
    return C.median(ratios)


def main() -> None:
    mode = C.mode()
    repeats = int(next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--repeats=")), REPEATS[mode]))
    from daskbench.config.dask_settings import QUIET_DASK

    settings = {"daskbench": QUIET_DASK, "dask": None}
    runs: Dict[str, List[Dict[str, float]]] = {k: [] for k in settings}
    for _ in range(repeats):
        for name, cfg in settings.items():
            runs[name].append(_measure(cfg, SECONDS[mode], ROUNDS[mode]))
    floor = _floor(ROUNDS[mode])
    out: Dict[str, Any] = {"mode": mode, "repeats": repeats, "seconds_idle": SECONDS[mode], "floor": floor}
    rows = []
    for name in settings:
        med = {k: C.median([r[k] for r in runs[name]]) for k in runs[name][0]}
        out[name] = dict(med, runs=runs[name])
        rows.append(
            [
                "cluster.dask_config (shipped)" if name == "daskbench" else "cluster.dask_config=null (Dask's)",
                f"{med['worker_idle_ms_per_s']:.1f}",
                f"{med['scheduler_idle_ms_per_s']:.1f}",
                f"{med['trial_wall_over_cpu']:.3f}",
            ]
        )
    rows.append(["two bare processes (floor)", "-", "-", f"{floor:.3f}"])
    print(f"Dask's background on a 2-worker daskbench LocalCluster, {C.cores()} cores; median of {repeats}")
    print(C.table(rows, ["settings", "idle worker ms/s", "idle scheduler ms/s", "1 ms trial: wall/CPU"]))
    out["command"] = "python benchmarks/bench_idle.py " + " ".join(a for a in sys.argv[1:])
    C.emit("idle", out)


if __name__ == "__main__":
    main()
