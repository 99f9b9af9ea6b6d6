"""Run the four benchmarks in sequence and print a summary.

Each benchmark runs as its own subprocess (so none inherits another's
cluster, imports or memory) and leaves its figures in benchmarks/results/;
the summary is printed and written to benchmarks/results/summary.json.

    .venv/bin/python benchmarks/run_all.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

BENCHES = [("bench_expand.py", "expand"), ("bench_throughput.py", "throughput"),
           ("bench_hydra.py", "hydra"), ("bench_million.py", "million")]


def summary_row(name: str, r: dict) -> list:
    if name == "expand":
        return ["expand: driver us/trial (100k)", f"{r['us_per_trial']:.1f} us",
                f"{r['baseline_us_per_trial']:,.0f} us (compose)", f"{r['ratio']:,.0f}x", r["target"], r["target_met"]]
    if name == "throughput":
        return [f"throughput: {r['trials']:,} no-ops", f"{r['daskbench_run']['trials_per_s']:,.0f}/s",
                f"{r['raw_client_map']['trials_per_s']:,.0f}/s (client.map)", f"{r['ratio']:.1f}x",
                r["target"], r["target_met"]]
    if name == "hydra":
        return [f"CLI vs Hydra joblib: {r['trials']} no-ops", f"{r['daskbench_cli']['seconds']:.2f} s",
                f"{r['hydra_joblib']['seconds']:.2f} s (hydra -m)", f"{r['ratio']:.1f}x", r["target"], r["target_met"]]
    if name == "million":
        return [f"million: {r['trials']:,} no-ops", f"{r['driver_peak_rss_mib']:,.0f} MiB peak",
                f"{r['wall_s']:.1f} s, {r['trials_per_s']:,.0f}/s", "-", r["target"], r["target_met"]]
    return [name, "?", "?", "?", "?", "?"]


def main() -> int:
    rows, failed, results = [], [], {}
    t_all = time.perf_counter()
    for script, name in BENCHES:
        print(f"\n=== {script} " + "=" * max(0, 60 - len(script)), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([C.PY, str(C.HERE / script)], cwd=C.ROOT)
        took = time.perf_counter() - t0
        path = C.RESULTS / f"{name}.json"
        if proc.returncode != 0 or not path.exists() or path.stat().st_mtime < time.time() - took - 1:
            failed.append(script)
            rows.append([script, "FAILED", "", "", "", False])
            continue
        r = json.loads(path.read_text())
        results[name] = r
        rows.append(summary_row(name, r))
    print(f"\n=== summary ({C.machine()['cores']} cores; {time.perf_counter() - t_all:.0f}s in all) ===\n")
    print(C.table(rows, ["benchmark", "daskbench", "baseline", "ratio", "target", "met"]))
    header = ["benchmark", "daskbench", "baseline", "ratio", "target", "met"]
    summary = {"rows": [dict(zip(header, r)) for r in rows], "failed": failed,
               "files": [str(C.RESULTS / f"{n}.json") for n in results],
               "all_targets_met": all(r[-1] is True for r in rows)}
    C.emit("summary", summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
