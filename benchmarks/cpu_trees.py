"""The CPU of the whole ``python -m daskbench`` command on two source trees, alternating.

Wall-clock figures on a shared machine swing with the load; the CPU a command spends
does much less. This process makes itself a child subreaper (Linux ``prctl``), so the
fork server, the scheduler and the workers, orphaned when the driver exits, are waited
for here and their CPU counted (``wait4``: each with the descendants it waited for).
The command is ``ab_trees.py``'s (200 no-op trials, 2 workers) with the report off, so
that only the command itself is counted; with ``--experiment=NAME``, the shipped
``python -m daskbench +experiment=NAME results.report=false`` in a fresh folder.

    .venv/bin/python benchmarks/cpu_trees.py BEFORE_TREE AFTER_TREE [--rounds=4] [--experiment=NAME]
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36


def one(tree: Path, work: Path, experiment: str = "") -> dict:
    shutil.rmtree(work / "db_results", ignore_errors=True)
    shutil.rmtree(work / "results", ignore_errors=True)
    env = C.env()
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "src"), str(C.ROOT)])
    if experiment:  # a shipped experiment, as a user runs it (its results under ./results)
        cmd = [C.PY, "-m", "daskbench", f"+experiment={experiment}", "results.report=false"]
    else:
        cmd = [C.PY, "-m", "daskbench", "--config-dir", str(work / "conf"), "+experiment=busy"]
        cmd += ["trial.i=range(0,200)", "trial.ms=0.0", "cluster.n_workers=2"]
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver, rest = 0.0, 0.0
    while True:  # the driver, then every descendant orphaned to this process
        try:
            pid, status, ru = os.wait4(-1, 0)
        except ChildProcessError:
            break
        cpu = ru.ru_utime + ru.ru_stime
        if pid == proc.pid:
            driver = cpu
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"{tree}: the command failed")
        else:
            rest += cpu
    return {"driver": driver, "others": rest, "total": driver + rest}


def main() -> None:
    trees = [Path(a).resolve() for a in sys.argv[1:] if not a.startswith("--")][:2]
    rounds = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--rounds=")), 4)
    experiment = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--experiment=")), "")
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    work = C.tmpdir("cpu")
    runs: dict = {str(t): [] for t in trees}
    loads = []
    try:
        busy = {"ms": 0.0, "i": 0}
        C.write_experiment(work / "conf", "busy", "benchmarks.workloads.busy", busy, work / "db_results")
        for r in range(rounds):
            for tree in trees if r % 2 == 0 else trees[::-1]:
                loads.append(os.getloadavg()[0])
                runs[str(tree)].append(one(tree, work, experiment))
            print(f"round {r + 1}: " + ", ".join(f"{Path(k).name} {v[-1]['total']:.2f}s" for k, v in runs.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for k, v in runs.items():
        rows.append([Path(k).name] + [C.median([x[part] for x in v]) for part in ("total", "driver", "others")])
    print(f"\nCPU seconds of the whole command, median of {rounds}; load {min(loads):.1f}-{max(loads):.1f}\n")
    print(C.table(rows, ["tree", "total", "driver", "fork server + its forks"]))
    print(json.dumps({"runs": runs, "loads": loads}))


if __name__ == "__main__":
    main()
