"""What daskbench costs per trial and per task, against what it is measured by (issue 13, targets 3-4).

One round measures, with the code on ``PYTHONPATH`` (or each ``--src`` in turn):

* **separate scheduler**: ``N`` no-op trials (``trial.x=range(0,N)``, chunks
  sized automatically) through ``daskbench.run`` on a ``dask scheduler`` and
  ``dask worker --nworkers 2 --nthreads 1`` started as separate processes
  (:class:`benchmarks.bench_scale.Cluster`): driver, scheduler and workers' CPU
  (``/proc/PID/stat``) per trial;
* **per task**: ``T`` no-op trials with ``runner.chunk_size=1`` (one task per
  trial, as long trials get) against ``T`` raw ``client.map`` futures on the
  same cluster, alternating: the scheduler's CPU per task and the ratio;
* **one process**: ``N`` no-op trials through ``daskbench.run`` on a
  ``LocalCluster(n_workers=cores, threads_per_worker=1)`` in the driver's
  process (as ``bench_throughput.py``) against
  ``joblib.Parallel(n_jobs=cores, backend="loky")``, alternating: trials/s.

``--src=A,B`` runs each round in a child process per source tree (``A/src``
on its ``PYTHONPATH``, for the driver and the cluster's processes alike),
alternating the trees round by round, so two states of the code are compared
side by side on a loaded machine. ``--spy=DIR`` records py-spy profiles of the
driver, the scheduler and one worker during the separate-scheduler run.

    python benchmarks/bench_pertask.py [--trials=100000] [--tasks=500] [--rounds=2] [--src=../main,.] [--spy=DIR]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402
from benchmarks.bench_scale import Cluster, proc_cpu_s  # noqa: E402

MARK = "@@PERTASK@@"


def _opt(name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in sys.argv if a.startswith(f"--{name}=")), default)


def _descendants(pid: int) -> List[int]:
    """Every process below ``pid`` (the worker processes under ``dask worker``'s nannies)."""
    children: Dict[int, List[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cpu(pids: List[int]) -> float:
    total = 0.0
    for p in pids:
        try:
            total += proc_cpu_s(p)
        except OSError:  # a process that ended
            pass
    return total


def _spy(pid: int, out: Path) -> subprocess.Popen:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = [spy, "record", "-p", str(pid), "-o", str(out), "--format", "raw", "-r", "250", "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run(conf: Path, args: List[str], client: Any) -> Any:
    import daskbench

    res = daskbench.run("noop", args, client=client, config_dir=str(conf), progress="none", echo=lambda s: None)
    assert res.exit_code == 0, res.counts
    return res


def separate(work: Path, n: int, tasks: int, spy: Optional[Path]) -> Dict[str, Any]:
    """Driver, scheduler and workers' CPU per trial on a cluster of separate processes,
    and the scheduler's CPU per task against raw futures."""
    from distributed import Client

    from benchmarks.workloads import noop

    cluster = Cluster(work)
    conf = work / "conf"
    C.write_noop_experiment(conf, work / "unused", {})  # the report written, as shipped
    out: Dict[str, Any] = {}
    try:
        with Client(scheduler_file=str(cluster.file)) as client:
            client.gather(client.map(noop, range(50), pure=False))  # warm-up
            _run(conf, ["trial.x=range(0,200)", f"results.dir={work / 'warm'}"], client)
            workers = _descendants(cluster.workers.pid) + [cluster.workers.pid]
            spies = []
            if spy is not None:
                wpid = max(_descendants(cluster.workers.pid) or [cluster.workers.pid])
                for who, pid in (("driver", os.getpid()), ("scheduler", cluster.sched.pid), ("worker", wpid)):
                    spies.append(_spy(pid, spy / f"{who}.txt"))
                time.sleep(1.0)  # py-spy attaches
            d0, s0, w0 = proc_cpu_s(os.getpid()), proc_cpu_s(cluster.sched.pid), _cpu(workers)
            t0 = time.perf_counter()
            res = _run(conf, [f"trial.x=range(0,{n})", f"results.dir={work / 'big'}"], client)
            wall = time.perf_counter() - t0
            d, s, w = proc_cpu_s(os.getpid()) - d0, proc_cpu_s(cluster.sched.pid) - s0, _cpu(workers) - w0
            C.report_drawn(res)  # after the clock and the CPU counters: the report is its own process
            for p in spies:
                p.send_signal(2)
                p.wait()
            assert res.counts.ok == n, res.counts
            out.update(
                trials=n,
                wall_s=wall,
                trials_per_s=n / wall,
                driver_us_per_trial=d / n * 1e6,
                scheduler_us_per_trial=s / n * 1e6,
                workers_us_per_trial=w / n * 1e6,
            )
            db, raw = [], []
            for i in range(2):  # alternating, twice each
                s0 = proc_cpu_s(cluster.sched.pid)
                one_each = [f"trial.x=range(0,{tasks})", "runner.chunk_size=1", f"results.dir={work / f't{i}'}"]
                res = _run(conf, one_each, client)
                db.append((proc_cpu_s(cluster.sched.pid) - s0) / tasks * 1e3)
                C.report_drawn(res)  # before the raw futures run: the report is its own process
                s0 = proc_cpu_s(cluster.sched.pid)
                client.gather(client.map(noop, range(tasks), pure=False))
                raw.append((proc_cpu_s(cluster.sched.pid) - s0) / tasks * 1e3)
            out.update(
                tasks=tasks,
                scheduler_ms_per_task=C.median(db),
                raw_ms_per_task=C.median(raw),
                task_ratio=sum(db) / max(sum(raw), 1e-9),
            )
    finally:
        cluster.close()
    return out


def one_process(work: Path, n: int) -> Dict[str, Any]:
    """``daskbench.run`` on a LocalCluster in this process against joblib: trials/s."""
    from distributed import Client
    from joblib import Parallel, delayed

    from benchmarks.workloads import noop

    cores = C.cores()
    conf = work / "conf1"
    C.write_noop_experiment(conf, work / "unused", {})  # the report written, as shipped
    with (
        C.local_cluster(cores) as cluster,
        Client(cluster) as client,
    ):
        _run(conf, ["trial.x=range(0,200)", f"results.dir={work / 'warm1'}"], client)
        Parallel(n_jobs=cores, backend="loky")(delayed(noop)(i) for i in range(200))
        db, jl = [], []
        for i in range(2):
            t0 = time.perf_counter()
            res = _run(conf, [f"trial.x=range(0,{n})", f"results.dir={work / f'one{i}'}"], client)
            db.append(n / (time.perf_counter() - t0))
            C.report_drawn(res)  # outside the timing: the user does not wait for it
            t0 = time.perf_counter()
            Parallel(n_jobs=cores, backend="loky")(delayed(noop)(i) for i in range(n))
            jl.append(n / (time.perf_counter() - t0))
    return {"daskbench_per_s": C.median(db), "joblib_per_s": C.median(jl), "vs_joblib": sum(db) / sum(jl)}


def round_here(n: int, tasks: int, spy: Optional[Path]) -> Dict[str, Any]:
    work = C.tmpdir("pertask")
    try:
        load = os.getloadavg()[0]
        sep = separate(work, n, tasks, spy)
        one = one_process(work, n)
        return {"load_start": load, "load_end": os.getloadavg()[0], **sep, **one}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def round_in(src: Path, n: int, tasks: int, spy: Optional[Path]) -> Dict[str, Any]:
    """One round in a child process with ``src/src`` first on the path (driver and cluster)."""
    env = dict(C.env())
    env["PYTHONPATH"] = os.pathsep.join([str(C.ROOT), str(src / "src")])
    cmd = [C.PY, str(Path(__file__).resolve()), "--child", f"--trials={n}", f"--tasks={tasks}"]
    if spy is not None:
        cmd.append(f"--spy={spy}")
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith(MARK)), None)
    if proc.returncode != 0 or line is None:
        sys.stdout.write(proc.stdout[-4000:])
        raise SystemExit(f"round with {src} failed ({proc.returncode})")
    return json.loads(line[len(MARK) :])


ROWS = [
    ("driver_us_per_trial", "driver CPU us/trial (separate scheduler)"),
    ("scheduler_us_per_trial", "scheduler CPU us/trial (separate scheduler)"),
    ("workers_us_per_trial", "workers' CPU us/trial (2 workers, nannies included)"),
    ("trials_per_s", "trials/s (separate scheduler)"),
    ("scheduler_ms_per_task", "scheduler ms/task, chunk_size=1"),
    ("raw_ms_per_task", "scheduler ms/task, raw client.map"),
    ("task_ratio", "daskbench task / raw future"),
    ("daskbench_per_s", "one process: daskbench trials/s"),
    ("joblib_per_s", "one process: joblib trials/s"),
    ("vs_joblib", "one process: daskbench / joblib"),
    ("load_start", "load average (1 min) at start"),
]


def main() -> None:
    n, tasks = int(_opt("trials", "100000")), int(_opt("tasks", "500"))
    spy_opt = _opt("spy", "")
    spy = Path(spy_opt).resolve() if spy_opt else None
    if spy is not None:
        spy.mkdir(parents=True, exist_ok=True)
    if "--child" in sys.argv:
        print(MARK + json.dumps(round_here(n, tasks, spy)), flush=True)
        return
    srcs = [Path(s).resolve() for s in _opt("src", "").split(",") if s]
    rounds = int(_opt("rounds", "2" if srcs else "1"))
    names = [s.name for s in srcs] or ["PYTHONPATH"]
    runs: Dict[str, List[Dict[str, Any]]] = {k: [] for k in names}
    for r in range(rounds):
        for name, src in zip(names, srcs or [None]):
            print(f"  round {r + 1}: {name} (load {os.getloadavg()[0]:.1f}) ...", flush=True)
            got = round_in(src, n, tasks, spy) if src is not None else round_here(n, tasks, spy)
            runs[name].append(got)
    header = ["measure"] + [f"{k} #{i + 1}" for k in names for i in range(rounds)]
    rows = [[label] + [r[key] for k in names for r in runs[k]] for key, label in ROWS]
    print(f"\n{n:,} no-op trials; {tasks:,} tasks at chunk_size=1; {C.cores()} cores\n")
    print(C.table(rows, header))
    C.emit("pertask", {"trials": n, "tasks": tasks, "runs": runs})


if __name__ == "__main__":
    main()
