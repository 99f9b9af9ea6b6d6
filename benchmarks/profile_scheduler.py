"""Where the Dask scheduler's CPU goes per task: daskbench chunks against raw futures.

Starts ``dask scheduler`` and two ``dask worker`` processes (as bench_scale.py
does), then runs N no-op trials with ``runner.chunk_size=1`` through
``daskbench.run`` (one task per trial, like long trials get) and the same number
of raw ``client.map`` futures, while ``py-spy record`` samples the scheduler
process. Prints the scheduler's and the driver's CPU per task for each, and the
scheduler functions that take the most samples. ``--direct`` makes the driver's
Client fetch results straight from the workers (``direct_to_workers=True``)
instead of through the scheduler. ``--repeats=R`` runs both sides R times, alternating
which goes first, samples the scheduler only in the first round, and gives the median of
the R ratios (one run moves by about 0.1 on a small shared machine).

``--in-flight=M`` sets ``runner.max_in_flight`` (default: 4 per worker thread, 8
here): a cluster of ``W`` threads keeps ``4 W`` tasks in flight and refills half of
them in one graph update, so ``--in-flight=4000`` shows the scheduler's cost per
task as a 1,000-thread cluster would see it (the raw futures are one update of
``N`` anyway). The last line gives daskbench's CPU per task over the raw future's.

Needs ``py-spy`` (in the ``bench`` extra); without it only the CPU figures print.

    .venv/bin/python benchmarks/profile_scheduler.py [N] [--direct] [--in-flight=M] [--repeats=R]
"""

from __future__ import annotations

import collections
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402
from benchmarks.bench_scale import Cluster, proc_cpu_s  # noqa: E402


def top_frames(raw: Path, k: int = 15):
    """Functions by inclusive samples, from py-spy's raw (collapsed) output."""
    incl = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        total += int(n)
        for f in set(stack.split(";")[1:]):
            incl[f.split(" (")[0]] += int(n)
    # the event loop and the command-line entry point hold every sample: leave them out
    skip = (
        "run",
        "_run",
        "_run_once",
        "run_forever",
        "run_until_complete",
        "Handle._run",
        "main",
        "<module>",
        "Command.__call__",
        "Context.invoke",
        "Group.invoke",
        "Command.invoke",
        "run_cli",
    )
    return total, [(n, f) for f, n in incl.most_common(80) if not f.endswith(skip)][:k]


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 1000
    direct = "--direct" in sys.argv
    in_flight = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--in-flight=")), "")
    repeats = int(next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--repeats=")), "1"))
    per_task: dict = collections.defaultdict(list)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    has_spy = Path(spy).exists()
    work = C.tmpdir("profile-scheduler")
    cluster = Cluster(work)
    try:
        from distributed import Client

        import daskbench
        from benchmarks.workloads import noop

        conf = work / "conf"
        C.write_noop_experiment(conf, work / "unused", {})  # the report written, as shipped
        with Client(scheduler_file=str(cluster.file), direct_to_workers=direct or None) as client:
            client.gather(client.map(noop, range(50), pure=False))  # warm-up
            labels = ("daskbench, chunk_size=1", "raw client.map")
            rounds = [labels if r % 2 == 0 else labels[::-1] for r in range(repeats)]
            for r, label in ((r, label) for r, order in enumerate(rounds) for label in order):
                out = work / ("raw.txt" if label.startswith("raw") else "daskbench.txt")
                rec = None
                if has_spy and r == 0:
                    rec = subprocess.Popen(
                        [
                            spy,
                            "record",
                            "-p",
                            str(cluster.sched.pid),
                            "-o",
                            str(out),
                            "--format",
                            "raw",
                            "-r",
                            "200",
                            "--nonblocking",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    time.sleep(1.0)  # py-spy attaches
                s0, d0 = proc_cpu_s(cluster.sched.pid), proc_cpu_s(os.getpid())
                t0 = time.perf_counter()
                res = None
                if label.startswith("raw"):
                    client.gather(client.map(noop, range(n), pure=False))
                else:
                    res = daskbench.run(
                        "noop",
                        [f"trial.x=range(0,{n})", "runner.chunk_size=1", f"results.dir={work / f'results{r}'}"]
                        + ([f"runner.max_in_flight={in_flight}"] if in_flight else []),
                        client=client,
                        config_dir=str(conf),
                        progress="none",
                        echo=lambda s: None,
                    )
                wall = time.perf_counter() - t0
                sched, drv = proc_cpu_s(cluster.sched.pid) - s0, proc_cpu_s(os.getpid()) - d0
                C.report_drawn(res)  # after the counters: the report is drawn by a process of its own
                per_task[label].append(sched / n * 1e3)
                print(
                    f"\n{label}: {n:,} tasks in {wall:.2f}s ({n / wall:,.0f}/s); CPU per task: scheduler "
                    f"{sched / n * 1e3:.2f} ms, driver {drv / n * 1e3:.2f} ms"
                    f"{' (direct_to_workers)' if direct else ''}"
                )
                if rec is not None:
                    rec.send_signal(2)
                    rec.wait()
                    if out.exists():
                        total, frames = top_frames(out)
                        print(f"  scheduler samples: {total:,}; top functions (inclusive share):")
                        for cnt, f in frames:
                            print(f"    {cnt / total:6.1%}  {f}")
        db, raw = per_task.values()
        ratios = [d / w for d, w in zip(db, raw)]
        flight = f"runner.max_in_flight={in_flight}" if in_flight else "default max_in_flight"
        load = os.getloadavg()[0]
        each = f"; each round: {', '.join(f'{x:.2f}' for x in ratios)}" if repeats > 1 else ""
        print(
            f"\nscheduler CPU per task, daskbench / raw future: {statistics.median(ratios):.2f}x"
            f"{' (median of ' + str(repeats) + ')' if repeats > 1 else ''} ({flight}, load {load:.1f}{each})"
        )
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
