"""Driver and scheduler cost as the sweep grows: 10^4, 10^5, 10^6 no-op trials.

The cost daskbench adds per trial must stay flat as a sweep grows. For each
size a fresh cluster of separate processes is started (``dask scheduler`` and
``dask worker --nworkers 2 --nthreads 1`` on 127.0.0.1), so the driver's and
the scheduler's memory and CPU can be told apart, and a fresh driver process
runs ``daskbench.run`` on it with ``trial.x=range(0,N)`` over the no-op trial:

* expansion: walking the lazy sweep plan in full (what the runner pulls), per trial;
* submission: time inside ``Runner._submit`` (packing a refill's chunks and
  handing them over in one ``client.map``), per trial;
* end to end: ``daskbench.run`` wall clock, per trial;
* driver peak RSS (``ru_maxrss``) and its growth during the run;
* scheduler: CPU time (``/proc/PID/stat``) during the run, per trial and per
  task, and peak RSS (``VmHWM``) growth during the run;
* files the sweep leaves in its results folder.

Beside it, on the first cluster: the scheduler CPU time per task of one raw
future per trial (``client.map``), which with daskbench's chunk sizes gives the
projection in BENCHMARKS.md. Each figure is also given per trial and as the
ratio of the largest size to the smallest: a per-trial cost that grows by more
than ``GROWTH_FLAG`` is flagged.

``--in-flight=M`` runs the fixed-chunk-size runs with ``runner.max_in_flight=M``
(default: 4 per worker thread, 8 here): a cluster of ``W`` threads keeps ``4 W``
tasks in flight and refills half of them in one graph update, so ``M = 4 W`` gives
the scheduler's cost per task as that cluster would see it, for the projection.

    python -m benchmarks.bench_scale [--smoke|--quick|--full] [--sizes=10000,1000000] [--in-flight=M]
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
from typing import Any, Dict

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402

SIZES = {"smoke": [1_000, 5_000], "quick": [10_000, 100_000], "full": [10_000, 100_000, 1_000_000]}
RAW_TASKS = {"smoke": 300, "quick": 2_000, "full": 5_000}
#: fixed chunk sizes (runner.chunk_size) and chunks per size, for scheduler CPU per chunk = a + b * size
CHUNK_SIZES = {"smoke": [1, 100], "quick": [1, 10, 100, 1000], "full": [1, 10, 100, 1000]}
CHUNKS = {"smoke": 100, "quick": 400, "full": 1000}
GROWTH_FLAG = 1.5
MARK = "@@RESULT@@"
#: runner.max_in_flight of the fixed-chunk runs (from --in-flight), handed to the driver process
IN_FLIGHT_ENV = "DASKBENCH_BENCH_IN_FLIGHT"


# ------------------------------------------------------------------ /proc readers
def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (and of its reaped children: none here)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem_mib(pid: int) -> Dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(val.split()[0]) / 1024
    return out


# ------------------------------------------------------------------ the driver (a child process)
def child(n: int, sched_file: str, sched_pid: int, work: Path, raw_tasks: int, mode: str) -> Dict[str, Any]:
    from distributed import Client

    import daskbench
    import daskbench.runner.driver as runner

    conf = work / "conf"
    results = work / "results" / "noop"
    C.write_noop_experiment(conf, results, {"trial.x": f"range(0,{n})"}, extra="  report: false")

    t0 = time.perf_counter()
    rp = daskbench.plan("noop", [], config_dir=str(conf))
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    count = 0
    for _item in rp.plan:  # the runner sends each Trial as it is
        count += 1
    expand_s = time.perf_counter() - t0
    assert count == n
    del rp

    submit = {"s": 0.0, "chunks": 0}
    real_submit = runner.Runner._submit

    def timed_submit(self, items, *args, **kwargs):  # whatever else the runner passes, passed on
        t = time.perf_counter()
        try:
            return real_submit(self, items, *args, **kwargs)
        finally:
            submit["s"] += time.perf_counter() - t
            submit["chunks"] += len(items)  # a refill of several chunks is one call

    runner.Runner._submit = timed_submit
    with Client(scheduler_file=sched_file) as client:
        client.submit(sum, [1, 2]).result()
        rss_before = _rss_mib()
        cpu0, mem0 = proc_cpu_s(sched_pid), proc_mem_mib(sched_pid)
        dcpu0 = proc_cpu_s(os.getpid())
        t0 = time.perf_counter()
        res = daskbench.run("noop", [], client=client, config_dir=str(conf), progress="none", echo=lambda s: None)
        wall = time.perf_counter() - t0
        driver_cpu = proc_cpu_s(os.getpid()) - dcpu0
        cpu1, mem1 = proc_cpu_s(sched_pid), proc_mem_mib(sched_pid)
        # this run's own figures, before the fixed-chunk runs below add to the counters
        submit_s, chunks = submit["s"], submit["chunks"]
        peak = _rss_mib()
        assert res.counts.ok == n, res.counts
        C.report_drawn(res)  # after the counters: the report is drawn by a process of its own
        raw = raw_map(client, sched_pid, raw_tasks) if raw_tasks else None
        fixed = chunk_costs(client, sched_pid, conf, work, mode) if raw_tasks else None
    files = sorted(str(p.relative_to(results)) for p in results.rglob("*") if p.is_file())
    return {
        "trials": n,
        "build_plan_s": build_s,
        "expand_s": expand_s,
        "submit_s": submit_s,
        "driver_cpu_s": driver_cpu,
        "chunks": chunks,
        "wall_s": wall,
        "trials_per_s": n / wall,
        "driver_rss_before_mib": rss_before,
        "driver_peak_rss_mib": peak,
        "driver_growth_mib": peak - rss_before,
        "scheduler_cpu_s": cpu1 - cpu0,
        "scheduler_rss_before_mib": mem0["VmRSS"],
        "scheduler_peak_rss_mib": mem1["VmHWM"],
        "scheduler_growth_mib": mem1["VmHWM"] - mem0["VmRSS"],
        "files": len(files),
        "parquet_files": sum(f.endswith(".parquet") for f in files),
        "file_names": files[:20],
        "raw_map": raw,
        "fixed_chunks": fixed,
    }


def raw_map(client, sched_pid: int, n: int) -> Dict[str, Any]:
    """Scheduler CPU per task with one future per trial."""
    from benchmarks.workloads import noop

    client.gather(client.map(noop, range(20), pure=False))  # warm-up
    cpu0 = proc_cpu_s(sched_pid)
    t0 = time.perf_counter()
    futs = client.map(noop, range(n), pure=False)
    client.gather(futs)
    wall = time.perf_counter() - t0
    cpu = proc_cpu_s(sched_pid) - cpu0
    del futs
    return {
        "tasks": n,
        "wall_s": wall,
        "tasks_per_s": n / wall,
        "scheduler_cpu_s": cpu,
        "scheduler_cpu_ms_per_task": cpu / n * 1e3,
    }


def chunk_costs(client, sched_pid: int, conf: Path, work: Path, mode: str) -> Dict[str, Any]:
    """Scheduler and driver CPU per task at fixed chunk sizes, and the line
    ``a + b * size`` through them (least squares): the per-task and per-trial
    parts of the scheduler's cost, for the projection."""
    import daskbench

    out = []
    for k in CHUNK_SIZES[mode]:
        n = k * CHUNKS[mode] if k < 1000 else min(k * CHUNKS[mode], 200_000)
        results = work / "results" / f"fixed{k}"
        s0, d0 = proc_cpu_s(sched_pid), proc_cpu_s(os.getpid())
        t0 = time.perf_counter()
        flight = os.environ.get(IN_FLIGHT_ENV)
        res = daskbench.run(
            "noop",
            [f"trial.x=range(0,{n})", f"runner.chunk_size={k}", f"results.dir={results}"]
            + ([f"runner.max_in_flight={flight}"] if flight else []),
            client=client,
            config_dir=str(conf),
            progress="none",
            echo=lambda s: None,
        )
        wall = time.perf_counter() - t0
        assert res.counts.ok == n, res.counts
        C.report_drawn(res)  # outside the timing, as the user meets it
        chunks = -(-n // k)
        out.append(
            {
                "chunk_size": k,
                "trials": n,
                "chunks": chunks,
                "wall_s": wall,
                "scheduler_cpu_ms_per_chunk": (proc_cpu_s(sched_pid) - s0) / chunks * 1e3,
                "driver_cpu_ms_per_chunk": (proc_cpu_s(os.getpid()) - d0) / chunks * 1e3,
            }
        )
        shutil.rmtree(results, ignore_errors=True)
    fit = {}
    for who in ("scheduler", "driver"):
        xs = [r["chunk_size"] for r in out]
        ys = [r[f"{who}_cpu_ms_per_chunk"] for r in out]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        fit[who] = {"per_task_ms": max(my - b * mx, 0.0), "per_trial_us": max(b, 0.0) * 1e3}
    return {"runs": out, "fit": fit}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------ the cluster
class Cluster:
    """``dask scheduler`` and ``dask worker`` as separate processes on 127.0.0.1."""

    def __init__(self, work: Path, workers: int = 2):
        dask = str(Path(sys.executable).parent / "dask")
        self.file = work / "scheduler.json"
        self.log = open(work / "cluster.log", "w")
        self.sched = subprocess.Popen(
            [
                dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",  # on, as daskbench's own clusters have it
                "127.0.0.1:0",
                "--scheduler-file",
                str(self.file),
            ],
            env=C.env(),
            cwd=work,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.workers = subprocess.Popen(
            [
                dask,
                "worker",
                "--scheduler-file",
                str(self.file),
                "--nworkers",
                str(workers),
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
            ],
            env=C.env(),
            cwd=work,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait(workers)

    def _wait(self, workers: int, timeout: float = 60.0) -> None:
        from distributed import Client

        end = time.monotonic() + timeout
        while not self.file.exists():
            if time.monotonic() > end or self.sched.poll() is not None:
                raise SystemExit(f"dask scheduler did not start; see {self.log.name}")
            time.sleep(0.1)
        with Client(scheduler_file=str(self.file), timeout=timeout) as c:
            c.wait_for_workers(workers, timeout=timeout)

    def close(self) -> None:
        for p in (self.workers, self.sched):
            p.terminate()
        for p in (self.workers, self.sched):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log.close()


def run_size(n: int, raw_tasks: int, mode: str) -> Dict[str, Any]:
    work = C.tmpdir("scale")
    cluster = Cluster(work)
    try:
        proc = subprocess.run(
            [
                C.PY,
                "-m",
                "benchmarks.bench_scale",
                "--child",
                str(n),
                str(cluster.file),
                str(cluster.sched.pid),
                str(work),
                str(raw_tasks),
                mode,
            ],
            cwd=C.ROOT,
            env=C.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith(MARK)), None)
    if proc.returncode != 0 or line is None:
        sys.stdout.write(proc.stdout[-4000:])
        raise SystemExit(f"driver for {n:,} trials failed ({proc.returncode})")
    return json.loads(line[len(MARK) :])


PER_TRIAL = [
    # (key, label, unit scale, unit)
    ("expand_s", "expansion", 1e6, "us/trial"),
    ("submit_s", "submission (pack + client.submit)", 1e6, "us/trial"),
    ("wall_s", "daskbench.run end to end", 1e6, "us/trial"),
    ("scheduler_cpu_s", "scheduler CPU", 1e6, "us/trial"),
    ("driver_cpu_s", "driver CPU", 1e6, "us/trial"),
    ("driver_growth_mib", "driver RSS growth", 2**20, "B/trial"),
    ("scheduler_growth_mib", "scheduler RSS growth", 2**20, "B/trial"),
]


def main() -> None:
    mode = C.mode()
    # --sizes=10000,1000000 overrides the mode's sizes (for a profile of one size)
    given = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--sizes=")), "")
    sizes = [int(x) for x in given.split(",")] if given else SIZES[mode]
    flight = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--in-flight=")), "")
    if flight:
        os.environ[IN_FLIGHT_ENV] = str(int(flight))
    runs = []
    for i, n in enumerate(sizes):
        print(f"  {n:,} trials ...", flush=True)
        runs.append(run_size(n, RAW_TASKS[mode] if i == 0 else 0, mode))
        r = runs[-1]
        print(
            f"    {r['wall_s']:.1f}s, {r['trials_per_s']:,.0f} trials/s, {r['chunks']:,} chunks, "
            f"driver peak {r['driver_peak_rss_mib']:.0f} MiB, scheduler peak {r['scheduler_peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    first = runs[0]
    per_trial, growth, flagged = {}, {}, []
    rows = []
    for key, label, scale, unit in PER_TRIAL:
        vals = [r[key] / r["trials"] * scale for r in runs]
        per_trial[key] = vals
        g = vals[-1] / vals[0] if vals[0] > 0 else None
        growth[key] = g
        # memory is bounded by design (trials in flight), so per trial it should fall
        flag = g is not None and g > GROWTH_FLAG and max(vals) > (1.0 if unit == "us/trial" else 16.0)
        if flag:
            flagged.append(key)
        rows.append([f"{label} ({unit})", *vals, f"{g:.2f}" if g is not None else "-", "GROWING" if flag else "flat"])
    totals = [
        ["driver peak RSS (MiB)", *[r["driver_peak_rss_mib"] for r in runs], "", ""],
        ["scheduler peak RSS (MiB)", *[r["scheduler_peak_rss_mib"] for r in runs], "", ""],
        ["chunks (tasks)", *[r["chunks"] for r in runs], "", ""],
        ["mean trials per chunk", *[r["trials"] / max(r["chunks"], 1) for r in runs], "", ""],
        ["scheduler CPU per task (ms)", *[r["scheduler_cpu_s"] / max(r["chunks"], 1) * 1e3 for r in runs], "", ""],
        ["trials/s", *[r["trials_per_s"] for r in runs], "", ""],
        ["files left in results/<name>/", *[r["files"] for r in runs], "", ""],
    ]
    header = ["per-trial cost", *[f"{n:,}" for n in sizes], f"ratio {sizes[-1]:,}/{sizes[0]:,}", "curve"]
    print("\nDriver and scheduler cost, no-op trials, scheduler and 2 workers as separate processes\n")
    print(C.table(rows + totals, header))
    raw = first["raw_map"]
    print(
        f"\nraw client.map, {raw['tasks']:,} no-op tasks: scheduler CPU {raw['scheduler_cpu_ms_per_task']:.3f} ms "
        f"per task, {raw['tasks_per_s']:,.0f} tasks/s"
    )
    fixed = first["fixed_chunks"]
    print(
        "\nfixed chunk sizes (runner.chunk_size"
        + (f", runner.max_in_flight={flight}" if flight else "")
        + "): CPU per task"
    )
    print(
        C.table(
            [
                [
                    r["chunk_size"],
                    r["trials"],
                    r["chunks"],
                    r["scheduler_cpu_ms_per_chunk"],
                    r["driver_cpu_ms_per_chunk"],
                ]
                for r in fixed["runs"]
            ],
            ["chunk size", "trials", "tasks", "scheduler ms/task", "driver ms/task"],
        )
    )
    for who, f in fixed["fit"].items():
        print(f"  {who}: {f['per_task_ms']:.3f} ms per task + {f['per_trial_us']:.2f} us per trial")
    print(
        f"\nper-trial growth {sizes[0]:,} -> {sizes[-1]:,}: "
        + (f"none above {GROWTH_FLAG:.1f}x" if not flagged else "GROWING: " + ", ".join(flagged))
        + "\n"
    )
    C.emit(
        "scale",
        {
            "mode": mode,
            "sizes": sizes,
            "runs": runs,
            "per_trial": per_trial,
            "growth_ratio": growth,
            "growing": flagged,
            "raw_map": raw,
            "fixed_chunks": fixed,
            "flat": not flagged,
            "fixed_chunks_max_in_flight": int(flight) if flight else None,
            "command": f"python -m benchmarks.bench_scale --{mode}" + (f" --in-flight={flight}" if flight else ""),
        },
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        n, sf, pid, work, raw, mode = sys.argv[2:8]
        print(MARK + json.dumps(child(int(n), sf, int(pid), Path(work), int(raw), mode)), flush=True)
    else:
        main()
