"""Trial throughput and parallel efficiency: daskbench against the pools users would otherwise pick.

Every tool runs the same CPU busy-loop trial (:func:`benchmarks.workloads.busy`:
no-op, 1, 10 or 100 ms of CPU) over sweeps of 200, 5,000 and 100,000 trials, in
one process, on pools that are started (and warmed up) before the clock starts,
so the figures compare the cost of running trials, not of starting pools
(``bench_hydra.py`` times whole command-line runs, start-up included):

* ``daskbench``: ``daskbench.run(...)`` with a ``Client`` on a
  ``LocalCluster(n_workers=cores, threads_per_worker=1)``; it also writes every
  row to Parquet;
* ``dask_map``: one raw Dask future per trial (``client.map`` + ``gather``) on the
  same cluster: the baseline every ratio is taken against;
* ``dask_chunks``: the trials batched by hand into 4 chunks per worker thread, one
  raw future per chunk (one ``client.map``, one ``gather``), on the same cluster: about
  the least any runner on Dask pays for a small sweep, so the gap between it and
  ``joblib`` is Dask's own (its scheduler, its round trips, its idle workers' CPU);
* ``joblib``: ``joblib.Parallel(n_jobs=cores, backend="loky")``, automatic batching;
* ``process_pool``: ``concurrent.futures.ProcessPoolExecutor(cores).map`` with its
  default ``chunksize=1`` (what a user gets without tuning).

A Mesa model (the tutorial's Boltzmann wealth model, ~8 ms a run) is run through
``mesa.batch_run(number_processes=cores)`` and through ``daskbench.run``.

Parallel efficiency = the trials' own CPU time (summed from what each trial
reports) / (wall clock x cores). Each tool-and-size runs ``repeats`` times,
interleaved with the other tools, and the median is kept. A combination whose
estimated wall time exceeds ``MAX_EST_S`` is skipped and listed with its estimate.

    python -m benchmarks.bench_throughput [--smoke|--quick|--full] [--cells=100000x0,5000x1] [--tools=daskbench,joblib]
        [--cluster=dask|daskbench|quietest] [--repeats=N] [--override=KEY=VALUE ...]

``--override=KEY=VALUE`` (repeatable) adds a Hydra override to every daskbench run, e.g.
``--override=runner.chunk_size=64`` to fix the trials a task holds (what a task costs).
``--cells=NxMS,...`` runs only those cells (``N`` trials of ``MS`` ms; no Mesa),
with ``--full``'s limits unless a mode is given; ``--tools`` only those tools.
``--cluster=daskbench``: the Dask tools share a LocalCluster made as daskbench makes its
own (``cluster.create.connect`` with the shipped ``cluster`` settings: fork-server workers,
the scheduler in a process of its own, ``cluster.dask_config``) instead of a plain
``distributed.LocalCluster`` with Dask's settings and its scheduler in this process (the
default: a user's own cluster, passed as ``client=``). ``--cluster=quietest``: the same, with
every periodic piece of Dask's background that a setting slows or stops slowed or stopped as
well (:data:`QUIETEST`: the memory monitors, the system monitor, the profiler, the event-loop
check): not a setting to ship (it blanks dashboard plots and slows the memory limits'
response), but the least a Dask-based runner's processes take from the trials here.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402
from benchmarks.workloads import busy  # noqa: E402

SIZES = {"smoke": [20], "quick": [200, 5000], "full": [200, 5000, 100_000]}
LENGTHS_MS = {"smoke": [0, 1], "quick": [0, 1, 10], "full": [0, 1, 10, 100]}
#: skip a tool-and-size whose estimated wall time exceeds this (seconds)
MAX_EST_S = {"smoke": 5, "quick": 15, "full": 150}
#: repeats; cells estimated above LONG_S run once
REPEATS = {"smoke": 1, "quick": 3, "full": 3}
LONG_S = 30.0
#: rough per-trial overhead (s) of each tool on 2 cores, only to decide what to skip
OVERHEAD_S = {
    "daskbench": 5e-5,
    "dask_map": 2.5e-3,
    "dask_chunks": 5e-5,
    "joblib": 3e-4,
    "process_pool": 2e-4,
    "mesa_batch_run": 3e-4,
    "daskbench_mesa": 5e-5,
}
MESA = {
    "smoke": {"trials": [20], "n": 20, "steps": 20},
    "quick": {"trials": [200], "n": 100, "steps": 100},
    "full": {"trials": [200, 5000], "n": 100, "steps": 100},
}
MESA_TRIAL_S = 0.008  # measured: one run of the n=100, 100-step model


#: ``--cluster=quietest``: Dask's settings on top of ``cluster.dask_config`` that slow or stop
#: each periodic task of its processes' event loops
QUIETEST: Dict[str, Any] = {
    "distributed.worker.memory.monitor-interval": "1s",  # the workers' and the nannies' memory checks
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.profile.enabled": False,
}

#: which cluster the Dask tools share (``--cluster=``): dask (a plain LocalCluster) | daskbench | quietest
CLUSTER = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--cluster=")), "dask")
#: ``--repeats=N``: that many runs of each cell and tool instead of the mode's
_REPEATS_OPT = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--repeats=")), "")
#: ``--override=KEY=VALUE``: Hydra overrides added to every daskbench run
OVERRIDES = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--override=")]
if _REPEATS_OPT:
    REPEATS = {m: int(_REPEATS_OPT) for m in REPEATS}


class Tools:
    """The pools, started once; each ``run_*`` returns (wall seconds, sum of trial CPU seconds)."""

    def __init__(self, work: Path, cores: int):
        from distributed import Client

        self.work, self.cores = work, cores
        self._own: Any = None
        self.cluster: Any = None
        if CLUSTER in ("daskbench", "quietest"):
            from daskbench.cluster.create import connect
            from daskbench.config.dask_settings import flat_dask_config
            from daskbench.config.schema import LocalClusterConfig

            cfg = LocalClusterConfig(n_workers=cores, dashboard_address="127.0.0.1:0")
            if CLUSTER == "quietest":  # dotted keys beside the nested ones: flat_dask_config takes both
                cfg.dask_config = {**flat_dask_config(cfg.dask_config), **QUIETEST}
            self._own = connect(cfg)
            self.client = self._own.__enter__()
        else:
            self.cluster = C.local_cluster(cores)
            self.client = Client(self.cluster)
        self.conf = work / "conf"
        C.write_experiment(
            self.conf, "busy", "benchmarks.workloads.busy", {"ms": 0.0, "i": 0}, work / "unused", report=True
        )
        C.write_experiment(
            self.conf,
            "mesa",
            "benchmarks.workloads.mesa_trial",
            {"n": 100, "steps": 100, "seed": 0, "i": 0},
            work / "unused",
            report=True,
        )
        self.available = {"daskbench": None, "dask_map": None, "process_pool": None}
        self.pool = None
        try:
            import joblib  # noqa: F401

            self.available["joblib"] = None
        except ImportError:
            self.available["joblib"] = "joblib not installed (pip install -e '.[bench]')"
        try:
            import mesa  # noqa: F401

            self.available["mesa_batch_run"] = None
        except ImportError:
            self.available["mesa_batch_run"] = "mesa not installed (pip install -e '.[bench]')"
        self._runs = 0

    def start_process_pool(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, like Dask's and loky's workers: fork from a process running an
        # event loop and a scheduler is unsafe (and importing Mesa forces spawn anyway)
        self.pool = ProcessPoolExecutor(self.cores, mp_context=multiprocessing.get_context("spawn"))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        if self._own is not None:
            self._own.__exit__(None, None, None)
            return
        self.client.close()
        self.cluster.close()

    # -- the tools ------------------------------------------------------------
    def run_daskbench(self, n: int, ms: float) -> Tuple[float, float]:
        return self._daskbench("busy", n, [f"trial.ms={ms}", *OVERRIDES])

    def _daskbench(self, name: str, n: int, extra: List[str]) -> Tuple[float, float]:
        import daskbench

        self._runs += 1
        out = self.work / "results" / f"r{self._runs}"
        t0 = time.perf_counter()
        res = daskbench.run(
            name,
            [f"trial.i=range(0,{n})", f"results.dir={out}", *extra],
            client=self.client,
            config_dir=str(self.conf),
            progress="none",
            echo=lambda s: None,
        )
        wall = time.perf_counter() - t0
        assert res.counts.ok == n and res.exit_code == 0, res.counts
        C.report_drawn(res)  # outside the timing: the user does not wait for it, the next run must not compete with it
        cpu = float(daskbench.load(out)["cpu_s"].sum())
        shutil.rmtree(out, ignore_errors=True)
        return wall, cpu

    def run_dask_map(self, n: int, ms: float) -> Tuple[float, float]:
        t0 = time.perf_counter()
        futs = self.client.map(busy, [ms] * n, range(n), pure=False)
        out = self.client.gather(futs)
        wall = time.perf_counter() - t0
        del futs
        return wall, sum(r["cpu_s"] for r in out)

    def run_dask_chunks(self, n: int, ms: float) -> Tuple[float, float]:
        from benchmarks.workloads import busy_chunk

        k = max(1, -(-n // (4 * self.cores)))  # 4 chunks per worker thread
        bounds = [(i, min(i + k, n)) for i in range(0, n, k)]
        t0 = time.perf_counter()
        futs = self.client.map(busy_chunk, [ms] * len(bounds), bounds, pure=False)
        out = self.client.gather(futs)
        wall = time.perf_counter() - t0
        del futs
        return wall, sum(r["cpu_s"] for chunk in out for r in chunk)

    def run_joblib(self, n: int, ms: float) -> Tuple[float, float]:
        from joblib import Parallel, delayed

        t0 = time.perf_counter()
        out = Parallel(n_jobs=self.cores, backend="loky")(delayed(busy)(ms, i) for i in range(n))
        wall = time.perf_counter() - t0
        return wall, sum(r["cpu_s"] for r in out)

    def run_process_pool(self, n: int, ms: float) -> Tuple[float, float]:
        if self.pool is None:
            self.start_process_pool()
        t0 = time.perf_counter()
        out = list(self.pool.map(busy, [ms] * n, range(n)))
        wall = time.perf_counter() - t0
        return wall, sum(r["cpu_s"] for r in out)

    def run_mesa_batch_run(self, n: int, model: Dict[str, int]) -> Tuple[float, float]:
        from mesa.batchrunner import batch_run

        from benchmarks.workloads import mesa_model_cls

        t0 = time.perf_counter()
        out = batch_run(
            mesa_model_cls(),
            parameters={"n": model["n"], "i": range(n)},
            number_processes=self.cores,
            iterations=1,
            max_steps=model["steps"],
            data_collection_period=-1,
            display_progress=False,
        )
        wall = time.perf_counter() - t0
        assert len(out) == n, len(out)
        return wall, sum(r["cpu_s"] for r in out)

    def run_daskbench_mesa(self, n: int, model: Dict[str, int]) -> Tuple[float, float]:
        return self._daskbench("mesa", n, [f"trial.n={model['n']}", f"trial.steps={model['steps']}"])


def estimate_s(tool: str, n: int, trial_s: float, cores: int) -> float:
    return n * trial_s / cores + n * OVERHEAD_S[tool]


def _cells(mode: str) -> List[Tuple[int, int]]:
    """The (trials, trial ms) cells to run: ``--cells=NxMS,...``, else the mode's grid."""
    given = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--cells=")), "")
    if not given:
        return [(n, ms) for ms in LENGTHS_MS[mode] for n in SIZES[mode]]
    out = []
    for cell in given.split(","):
        n, _, ms = cell.partition("x")
        if not (n.isdigit() and ms.isdigit()):
            raise SystemExit(f"--cells: {cell!r} is not TRIALSxMS, e.g. --cells=100000x0")
        out.append((int(n), int(ms)))
    return out


