"""A 1,000,000- (or 10,000,000-) trial no-op sweep through ``daskbench.run``: driver peak RSS,
wall time, and the files left in the results folder.

The sweep (``trial.x=range(0,1000000)`` over ``daskbench.experiments.noop.trial``)
runs on a ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``
bound to 127.0.0.1, in a fresh subprocess so that the driver's peak resident
set size measures this run alone. The driver process holds the client *and* the
Dask scheduler (a LocalCluster runs its scheduler in-process) *and* the report:
the benchmark asks ``daskbench.run`` to draw it in the driver
(``background_report=False``; by default it is drawn by a process of its own, as
the command line does), the harder case for the driver's peak; the workers are
child processes. The driver's peak is measured per phase: at each
boundary (the run starts; ``ResultStore.close``, i.e. the last flush and the
compaction of the parts, starts; the report starts; the run returns) the
process's ``VmHWM`` is read and reset (``/proc/self/clear_refs``), so the table
says which phase holds the peak; the driver's peak is the largest of them.

The command line (``python -m daskbench``) writes the report in a process of its
own instead (``observe/report_background.py``): after the run, the benchmark runs
that same command, ``python -m daskbench --report DIR``, over the folder and
reports its peak RSS apart (``os.wait4``). A user's machine holds both, one
after the other. It is started from the benchmark's small parent process, not
from the driver: Linux counts the peak RSS of the process a child was forked from
into the child's ``ru_maxrss`` (the old memory map at ``exec``), so a report
process started from the driver would report at least the driver's peak.

While it runs, the child prints a progress line to stderr every 30 s (parts on
disk, RSS now, the peak of the current phase), which the parent passes through.

Reference points, each in its own fresh subprocess (same imports as the driver):

* ``list(plan)``: materialising the 1M ``Trial`` objects (ids, params, seeds)
  that daskbench instead generates lazily;
* naive list of 1M trial dicts ``[{"trial.x": i} for i in range(N)]``: the
  least a runner that builds every trial up front would hold.

The references are skipped past 1,000,000 trials (10^7 ``Trial`` objects alone take
~4 GiB): their 10^6 figures scale linearly.

Target: driver peak RSS < 1 GiB, with one row per trial and a bounded number of
Parquet files (for 1,000,000 trials: ``--full``; ``--ten-million`` runs 10,000,000,
~10 minutes on 2 cores, and is in no suite; ``--quick`` runs 100,000 and
``--smoke`` 5,000, the same way). The rows are counted, and their ids checked
distinct, with pyarrow (not pandas: 10^7 rows would cost GiBs after the run).

    python -m benchmarks.bench_million [--smoke|--quick|--full] [--ten-million] [N]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `benchmarks` importable (the no-op trial), here and on workers
from benchmarks import _common as C0  # noqa: E402

SIZES = {"smoke": 5_000, "quick": 100_000, "full": 1_000_000}
_GIVEN = [a for a in sys.argv[1:] if a.isdigit()]
N = int(_GIVEN[0]) if _GIVEN else 10_000_000 if "--ten-million" in sys.argv else SIZES[C0.mode()]
TARGET_MIB = 1024.0
REFERENCE_MAX = 1_000_000  # past this the references themselves would take GiBs


def _rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux: KiB


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hwm_mib(reset: bool = False) -> float:
    """Peak RSS (``VmHWM``) since the last reset, then reset it to the current RSS."""
    with open("/proc/self/status") as f:
        kib = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:"))
    if reset:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    return kib / 1024


class Phases:
    """The driver's peak RSS per phase, phases marked by wrapping daskbench functions."""

    def __init__(self) -> None:
        self.name = "set-up (imports, cluster)"
        self.peaks: dict = {}
        self.started = time.perf_counter()
        self.times: dict = {}

    def enter(self, name: str) -> None:
        now = time.perf_counter()
        self.peaks[self.name] = max(self.peaks.get(self.name, 0.0), _hwm_mib(reset=True))
        self.times[self.name] = self.times.get(self.name, 0.0) + now - self.started
        self.name, self.started = name, now

    def wrap(self, owner: object, attr: str, name: str, after: str) -> None:
        real = getattr(owner, attr)

        def inner(*a, **k):
            self.enter(name)
            try:
                return real(*a, **k)
            finally:
                self.enter(after)

        setattr(owner, attr, inner)


def _watch(phases: Phases, trials: Path, stop) -> None:
    t0 = time.perf_counter()
    while not stop.wait(30.0):
        parts = list(trials.glob("part-*.parquet")) if trials.exists() else []
        sys.stderr.write(
            f"[bench_million] t={time.perf_counter() - t0:6.0f}s  {len(parts)} parts  "
            f"rss {_current_rss_mib():5.0f} MiB  peak in '{phases.name}' {_hwm_mib():5.0f} MiB\n"
        )
        sys.stderr.flush()


