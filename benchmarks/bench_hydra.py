"""200 trials from the command line: daskbench CLI vs Hydra multirun + joblib launcher.

Both are timed end to end as subprocesses (wall clock, including interpreter
start-up, imports, cluster/pool start-up and shut-down), for each trial length
(the CPU busy loop of ``benchmarks.workloads.busy``; 0 ms is a no-op):

(a) ``python -m daskbench --config-dir DIR +experiment=busy 'trial.i=range(0,200)' trial.ms=MS
    cluster.n_workers=2`` with the shipped defaults: a LocalCluster of 2 worker
    processes on 127.0.0.1 with its dashboard, results written to Parquet in a temp
    folder, the report written after the run (by a background process: the clock
    stops when the command returns, as for its user; the next command waits for the
    report, off the clock, so that it does not compete with it for the cores);
(b) ``python app.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 'x=range(0,200)' ms=MS``
    where ``app.py`` is a trivial ``@hydra.main`` app generated in a temp folder
    that calls the same trial (Hydra writes its usual per-job output folders).

For the no-op trial also: the CLI with ``cluster.dashboard_address=null``, and
Dask's floor (a bare LocalCluster with dashboard started and closed, no work).
Repeats alternate between the commands; medians are reported. Hydra's parallel
efficiency uses the nominal CPU time (trials x MS): its jobs report nothing back.
Target (issue 13): the daskbench CLI >= 15x faster on 200 no-op trials.

    python -m benchmarks.bench_hydra [--smoke|--quick|--full]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402

SIZES = {"smoke": 6, "quick": 200, "full": 200}
LENGTHS_MS = {"smoke": [0], "quick": [0], "full": [0, 1, 10, 100]}
REPEATS = {"smoke": 1, "quick": 3, "full": 3}
TARGET = 15.0

APP = """\
import hydra
from omegaconf import DictConfig


from benchmarks.workloads import busy


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    return busy(cfg.ms, cfg.x)["cpu_s"]  # the same trial every tool runs


if __name__ == "__main__":
    main()
"""


FLOOR = """\
from distributed import Client, LocalCluster

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address="127.0.0.1:8787") as cluster, Client(cluster):
        pass
    print("closed")
