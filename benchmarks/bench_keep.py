"""Interactive reruns: a 200-trial no-op sweep from the command line against a kept
cluster (``python -m daskbench cluster start``), side by side with the same sweep
on a fresh embedded cluster and with a raw-Dask client on a running scheduler.

Every command is timed end to end as a subprocess (wall clock, interpreter start
to exit) with the shipped defaults: dashboard on, report written, one worker per
core; each sweep writes to a fresh results folder, so all 200 trials run:

(a) ``python -m daskbench --config-dir DIR +experiment=noop`` with no cluster kept
    (an empty ``DASKBENCH_STATE_DIR``): it starts its own LocalCluster;
(b) the same command with a kept cluster: it runs on the kept cluster's driver
    zygote (the run path imported once, one fork per command);
(c) the same, the kept cluster started with ``DASKBENCH_KEPT_DRIVER=0``: the command
    imports daskbench, Hydra, pyarrow and distributed itself and connects a Client;
(d) raw Dask: ``python -c`` that imports distributed, connects a Client to the kept
    cluster's scheduler, maps the no-op function over 200 items and gathers.

(b) and (c) are also timed with ``results.report=false``. The command's CPU
time (user + sys of the process and, on the driver zygote, of the child that
ran it, read from the kept cluster's log; the cluster's own processes excluded)
is recorded next to the wall clock, and ``uptime``'s load before and after.
Repeats alternate between the commands; medians are reported.
Target: (b) under 0.5 s.

    python -m benchmarks.bench_keep [--smoke|--quick|--full]
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

if not __package__:  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402

SIZES = {"smoke": 20, "quick": 200, "full": 200}
REPEATS = {"smoke": 1, "quick": 5, "full": 10}
TARGET_S = 0.5

RAW = """\
import sys
from distributed import Client
from benchmarks.workloads import noop
with Client(sys.argv[1]) as c:
    out = c.gather(c.map(noop, range({n}), pure=False))
assert len(out) == {n}
"""


def load() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def timed(cmd: List[str], cwd: Path, env: Dict[str, str], expect: str = "") -> Dict[str, float]:
    """Wall clock and the command's own CPU seconds of one subprocess run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0 or expect not in r.stdout:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": wall, "cpu_s": cpu}


class Bench:
    def __init__(self, work: Path, n: int):
        self.work, self.n, self.i = work, n, 0
        self.seen: Dict[str, int] = {}
        conf = work / "conf"
        C.write_noop_experiment(conf, work / "unused", {"trial.x": f"range(0,{n})"})
        self.base = [C.PY, "-m", "daskbench", "--config-dir", str(conf), "+experiment=noop"]

    def env(self, state: str) -> Dict[str, str]:
        return dict(C.env(), DASKBENCH_STATE_DIR=str(self.work / state))

    def sweep(self, state: str, *extra: str) -> Dict[str, float]:
        self.i += 1
        results = self.work / f"results-{self.i}"
        out = timed([*self.base, f"results.dir={results}", *extra], self.work, self.env(state), f"{self.n} ok")
        if "results.report=false" not in extra:
            C.wait_for_report(results)  # off the clock: the next command must not compete with it
        shutil.rmtree(results, ignore_errors=True)
        log = self.work / state / "cluster.log"
        done = [ln for ln in log.read_text().splitlines() if ln.startswith("done ")] if log.exists() else []
        if len(done) > self.seen.get(state, 0):  # it ran on the driver zygote: add its child's CPU
            self.seen[state] = len(done)
            out["driver_cpu_s"] = float(done[-1].rsplit("cpu ", 1)[1].rstrip("s"))
            out["cpu_s"] += out["driver_cpu_s"]
        return out

    def cluster(self, state: str, what: str, **env: str) -> Dict[str, float]:
        return timed([C.PY, "-m", "daskbench", "cluster", what], self.work, dict(self.env(state), **env))

    def address(self, state: str) -> str:
        import json

        return json.loads((self.work / state / "cluster.json").read_text())["address"]


def run(work: Path, n: int, repeats: int) -> Dict[str, object]:
    b = Bench(work, n)
    (work / "none").mkdir()
    starts = {
        "kept": b.cluster("kept", "start"),
        "kept_no_driver": b.cluster("kept-nodriver", "start", DASKBENCH_KEPT_DRIVER="0"),
    }
    time.sleep(3.0)  # the driver zygote finishes its imports after `start` returns
    raw = work / "raw.py"
    raw.write_text(RAW.format(n=n))
    cases = {
        "fresh_embedded": lambda: b.sweep("none"),
        "kept_driver": lambda: b.sweep("kept"),
        "kept_driver_no_report": lambda: b.sweep("kept", "results.report=false"),
        "kept_in_process": lambda: b.sweep("kept-nodriver"),
        "kept_in_process_no_report": lambda: b.sweep("kept-nodriver", "results.report=false"),
        "raw_dask_client": lambda: timed([C.PY, str(raw), b.address("kept")], work, C.env()),
    }
    runs: Dict[str, List[Dict[str, float]]] = {k: [] for k in cases}
    load_before = load()
    try:
        for _ in range(repeats):
            for k, fn in cases.items():
                runs[k].append(fn())
    finally:
        stops = {"kept": b.cluster("kept", "stop"), "kept_no_driver": b.cluster("kept-nodriver", "stop")}
    med = {
        k: {"seconds": C.median([r["seconds"] for r in v]), "cpu_s": C.median([r["cpu_s"] for r in v])}
        for k, v in runs.items()
    }
    return {
        "median": med,
        "runs": runs,
        "start": starts,
        "stop": stops,
        "load_before": load_before,
        "load_after": load(),
    }


LABELS = [
    ("fresh_embedded", "python -m daskbench, no kept cluster (starts a LocalCluster)"),
    ("kept_driver", "same, kept cluster (on its driver zygote)"),
    ("kept_driver_no_report", "  same, results.report=false"),
    ("kept_in_process", "same, kept cluster, DASKBENCH_KEPT_DRIVER=0 (imports in the command)"),
    ("kept_in_process_no_report", "  same, results.report=false"),
    ("raw_dask_client", "raw Dask: import distributed, Client(address), map + gather"),
]


def main() -> None:
    mode = C.mode()
    n, repeats = SIZES[mode], REPEATS[mode]
    work = C.tmpdir("keep")
    try:
        res = run(work, n, repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = res["median"]
    assert isinstance(med, dict)
    fresh = med["fresh_embedded"]["seconds"]
    rows = [[label, med[k]["seconds"], med[k]["cpu_s"], f"{fresh / med[k]['seconds']:.1f}x"] for k, label in LABELS]
    print(f"\n{n} no-op trials, subprocess wall clock incl. start-up, median of {repeats}; load {res['load_before']}\n")
    print(C.table(rows, ["command", "seconds", "driver CPU s", "vs fresh"]))
    kept = med["kept_driver"]["seconds"]
    met = kept < TARGET_S
    print(f"\nkept cluster: {kept:.2f} s;  target < {TARGET_S:g} s: {'MET' if met else 'NOT MET'}")
    print(f"cluster start {res['start']['kept']['seconds']:.2f} s, stop {res['stop']['kept']['seconds']:.2f} s\n")
    C.emit(
        "keep",
        dict(
            res,
            mode=mode,
            trials=n,
            repeats=repeats,
            target=f"< {TARGET_S:g} s whole process (kept cluster, shipped defaults)",
            target_met=met,
            command=f"python -m benchmarks.bench_keep --{mode}",
            cores=os.cpu_count(),
        ),
    )


if __name__ == "__main__":
    main()
