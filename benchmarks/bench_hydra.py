"""200 no-op trials from the command line: daskbench CLI vs Hydra multirun + joblib.

Both are timed end to end as subprocesses (wall clock, including interpreter
start-up, imports, cluster/pool start-up and shut-down):

(a) ``python -m daskbench --config-dir DIR +experiment=noop cluster.n_workers=2``
    where ``DIR/experiment/noop.yaml`` sweeps ``trial.x: range(0,200)`` over
    ``experiments.noop.trial`` (a LocalCluster of 2 worker processes on
    127.0.0.1; results written to Parquet in a temp folder);
(b) ``python app.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 'x=range(0,200)'``
    where ``app.py`` is a trivial ``@hydra.main`` app generated in a temp folder
    that returns ``cfg.x`` (Hydra writes its usual per-job output folders).

Each is run 3 times, alternating, and the median is reported.
Target: daskbench >= 10x faster.

    .venv/bin/python benchmarks/bench_hydra.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

N = 200
REPEATS = 3
TARGET = 10.0

APP = '''\
import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    return float(cfg.x)  # a no-op trial


if __name__ == "__main__":
    main()
'''


FLOOR = '''\
from distributed import Client, LocalCluster

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address="127.0.0.1:8787") as cluster, Client(cluster):
        pass
    print("closed")
'''


def timed(cmd, cwd: Path, check_out: str) -> float:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0 or check_out not in proc.stdout:
        sys.stdout.write(proc.stdout[-3000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return dt


def main() -> None:
    work = C.tmpdir("hydra")
    conf = work / "conf"
    C.write_noop_experiment(conf, work / "db_results" / "noop", {"trial.x": f"range(0,{N})"})
    app_dir = work / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    (app_dir / "config.yaml").write_text("x: 0\n")

    # the report written after each run is off: Hydra writes none, and it costs seconds
    db_cmd = [C.PY, "-m", "daskbench", "--config-dir", str(conf), "+experiment=noop", "cluster.n_workers=2",
              "results.report=false"]
    nd_cmd = db_cmd + ["cluster.dashboard_address=null"]
    # Dask's own floor: start and close the same LocalCluster, nothing else
    (work / "floor.py").write_text(FLOOR)
    fl_cmd = [C.PY, str(work / "floor.py")]
    hy_cmd = [C.PY, "app.py", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
              f"x=range(0,{N})", f"hydra.sweep.dir={work / 'multirun'}"]
    db, hy, nd, fl = [], [], [], []
    try:
        for i in range(REPEATS):
            shutil.rmtree(work / "db_results", ignore_errors=True)
            db.append(timed(db_cmd, work, f"{N} ok, 0 failed"))
            shutil.rmtree(work / "db_results", ignore_errors=True)
            nd.append(timed(nd_cmd, work, f"{N} ok, 0 failed"))
            fl.append(timed(fl_cmd, work, "closed"))
            shutil.rmtree(work / "multirun", ignore_errors=True)
            hy.append(timed(hy_cmd, app_dir, f"#{N - 1} : x={N - 1}"))
            jobs = len([p for p in (work / "multirun").iterdir() if p.is_dir()])
            assert jobs == N, jobs
            print(f"  repeat {i + 1}: daskbench {db[-1]:.2f}s (no dashboard {nd[-1]:.2f}s), "
                  f"hydra+joblib {hy[-1]:.2f}s, bare LocalCluster {fl[-1]:.2f}s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    db_s, hy_s, nd_s, fl_s = C.median(db), C.median(hy), C.median(nd), C.median(fl)
    ratio = hy_s / db_s
    met = ratio >= TARGET
    print(f"\n{N} no-op trials, subprocess wall clock incl. start-up, median of {REPEATS}\n")
    print(C.table([
        ["Hydra -m + joblib launcher, 2 jobs (baseline)", hy_s, N / hy_s, 1.0],
        ["python -m daskbench (LocalCluster, 2 workers)", db_s, N / db_s, ratio],
        ["  same, cluster.dashboard_address=null", nd_s, N / nd_s, hy_s / nd_s],
        ["bare LocalCluster start + close, no trials (Dask's floor)", fl_s, float("nan"), hy_s / fl_s],
    ], ["method", "seconds", "trials/s", "speed-up"]))
    print(f"\nratio hydra/daskbench: {ratio:.1f}x;  target >= {TARGET:g}x: {'MET' if met else 'NOT MET'}\n")
    C.emit("hydra", {
        "trials": N, "repeats": REPEATS,
        "daskbench_cli": {"seconds_runs": db, "seconds": db_s,
                          "command": "python -m daskbench --config-dir DIR +experiment=noop cluster.n_workers=2"},
        "daskbench_cli_no_dashboard": {"seconds_runs": nd, "seconds": nd_s, "ratio": hy_s / nd_s},
        "bare_localcluster_with_dashboard": {"seconds_runs": fl, "seconds": fl_s, "ratio": hy_s / fl_s},
        "hydra_joblib": {"seconds_runs": hy, "seconds": hy_s,
                         "command": f"python app.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 'x=range(0,{N})'"},
        "ratio": ratio, "target": f">= {TARGET:g}x", "target_met": met,
        "command": ".venv/bin/python benchmarks/bench_hydra.py",
    })


if __name__ == "__main__":
    main()
