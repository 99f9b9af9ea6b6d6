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

Each daskbench side is also split into phases, from the moments its (unbuffered) lines
come out: start-up (to ``N trials, M already ok``: the cluster is up), the trials (to
the final ``[daskbench] N/N done``) and the rest (results written, report started,
teardown). A report written in the background is waited for after the side, off the
clock, so that it does not share the cores with the next side.

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
MESA_MISSING = "skipped: mesa not installed (pip install -e '.[bench]')"
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
#: the CLI's lines that end its phases: the cluster is up (the run recorded), every trial has ended
UP_LINE = re.compile(r"^\S+: \d+ trials, \d+ already ok in ")
DONE_LINE = re.compile(r"^\[daskbench\] (\d+)/\1 done")
PHASES = (("startup_s", "start-up, to cluster up"), ("trials_s", "trials phase"), ("rest_s", "rest, to exit"))


def _timed(cmd: List[str], cwd: Path, env: Dict[str, str]) -> Tuple[float, Dict[str, float]]:
    """Whole-process seconds, and its phases from the moments its lines came out (unbuffered):
    ``startup_s`` to the cluster being up, ``trials_s`` from there to the last trial's end,
    ``rest_s`` from there to the exit (results written, report started, teardown); and
    ``cli_run_s``, the run's own figure (``... trials in N s``: from the cluster's wait on)."""
    if cwd.exists():
        shutil.rmtree(cwd)
    cwd.mkdir(parents=True)
    t0 = time.perf_counter()
    p = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL
    )
    assert p.stdout is not None
    lines: List[str] = []
    up = done = None
    for line in p.stdout:
        now = time.perf_counter() - t0
        lines.append(line)
        if up is None and UP_LINE.match(line):
            up = now
        elif up is not None and done is None and DONE_LINE.match(line):
            done = now
    p.wait()
    dt = time.perf_counter() - t0
    out = "".join(lines)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{out[-4000:]}")
    phases: Dict[str, float] = {}
    if up is not None and done is not None:
        phases = {"startup_s": up, "trials_s": done - up, "rest_s": dt - done}
    m = RUN_PHASE.search(out)
    if m:
        phases["cli_run_s"] = float(m.group(1))
    return dt, phases


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
    phase: Dict[str, Dict[str, List[float]]] = {}
    todo = sides(name, baseline_src)
    for _ in range(repeats):
        for side, (cmd, env) in todo.items():
            folder = work / f"{name}-{side}"
            whole, phases = _timed(cmd, folder, env)
            runs.setdefault(side, []).append(whole)
            for k, v in phases.items():
                phase.setdefault(side, {}).setdefault(k, []).append(v)
            shown = ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in phases.items())
            load = os.getloadavg()[0]
            print(f"    {name} {side}: {whole:.2f} s ({shown or 'no phases'}; load {load:.1f})", flush=True)
            if side != "mesa":  # off the clock: the next side must not share the cores with it
                C.wait_for_report(folder / "results" / name)
    med = {side: C.median(v) for side, v in runs.items()}
    res: Dict[str, Any] = {"seconds": runs, "median_s": med, "vs_today": med["today"] / med["auto"]}
    res["phases_s"] = phase
    res["phase_median_s"] = {side: {k: C.median(v) for k, v in ks.items()} for side, ks in phase.items()}
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
        ph = r["phase_median_s"]
        for key, what in PHASES:
            a, b = ph.get("auto", {}).get(key), ph.get("today", {}).get(key)
            if a is not None and b is not None:
                rows.append([f"{name}: {what}", f"{a:.2f} s", f"{b:.2f} s", f"{b / a:.1f}x" if a > 0 else "", ""])
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
        elif name == "boltzmann":  # the target's baseline is missing: say so, never leave it out silently
            rows.append([f"{name}: auto vs mesa.batch_run(2)", "", MESA_MISSING, "", ">= 3x"])
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
