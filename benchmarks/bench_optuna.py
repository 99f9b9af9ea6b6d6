"""Adaptive search (sweep.search=optuna): the driver's ask/tell cost, workers' busy
fraction, and Hydra's optuna sweeper side by side.

(a) **Ask/tell overhead per trial in the driver**: an :class:`AdaptiveSource` over a
    real journal storage in a temp folder asks a point, gets a row back and tells it,
    N times, with no cluster: every cost the driver adds per trial for the search
    (Optuna's ask with its sampler, the journal appends, the trial-id hashing, the
    bookkeeping, the tell). Target: <= 1 ms per trial.
(b) **Busy fraction**: ``daskbench.run`` on a LocalCluster of 2 single-threaded
    workers, TPE, trials of 100 ms of CPU (``benchmarks.workloads.busy_quad``):
    the sum of the trials' durations over 2 x (last end - first start). Target >= 90 %.
(c) **Hydra's optuna sweeper + joblib launcher** (``-m hydra/sweeper=optuna
    hydra/launcher=joblib``, ``n_jobs=2``) against the daskbench CLI
    (``cluster.n_workers=2``), both TPE seeded alike with the same budget on the
    same 2-d objective with 100 ms trials: wall time of the command, and the best
    value found. hydra-optuna-sweeper pins optuna < 3, which daskbench's optuna 4
    excludes, so it runs from its own virtualenv, given by ``--hydra-python PATH``
    or ``DASKBENCH_HYDRA_OPTUNA_PYTHON`` (skipped, saying so, without one). The two
    Optuna versions' TPE differ, so the best values compare the tools, not seeds.

    python -m benchmarks.bench_optuna [--smoke|--quick|--full] [--hydra-python PATH]
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402

N_OVERHEAD = {"smoke": 30, "quick": 200, "full": 500}
N_BUSY = {"smoke": 10, "quick": 60, "full": 120}
N_HYDRA = {"smoke": 10, "quick": 40, "full": 100}
TRIAL_MS = 100

EXPERIMENT = """# @package _global_
name: optbench
seed: 11
trial: {{_target_: benchmarks.workloads.busy_quad, ms: {ms}}}
sweep:
  search: optuna
  sampler: tpe
  budget: 10
  objective: f
  params: {{trial.x: 'interval(-2,2)', trial.y: 'interval(-2,2)'}}
results: {{dir: '{results}'}}  # the shipped defaults: report written, dashboard on
"""

HYDRA_APP = """\
import time
import hydra


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg) -> float:
    t0 = time.thread_time()
    while time.thread_time() < t0 + cfg.ms / 1000.0:  # the same busy loop as benchmarks.workloads.busy
        pass
    return (cfg.x - 1.0) ** 2 + (cfg.y + 0.5) ** 2


if __name__ == "__main__":
    main()
"""

HYDRA_CONFIG = """defaults:
  - override hydra/sweeper: optuna
  - override hydra/launcher: joblib
  - _self_
x: 0.0
y: 0.0
ms: {ms}
hydra:
  sweeper:
    sampler: {{_target_: optuna.samplers.TPESampler, seed: 11}}
    direction: minimize
    n_trials: {n}
    n_jobs: 2
    params: {{x: 'interval(-2,2)', y: 'interval(-2,2)'}}
  launcher: {{n_jobs: 2}}
