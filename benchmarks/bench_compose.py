"""Repeated ``daskbench.run`` on one client with the compose memo on and off, side by side.

In one process, on one ``LocalCluster(2 workers)`` started before the clock: runs of
``N`` trials of 1 ms (``benchmarks.workloads.busy``, every run to a new results folder,
as ``bench_throughput``'s daskbench side) alternate with the memo of Hydra compositions
on and off (``DASKBENCH_COMPOSE_MEMO``), and ``joblib.Parallel(n_jobs=2)`` of the same
trials; medians of each, with the time spent in ``build_plan``. Then one composition of
the same experiment, memo off, with OmegaConf's YAML loader on libyaml and on PyYAML's
pure-Python parser, alternating.

    python benchmarks/bench_compose.py [--smoke|--quick|--full]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402
from benchmarks.workloads import busy  # noqa: E402

TRIALS = {"smoke": 20, "quick": 200, "full": 200}
ROUNDS = {"smoke": 2, "quick": 9, "full": 15}
MEMO_ENV = "DASKBENCH_COMPOSE_MEMO"


def _runs(conf: Path, work: Path, n: int, rounds: int) -> Dict[str, Any]:
    from distributed import Client
    from joblib import Parallel, delayed

    import daskbench
    import daskbench.api as api

    spent: List[float] = []
    build_plan = api.build_plan

    def timed(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return build_plan(*a, **k)
        finally:
            spent.append(time.perf_counter() - t)

    api.build_plan = timed
    cluster = C.local_cluster(2)
    client = Client(cluster)
    pool = Parallel(n_jobs=2, backend="loky")
    walls: Dict[str, List[float]] = {"memo_on": [], "memo_off": [], "joblib": []}
    plans: Dict[str, List[float]] = {"memo_on": [], "memo_off": []}
    runs = 0

    def one(side: str) -> float:
        nonlocal runs
        runs += 1
        os.environ[MEMO_ENV] = "1" if side == "memo_on" else "0"
        out = work / "results" / f"r{runs}"
        t0 = time.perf_counter()
        res = daskbench.run(
            "busy",
            [f"trial.i=range(0,{n})", f"results.dir={out}", "trial.ms=1.0"],
            client=client,
            config_dir=str(conf),
            progress="none",
            echo=lambda s: None,
        )
        wall = time.perf_counter() - t0
        assert res.counts.ok == n and res.exit_code == 0, res.counts
        C.report_drawn(res)  # outside the timing: the user does not wait for it, the next run must not compete with it
        shutil.rmtree(out, ignore_errors=True)
        return wall

    try:
        for side in ("memo_on", "memo_off", "memo_on", "memo_off"):  # warm-up: the memo stores at the second
            one(side)
        pool(delayed(busy)(0, i) for i in range(20))
        for _ in range(rounds):
            for side in ("memo_on", "memo_off"):
                walls[side].append(one(side))
                plans[side].append(spent[-1])
            t0 = time.perf_counter()
            pool(delayed(busy)(1.0, i) for i in range(n))
            walls["joblib"].append(time.perf_counter() - t0)
    finally:
        os.environ.pop(MEMO_ENV, None)
        api.build_plan = build_plan
        client.close()
        cluster.close()
    med = {k: C.median(v) for k, v in walls.items()}
    return {
        side: {
            "run_s": med[side],
            "build_plan_s": C.median(plans[side]) if side in plans else None,
            "vs_joblib": med["joblib"] / med[side],
        }
        for side in walls
    }


def _yaml(conf: Path, rounds: int) -> Dict[str, float]:
    from daskbench.config import compose, yamlload

    dirs = compose.search_dirs(str(conf))
    words = ["+experiment=busy", "trial.ms=1.0"]
    os.environ[MEMO_ENV] = "0"
    real = yamlload._LOADER
    times: Dict[str, List[float]] = {"libyaml": [], "omegaconf": []}
    try:
        compose._compose(dirs, words, str(conf))
        for _ in range(rounds * 3):
            for side in times:
                yamlload._LOADER = real if side == "libyaml" else None
                t0 = time.perf_counter()
                compose._compose(dirs, words, str(conf))
                times[side].append(time.perf_counter() - t0)
    finally:
        yamlload._LOADER = real
        os.environ.pop(MEMO_ENV, None)
    return {side: statistics.median(v) for side, v in times.items()}


def main() -> None:
    from daskbench.config import yamlload

    mode = C.mode()
    work = C.tmpdir("compose")
    conf = work / "conf"
    C.write_experiment(conf, "busy", "benchmarks.workloads.busy", {"ms": 0.0, "i": 0}, work / "unused", report=True)
    n, rounds = TRIALS[mode], ROUNDS[mode]
    load = os.getloadavg()[0]
    try:
        runs = _runs(conf, work, n, rounds)
        yaml_s = _yaml(conf, rounds) if yamlload.available() else {}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        [f"daskbench, compose memo {side.split('_')[1]}", runs[side]["run_s"], runs[side]["build_plan_s"]]
        + [f"{runs[side]['vs_joblib']:.2f}x"]
        for side in ("memo_on", "memo_off")
    ] + [["joblib", runs["joblib"]["run_s"], "-", "-"]]
    print(f"\n{n} trials of 1 ms on one client, median of {rounds} alternating runs (load {load:.1f})\n")
    print(C.table(rows, ["side", "run s", "build_plan s", "vs joblib"]))
    if yaml_s:
        print(
            f"\none composition, memo off: libyaml {yaml_s['libyaml'] * 1e3:.1f} ms, "
            f"OmegaConf's pure-Python loader {yaml_s['omegaconf'] * 1e3:.1f} ms\n"
        )
    C.emit("compose", {"trials": n, "rounds": rounds, "load_1min": load, "runs": runs, "composition_s": yaml_s})


if __name__ == "__main__":
    main()
