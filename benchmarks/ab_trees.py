"""The same ``python -m daskbench`` command timed on two source trees, alternating.

On a shared machine only side-by-side figures mean anything: this runs
``bench_hydra``'s no-op command (200 trials of ``benchmarks.workloads.busy`` with
``ms=0``, 2 workers, shipped defaults: dashboard on, report written in the
background and waited for off the clock) with ``PYTHONPATH=TREE/src`` for each
tree in turn, ``--rounds`` times (the order flips every round), and prints each
tree's median, the ratio, and the load average before each run.

    .venv/bin/python benchmarks/ab_trees.py BEFORE_TREE AFTER_TREE [--rounds=5] [--trials=200]
        [EXTRA_OVERRIDE ...]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402


def timed(tree: Path, work: Path, n: int, extra: list) -> float:
    out = work / "db_results"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [C.PY, "-m", "daskbench", "--config-dir", str(work / "conf"), "+experiment=busy"]
    cmd += [f"trial.i=range(0,{n})", "trial.ms=0.0", "cluster.n_workers=2", *extra]
    env = C.env()
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "src"), str(C.ROOT)])  # the tree's daskbench first
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0 or f"{n} ok, 0 failed" not in proc.stdout:
        sys.stdout.write(proc.stdout[-3000:])
        raise SystemExit(f"{tree}: the command failed ({proc.returncode})")
    if "results.report=false" not in extra:
        C.wait_for_report(out)  # written in the background: off the clock, as for a user
    return dt


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    trees = [Path(a).resolve() for a in args[:2]]
    extra = args[2:]
    rounds = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--rounds=")), 5)
    n = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--trials=")), 200)
    work = C.tmpdir("ab")
    runs: dict = {str(t): [] for t in trees}
    loads = []
    try:
        busy = {"ms": 0.0, "i": 0}
        C.write_experiment(work / "conf", "busy", "benchmarks.workloads.busy", busy, work / "db_results", report=True)
        for r in range(rounds):
            for tree in trees if r % 2 == 0 else trees[::-1]:
                loads.append(os.getloadavg()[0])
                runs[str(tree)].append(timed(tree, work, n, extra))
            print(f"round {r + 1}: " + ", ".join(f"{Path(k).name} {v[-1]:.2f}s" for k, v in runs.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: C.median(v) for k, v in runs.items()}
    before, after = (med[str(t)] for t in trees)
    rows = [[Path(k).name, med[k], " ".join(f"{x:.2f}" for x in runs[k])] for k in runs]
    print(f"\n{n} no-op trials, whole process, median of {rounds}; load {min(loads):.1f}-{max(loads):.1f}\n")
    print(C.table(rows, ["tree", "median s", "runs"]))
    print(f"\n{trees[0].name} / {trees[1].name}: {before / after:.2f}x")
    print(json.dumps({"trials": n, "extra": extra, "runs": runs, "median": med, "loads": loads}))


if __name__ == "__main__":
    main()
