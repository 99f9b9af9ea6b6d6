"""A timeline of ``python -m daskbench`` for a small no-op sweep: each process's milestones.

Runs the CLI's ``main()`` in a subprocess as ``python -m daskbench`` would (same order:
the fork server is warmed up before daskbench's API is imported), with marks around
its phases, in the fork server (each preloaded module) and in every process the server
forks (scheduler, dashboard, each worker's registration, each chunk). Nothing in
daskbench changes: the marks come from wrapping its functions from here and from
``benchmarks/_timeline_hook.py`` (first in the server's preload list). Times are
seconds since the command started; ``exit seen`` is when the parent saw the process
end and its output close (what a shell or ``bench_hydra`` waits for).

    .venv/bin/python benchmarks/timeline_cli.py [N] [--repeat=K] [--no-dashboard]
        [--start-method=forkserver|fork|spawn] [--experiment=NAME]

``--experiment=NAME`` times a shipped experiment (``boltzmann``...) with its own sweep
instead of N no-ops.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(conf: str, extra: list) -> None:
    import _timeline_hook as tl

    tl.mark("interpreter up, timeline script runs")
    import daskbench.__main__ as cli
    import daskbench.cluster.workers as workers

    tl.mark("import daskbench.__main__ done")
    real_preload = workers._preload
    workers._preload = lambda *a: ["_timeline_hook"] + real_preload(*a)  # type: ignore[assignment]
    real_warm = workers.warm_up
    state = {"patched": False}

    def warm_up(*a, **k):
        tl.mark("warm_up (fork server spawn) begins")
        real_warm(*a, **k)
        tl.mark("warm_up done")
        if not state["patched"]:
            state["patched"] = True
            _patch_driver(tl)

    workers.warm_up = warm_up  # type: ignore[assignment]
    name = os.environ.get("DASKBENCH_TIMELINE_EXPERIMENT", "")
    if name:  # a shipped experiment as a user runs it (its own sweep, results under ./results)
        argv = [f"+experiment={name}", "runner.progress=none", *extra]
    else:
        argv = ["--config-dir", conf, "+experiment=noop", "cluster.n_workers=2", "runner.progress=none", *extra]
    rc = cli.main(argv)
    tl.mark("main() returned, os._exit")
    sys.stdout.flush()
    os._exit(rc)


def _patch_driver(tl) -> None:
    import daskbench.api as api
    import daskbench.cluster.create as create
    import daskbench.cluster.early as early
    import daskbench.cluster.scheduler_process as sp
    import daskbench.observe.report_background as rb
    import daskbench.runner.driver as runner

    tl.mark("import daskbench.api (+ Hydra, distributed) done")
    tl.wrap(api, "build_plan", "compose + build_plan begins", "compose + build_plan done")
    tl.wrap(early.ClusterStart, "begin", "", "cluster thread started")
    tl.wrap(sp.SchedulerProcess, "start", "scheduler process: fork asked", "scheduler process: address received")
    tl.wrap(sp.ForkedSchedulerCluster, "__init__", "LocalCluster() begins", "LocalCluster() up (workers in)")
    tl.wrap(early.ClusterStart, "close", "cluster close begins", "cluster closed")
    tl.wrap(api, "_prepare", "prepare (plugins) begins", "prepare done")
    tl.wrap(runner.Runner, "run", "Runner.run begins", "Runner.run done")
    tl.wrap(rb, "start", "", "background report started")
    from distributed import Client

    from daskbench.results.store import ResultStore

    tl.wrap(Client, "register_plugin", "register_plugin begins", "register_plugin done")
    tl.wrap(api, "dashboard_link", "dashboard link probe begins", "dashboard link probe done")
    tl.wrap(ResultStore, "record_run", "", "run recorded (manifest)")
    real_client = create.Client

    def client(*a, **k):
        c = real_client(*a, **k)
        tl.mark("Client connected")
        return c

    create.Client = client


def run_once(n: int, flags: list, experiment: str = "") -> dict:
    sys.path.insert(0, str(HERE))
    import shutil

    import _common as C

    work = C.tmpdir("timeline")
    tl_file = work / "timeline.tsv"
    try:
        C.write_noop_experiment(work / "conf", work / "results", {"trial.x": f"range(0,{n})"})
        env = C.env()
        env["PYTHONPATH"] = str(HERE) + os.pathsep + env["PYTHONPATH"]
        t0 = time.time()
        env.update(DASKBENCH_TIMELINE=str(tl_file), DASKBENCH_TIMELINE_T0=repr(t0))
        env["DASKBENCH_TIMELINE_EXPERIMENT"] = experiment
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(work / "conf")] + flags,
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seen = time.time() - t0
        if proc.returncode != 0:
            sys.stdout.write(proc.stdout)
            raise SystemExit("child failed")
        results = work / "results" / experiment if experiment else work / "results"
        report_wait = C.wait_for_report(results) if "--no-report" not in flags else 0.0
        rows = []
        for line in tl_file.read_text().splitlines():
            t, pid, role, what, cpu = line.split("\t")
            rows.append((float(t), int(pid), role, f"{what}  [cpu {cpu}]"))
        rows.append((seen, 0, "parent", "exit seen (process ended, output closed)"))
        report = work / "results" / "noop" / "report" / "report.html"
        if not report.exists():
            report = next((work / "results").rglob("report.html"), report)
        if report.exists():
            rows.append((report.stat().st_mtime - t0, 0, "report", "report.html written (background)"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows.sort()
    roles = {}
    for _, pid, role, _ in rows:  # a forked child is named once it says what it is
        if role not in ("child",):
            roles.setdefault(pid, role)
    rows = [(t, pid, roles.get(pid, role), what) for t, pid, role, what in rows]
    return {"rows": rows, "wall": seen, "report_wait": report_wait}


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 200
    repeat = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--repeat=")), 1)
    flags = [a for a in sys.argv[1:] if a in ("--no-dashboard", "--no-report") or a.startswith("--start-method=")]
    experiment = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--experiment=")), "")
    runs = [run_once(n, flags, experiment) for _ in range(repeat)]
    walls = sorted(r["wall"] for r in runs)
    med = min(runs, key=lambda r: abs(r["wall"] - walls[len(walls) // 2]))
    what = f"+experiment={experiment}" if experiment else f"{n} no-op trials"
    print(f"python -m daskbench, {what}, timeline of the median run of {repeat} (walls {walls})\n")
    seen_chunks = {}
    for t, pid, role, what in med["rows"]:
        if what.startswith(("chunk start", "chunk end")):
            what = what.split("  [")[0]  # only the first start and the last end per worker
            seen_chunks.setdefault((pid, what), []).append(t)
            continue
        print(f"{t:7.3f}  {role:11s} {pid:>7d}  {what}")
    for (pid, what), ts in sorted(seen_chunks.items()):
        print(f"{'':7s}  worker      {pid:>7d}  {len(ts)} x {what}: first {min(ts):.3f}, last {max(ts):.3f}")
    print(json.dumps({"trials": n, "flags": flags, "walls": walls, "median_rows": med["rows"]}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        extra = ["results.report=false"] if "--no-report" in sys.argv else []
        extra += [f"cluster.start_method={a.split('=', 1)[1]}" for a in sys.argv if a.startswith("--start-method=")]
        if "--no-dashboard" in sys.argv:
            extra.append("cluster.dashboard_address=null")
        child(sys.argv[2], extra)
    else:
        main()
