"""Run the benchmark suite and print one summary table.

    python -m benchmarks            # the quick set (a few minutes)
    python -m benchmarks --full     # every size (well under an hour on 2 cores)
    python -m benchmarks --smoke    # smallest sizes: checks the scripts run (about a minute)
    python -m benchmarks --only=throughput,store   # some of them
    python -m benchmarks --summarise               # the table again, from the JSON already written

Each benchmark runs as its own subprocess (so none inherits another's cluster,
imports or memory), writes ``benchmarks/results/<name>.json`` and is summarised
here from that file; the summary goes to ``benchmarks/results/summary.json``.
A benchmark whose script is missing is reported as "not available"; one that
fails is reported as failed, and the others still run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any, Dict, List

from benchmarks import _common as C
from benchmarks.summary import HEADER, rows_for

#: (name = results/<name>.json, script in benchmarks/)
BENCHES = [
    ("expand", "bench_expand.py"),
    ("throughput", "bench_throughput.py"),
    ("hydra", "bench_hydra.py"),
    ("launcher", "bench_launcher.py"),  # the Hydra launcher plugin against Hydra's joblib launcher
    ("scale", "bench_scale.py"),
    ("projection", "projection.py"),  # from scale.json: no timing of its own
    ("million", "bench_million.py"),
    ("store", "bench_store.py"),
    ("sim", "bench_sim.py"),  # written separately; may not exist yet
]


#: seconds one benchmark may take before it is stopped and reported as timed out
TIMEOUT_S = {"smoke": 150, "quick": 900, "full": 2400}


def run_one(name: str, script: str, mode: str) -> Dict[str, Any]:
    path = C.HERE / script
    if not path.exists():
        return {"status": "not available", "why": f"benchmarks/{script} does not exist yet"}
    out = C.RESULTS / f"{name}.json"
    print(f"\n=== {script} --{mode} " + "=" * max(0, 56 - len(script)), flush=True)
    t0 = time.time()
    # its own process group, so a timeout stops the benchmark and the clusters it started
    proc = subprocess.Popen([C.PY, str(path), f"--{mode}"], cwd=C.ROOT, env=C.env(), start_new_session=True)
    try:
        proc.wait(timeout=TIMEOUT_S[mode])
    except subprocess.TimeoutExpired:
        _stop(proc)
        return {"status": "failed", "why": f"timed out after {TIMEOUT_S[mode]} s", "seconds": time.time() - t0}
    took = time.time() - t0
    if proc.returncode != 0:
        return {"status": "failed", "why": f"exit status {proc.returncode}", "seconds": took}
    if not out.exists() or out.stat().st_mtime < t0 - 1:
        return {"status": "failed", "why": f"wrote no fresh {out.name}", "seconds": took}
    return {"status": "ok", "seconds": took, "result": json.loads(out.read_text())}


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the benchmark's process group, then SIGKILL what is left."""
    import os
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            if sig == signal.SIGTERM:
                time.sleep(1)  # let workers in the group exit too
        except subprocess.TimeoutExpired:
            continue


def main(argv: List[str]) -> int:
    mode = C.mode(argv)
    only = next((a.split("=", 1)[1].split(",") for a in argv if a.startswith("--only=")), None)
    benches = [(n, s) for n, s in BENCHES if only is None or n in only]
    t_all = time.perf_counter()
    done: Dict[str, Dict[str, Any]] = {}
    for name, script in benches:
        if "--summarise" in argv:
            path = C.RESULTS / f"{name}.json"
            done[name] = (
                {"status": "ok", "result": json.loads(path.read_text())}
                if path.exists()
                else {"status": "not available", "why": f"no {path.name}"}
            )
            continue
        done[name] = run_one(name, script, mode)
    rows: List[List[Any]] = []
    for name, _ in benches:
        d = done[name]
        if d["status"] != "ok":
            rows.append([name, d["status"], d["why"], "", "", ""])
            continue
        try:
            rows.extend(rows_for(name, d["result"]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # a result shape we do not know
            rows.append([name, "ok", f"see results/{name}.json ({type(exc).__name__}: {exc})", "", "", ""])
    took = time.perf_counter() - t_all
    print(f"\n=== summary: --{mode}, {C.cores()} cores, {took:.0f} s in all ===\n")
    print(C.table(rows, HEADER))
    if "--summarise" in argv:
        return 0
    failed = [n for n, d in done.items() if d["status"] == "failed"]
    C.emit(
        "summary",
        {
            "mode": mode,
            "seconds": took,
            "rows": [dict(zip(HEADER, map(str, r))) for r in rows],
            "benchmarks": {n: {k: v for k, v in d.items() if k != "result"} for n, d in done.items()},
            "failed": failed,
            "command": f"python -m benchmarks --{mode}",
        },
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