def _report_process(results: Path) -> dict:
    """Peak RSS and time of ``python -m daskbench --report DIR``: the command the CLI
    starts in the background after a run (its own process)."""
    t0 = time.perf_counter()
    log = results.parent / "report-process.log"  # a file, not a pipe: wait4 below reads nothing
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daskbench", "--report", str(results)],
            env=C0.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, log.read_text(errors="replace")[-2000:]
    return {"peak_rss_mib": usage.ru_maxrss / 1024.0, "seconds": time.perf_counter() - t0}


def child_run(n: int, work: Path) -> dict:
    import threading

    from distributed import Client

    import daskbench
    import daskbench.observe.report as report
    import daskbench.results.store as store

    sys.path.insert(0, str(HERE))
    import _common as C

    phases = Phases()
    phases.wrap(store.ResultStore, "close", "store.close (last flush, compaction)", "manifest, run summary")
    phases.wrap(report, "write_report", "report (in the driver: background_report=False)", "after the report")
    stop = threading.Event()
    # the default run, its report drawn in the driver (the harder case for the driver's peak)
    C.write_noop_experiment(work / "conf", work / "results" / "noop", {"trial.x": f"range(0,{n})"})
    after_import = _rss_mib()
    with (
        C.local_cluster(2) as cluster,
        Client(cluster) as client,
    ):
        client.submit(sum, [1, 2]).result()
        before = _rss_mib()
        watcher = threading.Thread(target=_watch, args=(phases, work / "results" / "noop" / "trials", stop))
        watcher.start()
        t0 = time.perf_counter()
        phases.enter("submit/collect loop")
        try:
            res = daskbench.run(
                "noop",
                [],
                client=client,
                config_dir=str(work / "conf"),
                progress="none",
                echo=lambda s: None,
                background_report=False,
            )
        finally:
            stop.set()
        wall = time.perf_counter() - t0
        phases.enter("end")
        watcher.join()
        peak = max(phases.peaks.values())
        counts = res.counts
    rows, distinct, files, parquet = _on_disk(work / "results" / "noop")
    assert counts.ok == n and rows == n == distinct, (counts, rows, distinct)
    return {
        "trials": n,
        "ok": counts.ok,
        "rows_on_disk": rows,
        "distinct_trial_ids": distinct,
        "files_in_results": files,
        "parquet_files": parquet,
        "wall_s": wall,
        "trials_per_s": n / wall,
        "driver_peak_rss_mib": peak,
        "driver_rss_before_run_mib": before,
        "driver_rss_after_import_mib": after_import,
        "worker_peak_rss_mib": _rss_mib(resource.RUSAGE_CHILDREN),
        "driver_peak_rss_by_phase_mib": phases.peaks,
        "driver_seconds_by_phase": phases.times,
    }