def main() -> None:
    if CLUSTER not in ("dask", "daskbench", "quietest"):
        raise SystemExit(f"--cluster={CLUSTER}: choose dask (a plain LocalCluster, the default), daskbench or quietest")
    cells_only = any(a.startswith("--cells=") for a in sys.argv)
    mode = C.mode() if not cells_only or any(f"--{m}" in sys.argv for m in C.MODES) else "full"
    tools_opt = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--tools=")), "")
    cores = C.cores()
    work = C.tmpdir("throughput")
    tools = Tools(work, cores)
    trial_tools = ["daskbench", "dask_map", "dask_chunks", "joblib", "process_pool"]
    if tools_opt:
        trial_tools = [t for t in trial_tools if t in tools_opt.split(",")]
    cells: List[Dict[str, Any]] = []
    mesa_cells: List[Dict[str, Any]] = []
    try:
        # warm-up: every worker imports the trial module, every pool spawns
        tools.run_dask_map(20, 0)
        tools.run_dask_chunks(20, 0)
        tools.run_daskbench(20, 0)
        if tools.available["joblib"] is None:
            tools.run_joblib(20, 0)
        tools.run_process_pool(20, 0)
        for n, ms in _cells(mode):
            cell: Dict[str, Any] = {"trials": n, "trial_ms": ms, "tools": {}}
            plan: Dict[str, int] = {}
            for tool in trial_tools:
                why = tools.available.get(tool)
                est = estimate_s(tool, n, ms / 1000, cores)
                if why is None and est > MAX_EST_S[mode]:
                    why = f"skipped: estimated {est:,.0f} s per run (limit {MAX_EST_S[mode]} s in --{mode})"
                if why:
                    cell["tools"][tool] = {"skipped": why}
                else:
                    plan[tool] = REPEATS[mode] if est <= LONG_S else 1
            # interleave the tools repeat by repeat, so drift on a shared machine hits all alike
            runs: Dict[str, List[Tuple[float, float]]] = {t: [] for t in plan}
            for r in range(max(plan.values(), default=0)):
                for tool, reps in plan.items():
                    if r < reps:
                        runs[tool].append(getattr(tools, f"run_{tool}")(n, ms))
            for tool, rr in runs.items():
                cell["tools"][tool] = summarise(rr, n, cores)
            base = cell["tools"].get("dask_map", {}).get("seconds")
            for _tool, v in cell["tools"].items():
                if "seconds" in v and base:
                    v["speedup_vs_dask_map"] = base / v["seconds"]
            cells.append(cell)
            print(
                f"  {ms:>3} ms x {n:>7,}: "
                + ", ".join(f"{t} {v['trials_per_s']:,.0f}/s" for t, v in cell["tools"].items() if "seconds" in v),
                flush=True,
            )
        m = MESA[mode]
        for n in [] if cells_only else m["trials"]:
            cell = {"trials": n, "model": {"n": m["n"], "steps": m["steps"]}, "tools": {}}
            why = tools.available["mesa_batch_run"]
            if why:
                cell["tools"] = {"mesa_batch_run": {"skipped": why}, "daskbench_mesa": {"skipped": why}}
            else:
                reps = REPEATS[mode] if estimate_s("mesa_batch_run", n, MESA_TRIAL_S, cores) <= LONG_S else 1
                runs = {"mesa_batch_run": [], "daskbench_mesa": []}
                tools.run_daskbench_mesa(min(n, 20), m)  # warm-up: workers import Mesa
                for _ in range(reps):
                    for tool in runs:
                        runs[tool].append(getattr(tools, f"run_{tool}")(n, m))
                for tool, rr in runs.items():
                    cell["tools"][tool] = summarise(rr, n, cores)
                base = cell["tools"]["mesa_batch_run"]["seconds"]
                for v in cell["tools"].values():
                    v["speedup_vs_batch_run"] = base / v["seconds"]
            mesa_cells.append(cell)
    finally:
        tools.close()
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nTrial throughput, CPU busy-loop trials, {cores} cores; median of up to {REPEATS[mode]} runs "
        "(trials/s, parallel efficiency, speed-up of daskbench over the tool)\n"
    )
    rows = []
    for cell in cells:
        t = cell["tools"]
        db = t["daskbench"]
        row = [f"{cell['trial_ms']} ms", cell["trials"], _tps(db), _eff(db, cell["trial_ms"])]
        for tool in ("dask_map", "dask_chunks", "joblib", "process_pool"):  # the table's columns, whatever --tools ran
            v = t.get(tool, {})
            row.append(_tps(v) if "seconds" in v else "skipped")
            row.append(f"{v['seconds'] / db['seconds']:.2f}x" if "seconds" in v and "seconds" in db else "-")
        rows.append(row)
    print(
        C.table(
            rows,
            [
                "trial",
                "trials",
                "daskbench/s",
                "eff",
                "dask_map/s",
                "db vs map",
                "chunks/s",
                "db vs chunks",
                "joblib/s",
                "db vs joblib",
                "pool/s",
                "db vs pool",
            ],
        )
    )
    skipped = [
        (c["trial_ms"], c["trials"], tool, v["skipped"])
        for c in cells
        for tool, v in c["tools"].items()
        if "skipped" in v
    ]
    for ms, n, tool, why in skipped:
        print(f"  {ms} ms x {n:,} {tool}: {why}")
    if mesa_cells:
        print("\nMesa Boltzmann model trials (n agents, steps): mesa.batch_run vs daskbench.run\n")
        mrows = []
        for c in mesa_cells:
            b, d = c["tools"]["mesa_batch_run"], c["tools"]["daskbench_mesa"]
            if "seconds" in b:
                mrows.append(
                    [
                        c["trials"],
                        f"{c['model']['n']}x{c['model']['steps']}",
                        _tps(b),
                        _eff(b, 1),
                        _tps(d),
                        _eff(d, 1),
                        f"{b['seconds'] / d['seconds']:.2f}x",
                    ]
                )
            else:
                mrows.append([c["trials"], "-", b["skipped"], "", "", "", ""])
        print(C.table(mrows, ["trials", "model", "batch_run/s", "eff", "daskbench/s", "eff", "speed-up"]))
    C.emit(
        "throughput",
        {
            "mode": mode,
            "cores": cores,
            "trial": "CPU busy loop (time.thread_time), benchmarks.workloads.busy",
            "cells": cells,
            "mesa": mesa_cells,
            "cluster": CLUSTER,
            "overrides": OVERRIDES,
            "command": "python -m benchmarks.bench_throughput " + " ".join(sys.argv[1:]),
        },
    )


def summarise(runs: List[Tuple[float, float]], n: int, cores: int) -> Dict[str, Any]:
    walls = [w for w, _ in runs]
    wall, cpu = C.median(walls), C.median([c for _, c in runs])
    return {
        "repeats": len(runs),
        "seconds_runs": walls,
        "seconds": wall,
        "trials_per_s": n / wall,
        "cpu_s": cpu,
        "efficiency": cpu / (wall * cores),
    }


def _tps(v: Dict[str, Any]) -> str:
    return f"{v['trials_per_s']:,.0f}" if "trials_per_s" in v else "-"


def _eff(v: Dict[str, Any], ms: float) -> str:
    # a no-op trial has no CPU time of its own: efficiency means nothing there
    return f"{v['efficiency']:.0%}" if ms and "efficiency" in v else "-"


if __name__ == "__main__":
    main()