"""


def timed(cmd, cwd: Path, check_out: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=C.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0 or check_out not in proc.stdout:
        sys.stdout.write(proc.stdout[-3000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}")
    return dt


def hydra_available() -> str:
    try:
        import hydra_plugins.hydra_joblib_launcher  # noqa: F401
    except ImportError:
        return "hydra-joblib-launcher not installed (pip install -e '.[bench]')"
    return ""


def one_length(work: Path, n: int, ms: float, repeats: int, extras: bool) -> dict:
    """All commands for one trial length, repeats alternating between them."""
    conf = work / "conf"
    out = work / "db_results"
    C.write_experiment(conf, "busy", "benchmarks.workloads.busy", {"ms": 0.0, "i": 0}, out, report=True)
    app_dir = work / "app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "app.py").write_text(APP)
    (app_dir / "config.yaml").write_text("x: 0\nms: 0.0\n")
    db_cmd = [
        C.PY,
        "-m",
        "daskbench",
        "--config-dir",
        str(conf),
        "+experiment=busy",
        f"trial.i=range(0,{n})",
        f"trial.ms={ms}",
        "cluster.n_workers=2",
    ]
    cmds = {"daskbench_cli": (db_cmd, work, f"{n} ok, 0 failed")}
    if extras:
        cmds["daskbench_cli_no_dashboard"] = (db_cmd + ["cluster.dashboard_address=null"], work, f"{n} ok, 0 failed")
        (work / "floor.py").write_text(FLOOR)
        cmds["bare_localcluster_with_dashboard"] = ([C.PY, str(work / "floor.py")], work, "closed")
    why = hydra_available()
    if not why:
        cmds["hydra_joblib"] = (
            [
                C.PY,
                "app.py",
                "-m",
                "hydra/launcher=joblib",
                "hydra.launcher.n_jobs=2",
                f"x=range(0,{n})",
                f"ms={ms}",
                f"hydra.sweep.dir={work / 'multirun'}",
            ],
            app_dir,
            f"#{n - 1} : x={n - 1}",
        )
    runs = {k: [] for k in cmds}
    for i in range(repeats):
        for k, (cmd, cwd, check) in cmds.items():
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(work / "multirun", ignore_errors=True)
            runs[k].append(timed(cmd, cwd, check))
            if k.startswith("daskbench_cli"):
                C.wait_for_report(out)  # written in the background: off the clock
            if k == "hydra_joblib":
                jobs = len([p for p in (work / "multirun").iterdir() if p.is_dir()])
                assert jobs == n, jobs
        print(f"  {ms} ms, repeat {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in runs.items()), flush=True)
    res = {"trials": n, "trial_ms": ms, "repeats": repeats}
    for k, v in runs.items():
        res[k] = {
            "seconds_runs": v,
            "seconds": C.median(v),
            "trials_per_s": n / C.median(v),
            "efficiency": n * ms / 1000 / (C.median(v) * C.cores()),
        }
    res["daskbench_cli"]["command"] = " ".join(["python"] + db_cmd[1:3] + ["DIR"] + db_cmd[4:])
    if why:
        res["hydra_joblib"] = {"skipped": why}
    else:
        res["hydra_joblib"]["command"] = (
            f"python app.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 'x=range(0,{n})' ms={ms}"
        )
        hy = res["hydra_joblib"]["seconds"]
        for k in runs:
            res[k]["speedup_vs_hydra"] = hy / res[k]["seconds"]
    return res


def main() -> None:
    mode = C.mode()
    n, repeats = SIZES[mode], REPEATS[mode]
    results = []
    for ms in LENGTHS_MS[mode]:
        work = C.tmpdir("hydra")
        try:
            # the no-dashboard and floor variants explain the no-op figure; --smoke only checks it runs
            results.append(one_length(work, n, ms, repeats, extras=(ms == 0 and mode != "smoke")))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    rows = []
    for r in results:
        hy = r["hydra_joblib"]
        for k, label in [
            ("hydra_joblib", "Hydra -m + joblib launcher, 2 jobs (baseline)"),
            ("daskbench_cli", "python -m daskbench (LocalCluster, 2 workers)"),
            ("daskbench_cli_no_dashboard", "  same, cluster.dashboard_address=null"),
            ("bare_localcluster_with_dashboard", "bare LocalCluster start + close (Dask's floor)"),
        ]:
            v = r.get(k)
            if not v or "seconds" not in v:
                continue
            eff = f"{v['efficiency']:.0%}" if r["trial_ms"] and k != "bare_localcluster_with_dashboard" else "-"
            rows.append(
                [
                    label,
                    f"{r['trial_ms']} ms",
                    v["seconds"],
                    n / v["seconds"],
                    eff,
                    f"{v['speedup_vs_hydra']:.1f}x" if "seconds" in hy else "-",
                ]
            )
    print(f"\n{n} trials, subprocess wall clock incl. start-up, median of {repeats}\n")
    print(C.table(rows, ["method", "trial", "seconds", "trials/s", "eff", "speed-up vs Hydra"]))
    noop = results[0]
    ratio = noop["daskbench_cli"].get("speedup_vs_hydra")
    met = bool(ratio and ratio >= TARGET)
    if ratio:
        print(f"\nno-op: hydra/daskbench {ratio:.1f}x;  target >= {TARGET:g}x: {'MET' if met else 'NOT MET'}\n")
    else:
        print(f"\nHydra baseline skipped: {noop['hydra_joblib']['skipped']}\n")
    C.emit(
        "hydra",
        {
            "mode": mode,
            "trials": n,
            "repeats": repeats,
            "lengths": results,
            "ratio": ratio,
            "target": f">= {TARGET:g}x (no-op)",
            "target_met": met,
            "command": f"python -m benchmarks.bench_hydra --{mode}",
        },
    )


if __name__ == "__main__":
    main()