def _on_disk(root: Path) -> tuple:
    """(rows, distinct trial ids, files under root, Parquet files), read with pyarrow."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    parts = sorted(str(p) for p in (root / "trials").glob("*.parquet"))
    ids = ds.dataset(parts, format="parquet").to_table(columns=["trial_id"])["trial_id"]
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(ids), pc.count_distinct(ids).as_py(), len(files), sum(p.suffix == ".parquet" for p in files)


def child_list_plan(n: int, work: Path) -> dict:
    import daskbench

    sys.path.insert(0, str(HERE))
    import _common as C

    C.write_noop_experiment(work / "conf", work / "results" / "noop", {"trial.x": f"range(0,{n})"})
    rp = daskbench.plan("noop", [], config_dir=str(work / "conf"))
    base = _current_rss_mib()
    t0 = time.perf_counter()
    trials = list(rp.plan)
    dt = time.perf_counter() - t0
    assert len(trials) == n
    return {
        "what": f"list(plan): {n:,} Trial objects",
        "seconds": dt,
        "rss_increase_mib": _current_rss_mib() - base,
        "peak_rss_mib": _rss_mib(),
    }


def child_naive_dicts(n: int, work: Path) -> dict:
    import daskbench  # noqa: F401  (same imports as the driver, for a like-for-like peak)

    base = _current_rss_mib()
    t0 = time.perf_counter()
    trials = [{"trial.x": i} for i in range(n)]
    dt = time.perf_counter() - t0
    assert len(trials) == n
    return {
        "what": "naive [{'trial.x': i} ...] list",
        "seconds": dt,
        "rss_increase_mib": _current_rss_mib() - base,
        "peak_rss_mib": _rss_mib(),
    }


def spawn(mode: str, n: int) -> dict:
    sys.path.insert(0, str(HERE))
    import _common as C

    work = C.tmpdir(f"million-{mode}")
    try:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(n), str(work)],
            cwd=work,
            env=C.env(),
            stdout=subprocess.PIPE,
            stderr=None if mode == "run" else subprocess.STDOUT,  # the run's progress lines, live
            text=True,
        )
        wall = time.perf_counter() - t0
        if mode == "run" and proc.returncode == 0:  # from here, a small process (see the module)
            print("  the run is done; now the report as the CLI writes it, in its own process ...", flush=True)
            report = _report_process(work / "results" / "noop")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("@@RESULT@@")), None)
    if proc.returncode != 0 or line is None:
        sys.stdout.write(proc.stdout[-4000:])
        raise SystemExit(f"child {mode} failed ({proc.returncode})")
    out = json.loads(line[len("@@RESULT@@") :])
    out["subprocess_wall_s"] = wall
    if mode == "run":
        out["report_process_peak_rss_mib"], out["report_process_s"] = report["peak_rss_mib"], report["seconds"]
    return out


def main() -> None:
    sys.path.insert(0, str(HERE))
    import _common as C

    print(f"{N:,}-trial no-op sweep through daskbench.run (LocalCluster, 2 workers) ...", flush=True)
    run = spawn("run", N)
    print(f"  done in {run['wall_s']:.1f}s", flush=True)
    skipped = {"rss_increase_mib": float("nan"), "seconds": float("nan"), "skipped": f"past {REFERENCE_MAX:,}"}
    plan_list = spawn("list_plan", N) if N <= REFERENCE_MAX else skipped
    naive = spawn("naive_dicts", N) if N <= REFERENCE_MAX else skipped
    peak = run["driver_peak_rss_mib"]
    met = peak < TARGET_MIB
    print(f"\n{N:,} no-op trials, one subprocess each\n")
    print(
        C.table(
            [
                [
                    "daskbench.run: driver peak RSS (client + scheduler + report)",
                    peak,
                    run["wall_s"],
                    run["trials_per_s"],
                ],
                ["  driver RSS before the run (imports + cluster)", run["driver_rss_before_run_mib"], "", ""],
                *[
                    [f"  driver peak in: {ph}", mib, run["driver_seconds_by_phase"].get(ph, ""), ""]
                    for ph, mib in run["driver_peak_rss_by_phase_mib"].items()
                ],
                [
                    "report process peak RSS (python -m daskbench --report: the CLI's background report)",
                    run["report_process_peak_rss_mib"],
                    run["report_process_s"],
                    "",
                ],
                ["  largest worker process peak RSS", run["worker_peak_rss_mib"], "", ""],
                [
                    f"  files left in results/noop/ ({run['parquet_files']} Parquet)",
                    run["files_in_results"],
                    "",
                    "",
                ],
                [
                    f"reference: list(plan), {N:,} Trial objects (RSS increase)",
                    plan_list["rss_increase_mib"],
                    plan_list["seconds"],
                    "",
                ],
                [
                    f"reference: naive list of {N:,} trial dicts (RSS increase)",
                    naive["rss_increase_mib"],
                    naive["seconds"],
                    "",
                ],
            ],
            ["what", "MiB", "seconds", "trials/s"],
        )
    )
    print(
        f"\ndriver peak RSS {peak:,.0f} MiB;  target < {TARGET_MIB:,.0f} MiB (1 GiB): {'MET' if met else 'NOT MET'}"
        + ("" if N >= 1_000_000 else f" (at {N:,} trials; the target is for 1,000,000: --full)")
        + f"; {run['rows_on_disk']:,} rows, {run['distinct_trial_ids']:,} distinct ids, "
        + f"{run['parquet_files']} Parquet file(s)"
        + "\n"
    )
    C.emit(
        "million",
        {
            "trials": N,
            "daskbench_run": run,
            "reference_list_plan": plan_list,
            "reference_naive_dicts": naive,
            "driver_peak_rss_mib": peak,
            "driver_peak_rss_by_phase_mib": run["driver_peak_rss_by_phase_mib"],
            "report_process_peak_rss_mib": run["report_process_peak_rss_mib"],
            "wall_s": run["wall_s"],
            "trials_per_s": run["trials_per_s"],
            "parquet_files": run["parquet_files"],
            "target": "driver peak RSS < 1 GiB",
            "target_met": met,
            "mode": C0.mode(),
            "command": f"python -m benchmarks.bench_million --{C0.mode()}"
            + (" --ten-million" if N == 10_000_000 else f" {N}" if N != SIZES[C0.mode()] else ""),
        },
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, n, work = sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
        fn = {"run": child_run, "list_plan": child_list_plan, "naive_dicts": child_naive_dicts}[mode]
        print("@@RESULT@@" + json.dumps(fn(n, work)), flush=True)
    else:
        main()