"""


def _setup(ms: float) -> Path:
    root = C.tmpdir("optuna")
    (root / "conf" / "experiment").mkdir(parents=True)
    (root / "conf" / "experiment" / "optbench.yaml").write_text(EXPERIMENT.format(ms=ms, results=root / "results"))
    return root


def overhead(sampler: str, n: int) -> Dict[str, Any]:
    """Driver-side cost of one ask + tell, with no cluster (see the module's docstring)."""
    import daskbench
    from daskbench.results import study as stored
    from daskbench.runner.adaptive import AdaptiveSource
    from daskbench.sweep.search import space, space_json

    root = _setup(0)
    rp = daskbench.plan("optbench", [f"sweep.sampler={sampler}", f"sweep.budget={n}"], str(root / "conf"))
    study = stored.open_study(rp.results_dir, "optbench", rp.plan.search, space_json(space(rp.plan.axes)))
    source = AdaptiveSource(rp.plan, study, {}, echo=lambda *_: None)
    source.reconcile()
    rng = random.Random(0)
    laps = []
    t_all = time.perf_counter()
    for trial in source.trials():
        t0 = time.perf_counter()
        row = {"trial_id": trial.trial_id, "status": "ok", "f": rng.random()}
        source.before_write([row])
        source.after_write([row])
        laps.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    tail = source.ask_tell_s  # asks are timed inside trials(), tells in after_write
    return {
        "sampler": sampler,
        "trials": n,
        "per_trial_ms": 1000 * total / n,
        "ask_tell_ms": 1000 * tail / n,
        "last_quarter_tell_ms": 1000 * C.median(laps[-n // 4 :]),
    }


def busy_fraction(n: int) -> Dict[str, Any]:
    """Two workers' share of time inside trials of 100 ms during an adaptive run."""
    import pandas as pd
    from distributed import Client, LocalCluster

    import daskbench

    root = _setup(TRIAL_MS)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster) as cl:
        t0 = time.perf_counter()
        res = daskbench.run(
            "optbench",
            [f"sweep.budget={n}"],
            client=cl,
            config_dir=str(root / "conf"),
            progress="none",
            echo=lambda *_: None,
        )
        wall = time.perf_counter() - t0
        C.report_drawn(res)  # outside the timing: daskbench.run returns before the report is drawn
    df = res.load()
    start = df.started_at.min()
    end = (df.started_at + pd.to_timedelta(df.duration_s, unit="s")).max()
    span = (end - start).total_seconds()
    return {
        "trials": n,
        "trial_ms": TRIAL_MS,
        "busy_fraction": float(df.duration_s.sum() / (2 * span)),
        "span_s": span,
        "run_s": wall,
        "best_f": float(df.f.min()),
        "ok": int((df.status == "ok").sum()),
    }


def _hydra_python(argv) -> Optional[str]:
    for i, a in enumerate(argv):
        if a == "--hydra-python" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--hydra-python="):
            return a.split("=", 1)[1]
    return os.environ.get("DASKBENCH_HYDRA_OPTUNA_PYTHON")


def versus_hydra(n: int, python: Optional[str]) -> Dict[str, Any]:
    """Wall time and best value: Hydra's optuna sweeper + joblib against the daskbench CLI."""
    root = _setup(TRIAL_MS)
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "daskbench",
            "--config-dir",
            str(root / "conf"),
            "+experiment=optbench",
            f"sweep.budget={n}",
            "cluster.n_workers=2",
            "runner.progress=none",
        ],
        capture_output=True,
        text=True,
        env=C.env(),
        cwd=root,
    )
    ours_s = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    import pandas as pd

    ours_best = float(pd.read_parquet(root / "results" / "trials").f.min())
    out: Dict[str, Any] = {"trials": n, "trial_ms": TRIAL_MS, "daskbench_s": ours_s, "daskbench_best": ours_best}
    if not python:
        out["hydra"] = "skipped: no --hydra-python (a virtualenv with hydra-optuna-sweeper, which needs optuna<3)"
        return out
    app = root / "hydra_app"
    app.mkdir()
    (app / "app.py").write_text(HYDRA_APP)
    (app / "config.yaml").write_text(HYDRA_CONFIG.format(ms=TRIAL_MS, n=n))
    t0 = time.perf_counter()
    h = subprocess.run([python, "app.py", "-m", "hydra.sweep.dir=multirun"], cwd=app, capture_output=True, text=True)
    hydra_s = time.perf_counter() - t0
    if h.returncode != 0:
        raise RuntimeError(h.stderr[-2000:])
    import yaml

    best = yaml.safe_load((app / "multirun" / "optimization_results.yaml").read_text())["best_value"]
    out.update(hydra_s=hydra_s, hydra_best=float(best))
    return out


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    mode = C.mode(argv)
    data: Dict[str, Any] = {"mode": mode}
    data["overhead"] = [overhead(s, N_OVERHEAD[mode]) for s in ("random", "tpe")]
    data["busy"] = busy_fraction(N_BUSY[mode])
    data["hydra"] = versus_hydra(N_HYDRA[mode], _hydra_python(argv))
    rows = [
        [o["sampler"], o["trials"], o["per_trial_ms"], o["ask_tell_ms"], o["last_quarter_tell_ms"]]
        for o in data["overhead"]
    ]
    print(C.table(rows, ["sampler", "trials", "ms/trial (driver)", "ask+tell ms", "median ms, last quarter"]))
    b = data["busy"]
    print(f"busy fraction, 2 workers, {b['trials']} x {TRIAL_MS} ms trials (tpe): {b['busy_fraction']:.1%}")
    print(data["hydra"])
    C.emit("optuna", data)


if __name__ == "__main__":
    main()
