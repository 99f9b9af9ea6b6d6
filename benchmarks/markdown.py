"""Print the tables of BENCHMARKS.md from ``benchmarks/results/*.json``.

So the page shows exactly what a run measured: run the suite, then paste.

    python -m benchmarks.markdown [throughput|hydra|scale|projection|store|summary ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _common as C  # noqa: E402
from benchmarks.summary import HEADER, rows_for  # noqa: E402


def md(rows: List[List[Any]], header: List[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(C._fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return "\n".join(out)


def load(name: str) -> Dict[str, Any]:
    return json.loads((C.RESULTS / f"{name}.json").read_text())


def throughput() -> str:
    r = load("throughput")
    tools = [
        ("daskbench", "daskbench.run"),
        ("dask_map", "client.map"),
        ("joblib", "joblib loky"),
        ("process_pool", "ProcessPool"),
    ]
    rows = []
    for c in r["cells"]:
        row = [f"{c['trial_ms']} ms", f"{c['trials']:,}"]
        db = c["tools"]["daskbench"]
        for tool, _ in tools:
            v = c["tools"].get(tool, {})
            if "seconds" not in v:
                row.append("skipped")
                continue
            eff = f", {v['efficiency']:.0%}" if c["trial_ms"] else ""
            ratio = f" ({v['seconds'] / db['seconds']:.2f}x)" if tool != "daskbench" and "seconds" in db else ""
            row.append(f"{v['trials_per_s']:,.0f}/s{eff}{ratio}")
        rows.append(row)
    text = md(rows, ["trial", "trials", *[label for _, label in tools]])
    labels = dict(tools)
    notes = []
    for c in r["cells"]:
        sk = {t: v["skipped"] for t, v in c["tools"].items() if "skipped" in v}
        if sk:
            est = [
                float(w.split("estimated ")[1].split(" s")[0].replace(",", "")) for w in sk.values() if "estimated" in w
            ]
            who = "all tools" if len(sk) == len(tools) else ", ".join(labels.get(t, t) for t in sk)
            notes.append(
                f"{c['trial_ms']} ms × {c['trials']:,}: {who}"
                + (f" (estimated {min(est):,.0f} s or more per run)" if est else "")
            )
    if notes:
        text += "\n\nSkipped: " + "; ".join(notes) + "."
    mrows = []
    for c in r["mesa"]:
        b, d = c["tools"]["mesa_batch_run"], c["tools"]["daskbench_mesa"]
        if "seconds" in b:
            mrows.append(
                [
                    f"{c['trials']:,}",
                    f"{c['model']['n']} agents x {c['model']['steps']} steps",
                    f"{b['trials_per_s']:,.0f}/s, {b['efficiency']:.0%}",
                    f"{d['trials_per_s']:,.0f}/s, {d['efficiency']:.0%}",
                    f"{b['seconds'] / d['seconds']:.2f}x",
                ]
            )
    if mrows:
        text += "\n\n" + md(mrows, ["trials", "model", "mesa.batch_run", "daskbench.run", "daskbench speed-up"])
    return text


def hydra() -> str:
    r = load("hydra")
    rows = []
    for L in r["lengths"]:
        for k, label in [
            ("hydra_joblib", "Hydra `-m` + joblib launcher, 2 jobs (baseline)"),
            ("daskbench_cli", "`python -m daskbench`, LocalCluster 2 workers"),
            ("daskbench_cli_no_dashboard", "same, `cluster.dashboard_address=null`"),
            ("bare_localcluster_with_dashboard", "bare LocalCluster start + close, no trials"),
        ]:
            v = L.get(k)
            if v and "seconds" in v:
                eff = f"{v['efficiency']:.0%}" if L["trial_ms"] and "bare" not in k else "-"
                rows.append(
                    [f"{L['trial_ms']} ms", label, f"{v['seconds']:.2f}", eff, f"{v.get('speedup_vs_hydra', 0):.1f}x"]
                )
    return md(rows, ["trial", "method", "seconds", "efficiency", "speed-up vs Hydra"])


def scale() -> str:
    r = load("scale")
    sizes = r["sizes"]
    labels = {
        "expand_s": "expansion (us/trial)",
        "submit_s": "submission (us/trial)",
        "wall_s": "daskbench.run end to end (us/trial)",
        "scheduler_cpu_s": "scheduler CPU (us/trial)",
        "driver_cpu_s": "driver CPU (us/trial)",
        "driver_growth_mib": "driver RSS growth (bytes/trial)",
        "scheduler_growth_mib": "scheduler RSS growth (bytes/trial)",
    }
    rows = []
    for key, label in labels.items():
        vals = r["per_trial"].get(key)
        if vals:
            g = r["growth_ratio"][key]
            rows.append([label, *vals, f"{g:.2f}" if g else "-", "GROWING" if key in r["growing"] else "flat"])
    for key, label in [
        ("driver_peak_rss_mib", "driver peak RSS (MiB)"),
        ("scheduler_peak_rss_mib", "scheduler peak RSS (MiB)"),
        ("chunks", "tasks (chunks)"),
        ("trials_per_s", "trials/s"),
        ("files", "files left in results/<name>/"),
    ]:
        rows.append([label, *[x[key] for x in r["runs"]], "", ""])
    text = md(rows, ["", *[f"{n:,}" for n in sizes], f"ratio {sizes[-1]:,} / {sizes[0]:,}", "curve"])
    fx = r["fixed_chunks"]
    text += "\n\n" + md(
        [
            [
                x["chunk_size"],
                f"{x['trials']:,}",
                x["chunks"],
                x["scheduler_cpu_ms_per_chunk"],
                x["driver_cpu_ms_per_chunk"],
            ]
            for x in fx["runs"]
        ],
        ["runner.chunk_size", "trials", "tasks", "scheduler CPU ms/task", "driver CPU ms/task"],
    )
    f = fx["fit"]
    text += (
        f"\n\nFit: scheduler {f['scheduler']['per_task_ms']:.2f} ms per task + "
        f"{f['scheduler']['per_trial_us']:.2f} us per trial; driver {f['driver']['per_task_ms']:.2f} ms per task + "
        f"{f['driver']['per_trial_us']:.2f} us per trial. One raw future (client.map, "
        f"{r['raw_map']['tasks']:,} no-op tasks): {r['raw_map']['scheduler_cpu_ms_per_task']:.2f} ms of scheduler "
        f"CPU per task, {r['raw_map']['tasks_per_s']:,.0f} tasks/s."
    )
    return text


def projection() -> str:
    r = load("projection")
    rows = [
        [
            f"{x['trial_s'] * 1e3:g} ms" if x["trial_s"] < 1 else f"{x['trial_s']:g} s",
            x["chunk_size"],
            f"{x['task_s']:g} s",
            f"{x['workers_scheduler_bound']:,.0f}",
            f"{x['workers_driver_bound']:,.0f}",
            f"{min(x['workers_scheduler_bound'], x['workers_driver_bound']):,.0f}",
            f"{x['workers_raw_futures']:,.0f}",
        ]
        for x in r["by_trial_length"]
    ]
    text = md(rows, ["trial", "chunk", "task lasts", "scheduler-bound", "driver-bound", "daskbench", "raw futures"])
    picks: Dict[Any, List[str]] = {}
    for p in r["chunk_picks"]:
        t = p["trial_s"]
        key = (f"{p['sweep']:,}", f"{t * 1e3:g} ms" if t < 1 else f"{t:g} s")
        picks.setdefault(key, []).append(f"{p['chunk_size']:,} ({p['utilisation']:.0%})")
    workers = sorted({p["workers"] for p in r["chunk_picks"]})
    text += "\n\n" + md([[*k, *v] for k, v in picks.items()], ["sweep", "trial", *[f"{w:,} workers" for w in workers]])
    return text


def store() -> str:
    r = load("store")
    t, s = r["trials"], r["steps"]
    return md(
        [
            [
                f"`trials`: ResultStore, {t['rows']:,} rows",
                f"{t['store_rows_per_s']:,.0f}",
                f"{t['ratio']:.2f}x",
                t["files"],
            ],
            ["`trials`: one `pq.write_table` (baseline)", f"{t['write_table_rows_per_s']:,.0f}", "1", 1],
            [
                f"`steps`: ResultStore, {s['trials']:,} trials x 100 rows",
                f"{s['store_rows_per_s']:,.0f}",
                f"{s['ratio']:.2f}x",
                s["files"].get("steps"),
            ],
            ["`steps`: one `pq.write_table` (baseline)", f"{s['write_table_rows_per_s']:,.0f}", "1", 1],
        ],
        ["what", "rows/s", "ratio vs write_table", "Parquet files"],
    )


def summary() -> str:
    rows = []
    for name in ("expand", "throughput", "hydra", "scale", "projection", "million", "store", "sim"):
        path = C.RESULTS / f"{name}.json"
        if path.exists():
            rows.extend(r[1:] + [name] for r in rows_for(name, json.loads(path.read_text())))
    return md([[str(c).strip() for c in r] for r in rows], HEADER[1:] + ["benchmark"])


if __name__ == "__main__":
    names = sys.argv[1:] or ["summary", "throughput", "hydra", "scale", "projection", "store"]
    for n in names:
        print(f"\n<!-- {n} -->\n" + globals()[n]())
