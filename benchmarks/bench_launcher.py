"""A 200 no-op job Hydra multirun: ``hydra/launcher=daskbench`` vs ``hydra/launcher=joblib``.

Both run the same trivial ``@hydra.main`` app (generated in a temp folder) as a
subprocess, timed end to end (interpreter start-up, Hydra's plugin scan and
compose, the cluster or process pool, every job's folder and ``.hydra/`` files,
shut-down):

(a) ``python app.py -m hydra/launcher=daskbench 'x=range(0,200)' hydra.launcher.cluster.n_workers=2``
    (a LocalCluster of 2 worker processes; a trials table written too);
(b) the same with ``hydra.launcher.cluster.dashboard_address=null``;
(c) ``python app.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 'x=range(0,200)'``.

Where the time goes, per command, from the job folders' ``.hydra/overrides.yaml``
times (each job writes it as it starts): *start-up* (process start to the first
job's files: imports, plugin scan, compose, the cluster or pool), *jobs* (first
to last job's files) and *tail* (last job to exit: the last jobs, collecting,
shut-down). A daskbench run's start-up is split further by the launcher's log
lines (:func:`breakdown`) and by timing the app with ``--cfg hydra`` (interpreter,
imports, plugin scan, one compose: :func:`compose_only`); its jobs' own time on
the workers comes from the trials table's ``duration_s``. Repeats alternate
between the commands; medians are reported.
Target: daskbench >= 3x faster than joblib.

    python -m benchmarks.bench_launcher [--smoke|--quick|--full]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Tuple

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402

SIZES = {"smoke": 6, "quick": 200, "full": 200}
REPEATS = {"smoke": 1, "quick": 2, "full": 3}
TARGET = 3.0

APP = """\
import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    return float(cfg.x)  # a no-op job


if __name__ == "__main__":
    main()
