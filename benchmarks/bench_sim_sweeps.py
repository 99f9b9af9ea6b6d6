"""The shipped simulation experiments as a new user runs them, whole process, side by side.

Each side is one ``python -m daskbench +experiment=NAME`` (shipped defaults: embedded
2-worker LocalCluster, dashboard on, report written) in a fresh folder, timed from the
process's start to its exit, the sides alternating:

- ``auto``: this tree's defaults (``trial.shards: auto``: the shipped models are small,
  so every trial runs in its own task and the sweep spreads over the workers);
- ``today``: the rule the experiments shipped with before, every trial sharded over
  every worker; ``trial.shards=null`` in this tree, or, with ``--baseline-src DIR``,
  that source tree's ``python -m daskbench +experiment=NAME`` (its own defaults);
- for ``boltzmann`` also ``mesa.batch_run(number_processes=2)`` of the same six runs
  (100, 1,000 and 10,000 agents, 2 replicates, 100 steps) with a DataCollector of the
  same reporters (Gini, max_wealth, wealth_total every step; each agent's wealth every
  50 steps, as ``agent_report_every``): ``benchmarks/mesa_boltzmann.py``, in a
  ``python -c`` process of its own.

    .venv/bin/python benchmarks/bench_sim_sweeps.py [--repeats=3] [--only=boltzmann] [--baseline-src DIR]
    .venv/bin/python benchmarks/bench_sim_sweeps.py --smoke     # one repeat, boltzmann only

Writes ``benchmarks/results/sim_sweeps.json`` (see ``_common.emit``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402

EXPERIMENTS = ("boltzmann", "epidemic", "market")
TARGETS = {"vs_today": 5.0, "vs_mesa": 3.0}
MESA = """
import sys
sys.path.insert(0, {here!r})
import mesa
from mesa_boltzmann import SweepMoneyModel
out = mesa.batch_run(SweepMoneyModel, parameters={{"n": [100, 1000, 10000]}}, iterations=2, max_steps=100,
                     number_processes=2, data_collection_period=1, display_progress=False)
assert len({{(r["n"], r["iteration"]) for r in out}}) == 6, len(out)
"""


RUN_PHASE = re.compile(r" of \d+ trials in ([0-9.]+)s")


def _timed(cmd: List[str], cwd: Path, env: Dict[str, str]) -> Tuple[float, Optional[float]]:
    """Whole-process seconds, and the run phase the CLI reports (trials only: no start-up, no report)."""
    if cwd.exists():
        shutil.rmtree(cwd)
    cwd.mkdir(parents=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    m = RUN_PHASE.search(r.stdout)
    return dt, float(m.group(1)) if m else None


def sides(name: str, baseline_src: Optional[str]) -> Dict[str, Any]:
    """{side: (command, environment)} for one experiment."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cli = [sys.executable, "-m", "daskbench", f"+experiment={name}"]
    out: Dict[str, Any] = {"auto": (cli, env)}
    if baseline_src:
        out["today"] = (cli, dict(env, PYTHONPATH=baseline_src))
    else:
        out["today"] = ([*cli, "trial.shards=null"], env)
    if name == "boltzmann":
        try:
            import mesa  # noqa: F401
        except ImportError:
            pass  # Mesa comes with the bench extra only
        else:
            out["mesa"] = ([sys.executable, "-c", MESA.format(here=str(HERE))], env)
    return out


def bench(name: str, repeats: int, baseline_src: Optional[str], work: Path) -> Dict[str, Any]:
    runs: Dict[str, List[float]] = {}
    phase: Dict[str, List[float]] = {}
    todo = sides(name, baseline_src)
    for _ in range(repeats):
        for side, (cmd, env) in todo.items():
            whole, run_s = _timed(cmd, work / f"{name}-{side}", env)
            runs.setdefault(side, []).append(whole)
            if run_s is not None:
                phase.setdefault(side, []).append(run_s)
            print(f"    {name} {side}: {whole:.1f} s, run phase {run_s} s (load {os.getloadavg()[0]:.1f})", flush=True)
    med = {side: C.median(v) for side, v in runs.items()}
    res: Dict[str, Any] = {"seconds": runs, "median_s": med, "vs_today": med["today"] / med["auto"]}
    res["run_phase_s"] = {side: C.median(v) for side, v in phase.items()}
    if "mesa" in med:
        res["vs_mesa"] = med["mesa"] / med["auto"]
    return res


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default=",".join(EXPERIMENTS))
    p.add_argument("--baseline-src", default=None, help="a source tree (its src/) to run as 'today'")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    names = ["boltzmann"] if args.smoke else [n for n in args.only.split(",") if n]
    repeats = 1 if args.smoke else args.repeats
    work = C.tmpdir("bench-sim-sweeps")
    res: Dict[str, Any] = {"repeats": repeats, "targets": TARGETS, "baseline_src": bool(args.baseline_src)}
    res["load_before"] = os.getloadavg()
    for name in names:
        print(f"  {name} ...", flush=True)
        res[name] = bench(name, repeats, args.baseline_src, work)
    res["load_after"] = os.getloadavg()
    rows = []
    for name in names:
        r = res[name]
        m = r["median_s"]
        rows.append(
            [f"{name}: auto vs today", f"{m['auto']:.1f} s", f"{m['today']:.1f} s", f"{r['vs_today']:.1f}x", ">= 5x"]
        )
        ph = r["run_phase_s"]
        if "auto" in ph and "today" in ph:
            rows.append(
                [
                    f"{name}: run phase only (trials)",
                    f"{ph['auto']:.1f} s",
                    f"{ph['today']:.1f} s",
                    f"{ph['today'] / ph['auto']:.1f}x",
                    "",
                ]
            )
        if "vs_mesa" in r:
            rows.append(
                [
                    f"{name}: auto vs mesa.batch_run(2)",
                    f"{m['auto']:.1f} s",
                    f"{m['mesa']:.1f} s",
                    f"{r['vs_mesa']:.2f}x",
                    ">= 3x",
                ]
            )
    print()
    print(C.table(rows, ["whole process", "daskbench", "baseline", "ratio", "target"]))
    print(f"load average before {res['load_before'][0]:.1f}, after {res['load_after'][0]:.1f}")
    res["target_met"] = {
        **{f"{n}_vs_today": res[n]["vs_today"] >= TARGETS["vs_today"] for n in names},
        **(
            {"boltzmann_vs_mesa": res["boltzmann"]["vs_mesa"] >= TARGETS["vs_mesa"]}
            if "vs_mesa" in res.get("boltzmann", {})
            else {}
        ),
    }
    C.emit("sim_sweeps", res)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