"""


def commands(n: int, sweep_dir: Path, variants: bool) -> Dict[str, List[str]]:
    base = [C.PY, "app.py", "-m", f"x=range(0,{n})", f"hydra.sweep.dir={sweep_dir}"]
    db = base + ["hydra/launcher=daskbench", "hydra.launcher.cluster.n_workers=2"]
    cmds = {
        "daskbench": db,
        "daskbench_no_dashboard": db + ["hydra.launcher.cluster.dashboard_address=null"],
        "joblib": base + ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    }
    if not variants:  # --smoke only checks that it runs
        del cmds["daskbench_no_dashboard"]
    return cmds


def available() -> str:
    try:
        import hydra_plugins.hydra_joblib_launcher  # noqa: F401

        import hydra_plugins.daskbench_launcher  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} not installed (pip install -e '.[bench]')"
    return ""


def phases(sweep_dir: Path, t0: float, t1: float, n: int) -> Dict[str, float]:
    """Start-up, jobs and tail from the times each job wrote its .hydra/overrides.yaml."""
    stamps = sorted(p.stat().st_mtime for p in sweep_dir.glob("*/.hydra/overrides.yaml"))
    assert len(stamps) == n, f"{len(stamps)} job folders of {n} in {sweep_dir}"
    return {"startup_s": stamps[0] - t0, "jobs_s": stamps[-1] - stamps[0], "tail_s": t1 - stamps[-1]}


def timed(cmd: List[str], cwd: Path, sweep_dir: Path, n: int) -> Tuple[float, Dict[str, float]]:
    shutil.rmtree(sweep_dir, ignore_errors=True)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=cwd, env=C.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t1 = time.time()
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-3000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    ph = phases(sweep_dir, t0, t1, n)
    if "hydra/launcher=daskbench" in cmd:
        ph.update(breakdown(proc.stdout, sweep_dir, t0, t0 + ph["startup_s"], n))
    return t1 - t0, ph


_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[HYDRA\] daskbench launcher: (.*)$", re.M)


def breakdown(output: str, sweep_dir: Path, t0: float, first_job: float, n: int) -> Dict[str, float]:
    """A daskbench run's start-up split by the launcher's log lines (Hydra's timestamps,
    ms): up to ``launch()`` (interpreter, Hydra's compose, the sweeper's check of every
    job), planning the jobs, the cluster's start, the first job; and the jobs' own time
    on the workers (``duration_s`` in the trials table) against the jobs phase."""
    import pandas as pd

    stamps = {msg: datetime.strptime(ts, "%Y-%m-%d %H:%M:%S,%f").timestamp() for ts, msg in _LINE.findall(output)}
    launch = next(t for m, t in stamps.items() if m.endswith(" jobs, sweep output dir : " + str(sweep_dir)))
    ready_msg, ready = next((m, t) for m, t in stamps.items() if m.startswith("Dask cluster ready in"))
    cluster_s = float(ready_msg.removeprefix("Dask cluster ready in ").removesuffix("s"))
    durations = pd.read_parquet(sweep_dir / "results" / "trials", columns=["duration_s"]).duration_s
    return {
        "to_launch_s": launch - t0,
        "plan_s": ready - cluster_s - launch,
        "cluster_s": cluster_s,
        "first_job_s": first_job - ready,
        "job_on_worker_ms": 1000 * float(durations.median()),
        "jobs_on_workers_s": float(durations.sum()),
    }


def compose_only(cwd: Path) -> float:
    """Interpreter, imports, Hydra's plugin scan and one compose: the app with ``--cfg hydra``."""
    cmd = [C.PY, "app.py", "x=0", "hydra/launcher=daskbench", "--cfg", "hydra"]
    t0 = time.time()
    subprocess.run(cmd, cwd=cwd, env=C.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.time() - t0


def measure(work: Path, n: int, repeats: int, variants: bool) -> Dict[str, Dict]:
    (work / "app.py").write_text(APP)
    (work / "config.yaml").write_text("x: 0\n")
    sweep_dir = work / "multirun"
    cmds = commands(n, sweep_dir, variants)
    runs: Dict[str, List[Tuple[float, Dict[str, float]]]] = {k: [] for k in cmds}
    composes: List[float] = []
    for i in range(repeats):
        for k, cmd in cmds.items():
            runs[k].append(timed(cmd, work, sweep_dir, n))
        composes.append(compose_only(work))
        print(f"  repeat {i + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in runs.items()), flush=True)
    out: Dict[str, Dict] = {}
    for k, v in runs.items():
        secs = [s for s, _ in v]
        out[k] = {
            "seconds_runs": secs,
            "seconds": C.median(secs),
            "jobs_per_s": n / C.median(secs),
            "command": " ".join(["python"] + cmds[k][1:]).replace(str(sweep_dir), "DIR"),
            **{p: C.median([ph[p] for _, ph in v]) for p in v[0][1]},
        }
        if k.startswith("daskbench"):
            out[k]["compose_only_s"] = C.median(composes)
    for k in out:
        out[k]["speedup_vs_joblib"] = out["joblib"]["seconds"] / out[k]["seconds"]
    return out


def main() -> None:
    mode = C.mode()
    n, repeats = SIZES[mode], REPEATS[mode]
    why = available()
    if why:
        print(f"skipped: {why}")
        C.emit(
            "launcher",
            {
                "mode": mode,
                "jobs": n,
                "skipped": why,
                "target": f">= {TARGET:g}x",
                "target_met": False,
                "command": f"python -m benchmarks.bench_launcher --{mode}",
            },
        )
        return
    work = C.tmpdir("launcher")
    try:
        res = measure(work, n, repeats, variants=mode != "smoke")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    labels = {
        "joblib": "hydra/launcher=joblib, n_jobs=2 (baseline)",
        "daskbench": "hydra/launcher=daskbench, LocalCluster 2 workers",
        "daskbench_no_dashboard": "  same, cluster.dashboard_address=null",
    }
    rows = [
        [
            labels[k],
            v["seconds"],
            n / v["seconds"],
            v["startup_s"],
            v["jobs_s"],
            v["tail_s"],
            f"{v['speedup_vs_joblib']:.1f}x",
        ]
        for k, v in res.items()
    ]
    rows.sort(key=lambda r: r[0] != labels["joblib"])  # the baseline first
    print(f"\n{n} no-op jobs, subprocess wall clock incl. start-up, median of {repeats}\n")
    print(C.table(rows, ["launcher", "seconds", "jobs/s", "start-up s", "jobs s", "tail s", "vs joblib"]))
    print(f"\nwhere a daskbench run's time goes (median of {repeats}), seconds unless said\n")
    parts = ["compose_only_s", "to_launch_s", "plan_s", "cluster_s", "first_job_s", "jobs_s", "tail_s"]
    parts += ["job_on_worker_ms", "jobs_on_workers_s"]
    print(C.table([[k, *(res[k][p] for p in parts)] for k in res if k.startswith("daskbench")], ["run", *parts]))
    ratio = res["daskbench"]["speedup_vs_joblib"]
    met = ratio >= TARGET
    print(f"\njoblib/daskbench {ratio:.1f}x;  target >= {TARGET:g}x: {'MET' if met else 'NOT MET'}\n")
    C.emit(
        "launcher",
        {
            "mode": mode,
            "jobs": n,
            "repeats": repeats,
            "results": res,
            "ratio": ratio,
            "target": f">= {TARGET:g}x",
            "target_met": met,
            "command": f"python -m benchmarks.bench_launcher --{mode}",
        },
    )


if __name__ == "__main__":
    main()
