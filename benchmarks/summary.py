"""One summary row or a few per benchmark, from its results JSON.

Kept apart from the runner so the table's wording lives in one place; every
ratio is daskbench against the baseline measured in the same run.
"""

from __future__ import annotations

from typing import Any, Dict, List

HEADER = ["benchmark", "measure", "daskbench", "baseline", "ratio", "target / met"]


def _met(flag: Any, target: str = "") -> str:
    if flag is None:
        return target
    return f"{target}: {'yes' if flag else 'NO'}" if target else ("yes" if flag else "NO")


def expand(r: Dict[str, Any]) -> List[List[Any]]:
    n = next(iter(r["daskbench"].values()))["trials"]
    return [
        [
            "expand",
            f"sweep expansion, driver per trial ({n:,})",
            f"{r['us_per_trial']:.1f} us",
            f"compose(): {r['baseline_us_per_trial']:,.0f} us",
            f"{r['ratio']:,.0f}x",
            _met(r["target_met"], r["target"]),
        ]
    ]


def throughput(r: Dict[str, Any]) -> List[List[Any]]:
    rows = []
    for c in r["cells"]:
        t = c["tools"]
        db = t["daskbench"]
        if "seconds" not in db:
            rows.append(
                ["throughput", f"{c['trials']:,} x {c['trial_ms']} ms trials", "skipped", db["skipped"], "", ""]
            )
            continue
        others = []
        for tool, label in (("dask_map", "map"), ("joblib", "joblib"), ("process_pool", "pool")):
            v = t.get(tool, {})
            if "seconds" in v:
                others.append(f"{label} {v['seconds'] / db['seconds']:.1f}x")
        eff = f", eff {db['efficiency']:.0%}" if c["trial_ms"] else ""
        base = t.get("dask_map", {})
        rows.append(
            [
                "throughput",
                f"{c['trials']:,} x {c['trial_ms']} ms trials",
                f"{db['trials_per_s']:,.0f}/s{eff}",
                f"client.map {base['trials_per_s']:,.0f}/s" if "seconds" in base else "client.map skipped",
                "; ".join(others),
                "",
            ]
        )
    for c in r.get("mesa", []):
        b, d = c["tools"]["mesa_batch_run"], c["tools"]["daskbench_mesa"]
        if "seconds" not in b:
            rows.append(["throughput", f"Mesa model x {c['trials']:,}", "skipped", b["skipped"], "", ""])
            continue
        rows.append(
            [
                "throughput",
                f"Mesa model ({c['model']['n']} agents, {c['model']['steps']} steps) x {c['trials']:,}",
                f"{d['trials_per_s']:,.0f}/s, eff {d['efficiency']:.0%}",
                f"batch_run {b['trials_per_s']:,.0f}/s, eff {b['efficiency']:.0%}",
                f"{b['seconds'] / d['seconds']:.1f}x",
                "",
            ]
        )
    return rows


def hydra(r: Dict[str, Any]) -> List[List[Any]]:
    rows = []
    for i, L in enumerate(r["lengths"]):
        db, hy = L["daskbench_cli"], L["hydra_joblib"]
        target = _met(r["target_met"], r["target"]) if i == 0 else ""
        if "seconds" not in hy:
            rows.append(
                ["hydra", f"CLI, {L['trials']} x {L['trial_ms']} ms", f"{db['seconds']:.2f} s", hy["skipped"], "", ""]
            )
            continue
        rows.append(
            [
                "hydra",
                f"CLI, {L['trials']} x {L['trial_ms']} ms, wall incl. start-up",
                f"{db['seconds']:.2f} s",
                f"hydra -m joblib {hy['seconds']:.2f} s",
                f"{db['speedup_vs_hydra']:.1f}x",
                target,
            ]
        )
        nd = L.get("daskbench_cli_no_dashboard")
        if nd:
            rows.append(
                ["hydra", "  same, dashboard off", f"{nd['seconds']:.2f} s", "", f"{nd['speedup_vs_hydra']:.1f}x", ""]
            )
    return rows


def launcher(r: Dict[str, Any]) -> List[List[Any]]:
    if "skipped" in r:
        return [["launcher", f"{r['jobs']} no-op jobs", "", r["skipped"], "", ""]]
    db, jl = r["results"]["daskbench"], r["results"]["joblib"]
    rows = [
        [
            "launcher",
            f"hydra -m, {r['jobs']} no-op jobs, wall incl. start-up",
            f"{db['seconds']:.2f} s",
            f"joblib launcher {jl['seconds']:.2f} s",
            f"{db['speedup_vs_joblib']:.1f}x",
            _met(r["target_met"], r["target"]),
        ]
    ]
    nd = r["results"].get("daskbench_no_dashboard")
    if nd:
        rows.append(
            ["launcher", "  same, dashboard off", f"{nd['seconds']:.2f} s", "", f"{nd['speedup_vs_joblib']:.1f}x", ""]
        )
    return rows


def optuna(r: Dict[str, Any]) -> List[List[Any]]:
    rows = [
        [
            "optuna",
            f"ask + tell per trial in the driver, {o['sampler']}, {o['trials']} trials",
            f"{o['ask_tell_ms']:.2f} ms",
            "",
            "",
            _met(o["ask_tell_ms"] <= 1.0, "<= 1 ms"),
        ]
        for o in r["overhead"]
    ]
    b = r["busy"]
    rows.append(
        [
            "optuna",
            f"2 workers busy, {b['trials']} x {b['trial_ms']} ms trials (tpe)",
            f"{b['busy_fraction']:.1%}",
            "",
            "",
            _met(b["busy_fraction"] >= 0.9, ">= 90 %"),
        ]
    )
    h = r["hydra"]
    measure = f"CLI, tpe, {h['trials']} x {h['trial_ms']} ms trials, wall incl. start-up"
    if "hydra_s" not in h:  # Hydra's optuna sweeper needs a virtualenv of its own (optuna < 3)
        rows.append(["optuna", measure, f"{h['daskbench_s']:.2f} s", h["hydra"], "", ""])
        return rows
    rows += [
        [
            "optuna",
            measure,
            f"{h['daskbench_s']:.2f} s",
            f"Hydra optuna sweeper + joblib {h['hydra_s']:.2f} s",
            f"{h['hydra_s'] / h['daskbench_s']:.1f}x",
            "",
        ],
        [
            "optuna",
            f"  best value after {h['trials']} trials",
            f"{h['daskbench_best']:.4g}",
            f"{h['hydra_best']:.4g}",
            "",
            "",
        ],
    ]
    return rows


def scale(r: Dict[str, Any]) -> List[List[Any]]:
    sizes = r["sizes"]
    span = f"{sizes[0]:,} -> {sizes[-1]:,}"
    rows = []
    labels = {
        "expand_s": "expansion us/trial",
        "submit_s": "submission us/trial",
        "wall_s": "run us/trial",
        "scheduler_cpu_s": "scheduler CPU us/trial",
    }
    for key, label in labels.items():
        vals = r["per_trial"][key]
        g = r["growth_ratio"][key]
        rows.append(
            [
                "scale",
                f"{label}, {span}",
                " -> ".join(f"{v:.1f}" for v in vals),
                "",
                f"{g:.2f}x" if g else "-",
                "flat: " + ("NO" if key in r["growing"] else "yes"),
            ]
        )
    last = r["runs"][-1]
    rows.append(
        [
            "scale",
            f"peak RSS at {sizes[-1]:,}: driver / scheduler",
            f"{last['driver_peak_rss_mib']:.0f} / {last['scheduler_peak_rss_mib']:.0f} MiB",
            "",
            "",
            "",
        ]
    )
    raw = r["raw_map"]
    rows.append(
        [
            "scale",
            "scheduler CPU per task: daskbench chunk / raw future",
            f"{last['scheduler_cpu_s'] / last['chunks'] * 1e3:.2f} ms ({last['trials'] / last['chunks']:.0f} trials)",
            f"{raw['scheduler_cpu_ms_per_task']:.2f} ms (1 trial)",
            "",
            "",
        ]
    )
    return rows


def million(r: Dict[str, Any]) -> List[List[Any]]:
    naive = r["reference_naive_dicts"]["rss_increase_mib"]  # nan: skipped past 10^6 trials
    return [
        [
            "million",
            f"{r['trials']:,} no-ops, driver peak RSS (client + scheduler)",
            f"{r['driver_peak_rss_mib']:,.0f} MiB, {r['trials_per_s']:,.0f}/s",
            f"list of dicts +{naive:,.0f} MiB" if naive == naive else "",
            "",
            _met(r["target_met"], "< 1 GiB") + ("" if r["trials"] >= 1_000_000 else f" (at {r['trials']:,})"),
        ]
    ]


def store(r: Dict[str, Any]) -> List[List[Any]]:
    t, s = r["trials"], r["steps"]
    return [
        [
            "store",
            f"trials rows/s ({t['rows']:,} rows)",
            f"{t['store_rows_per_s']:,.0f}",
            f"write_table {t['write_table_rows_per_s']:,.0f}",
            f"{t['ratio']:.2f}x",
            f"{t['files']} file(s)",
        ],
        [
            "store",
            f"steps rows/s ({s['rows']:,} rows)",
            f"{s['store_rows_per_s']:,.0f}",
            f"write_table {s['write_table_rows_per_s']:,.0f}",
            f"{s['ratio']:.2f}x",
            f"{s['files'].get('steps')} file(s)",
        ],
    ]


def sim(r: Dict[str, Any]) -> List[List[Any]]:
    """The simulation benchmark is written separately: show its targets, generically."""
    met = r.get("target_met") or {}
    targets = r.get("targets") or {}
    rows = []
    to = r.get("tick_overhead") or {}
    if "2_shards_ms" in to:
        rows.append(
            [
                "sim",
                "tick overhead, 2 shards",
                f"{to['2_shards_ms']:.2f} ms",
                "",
                "",
                _met(met.get("tick_overhead_ms_2_shards"), f"<= {targets.get('tick_overhead_ms_2_shards')} ms"),
            ]
        )
    vm = r.get("vs_mesa") or {}
    if "ratio_actor" in vm:
        rows.append(
            [
                "sim",
                f"Boltzmann {vm['agents']:,} agents vs Mesa, agent-steps/s",
                f"{vm['daskbench_actor_agent_steps_per_s'] / 1e6:.2f} M/s",
                f"Mesa {vm['mesa_agent_steps_per_s'] / 1e6:.3f} M/s",
                f"{vm['ratio_actor']:.0f}x",
                _met(met.get("vs_mesa"), f">= {targets.get('vs_mesa')}x"),
            ]
        )
    for n, s in (r.get("speedup") or {}).items():
        if isinstance(s, dict) and "speedup" in s:
            rows.append(
                [
                    "sim",
                    f"1 -> 2 workers, {int(n):,} agents",
                    f"{s['speedup']:.2f}x",
                    "",
                    "",
                    _met(met.get("speedup_1m_of_ceiling"), f">= {targets.get('speedup_1m_of_ceiling')} x ceiling")
                    if n == "1000000"
                    else "",
                ]
            )
    pl = r.get("placement") or {}
    for k in ("2_shards", "4_shards"):
        if k in pl:
            rows.append(
                [
                    "sim",
                    f"cross-shard fraction, {k.replace('_', ' ')}: community / round-robin",
                    f"{pl[k]['community']['cross_shard_fraction']:.3f}",
                    f"{pl[k]['round_robin']['cross_shard_fraction']:.3f}",
                    f"{pl[k]['ratio']:.2f}",
                    _met(met.get("community_vs_round_robin"), "<= 0.5"),
                ]
            )
    return rows or [["sim", "ok", "see results/sim.json", "", "", ""]]


def projection(r: Dict[str, Any]) -> List[List[Any]]:
    rows = []
    for L in r["by_trial_length"]:
        t = L["trial_s"]
        label = f"{t * 1e3:g} ms" if t < 1 else f"{t:g} s"
        busy = min(L["workers_scheduler_bound"], L["workers_driver_bound"])
        rows.append(
            [
                "projection",
                f"workers kept busy, {label} trials (chunk {L['chunk_size']})",
                f"{busy:,.0f}",
                f"raw futures {L['workers_raw_futures']:,.0f}",
                f"{busy / L['workers_raw_futures']:,.0f}x",
                "projected",
            ]
        )
    return rows


def rows_for(name: str, result: Dict[str, Any]) -> List[List[Any]]:
    return {
        "expand": expand,
        "throughput": throughput,
        "hydra": hydra,
        "launcher": launcher,
        "optuna": optuna,
        "scale": scale,
        "million": million,
        "store": store,
        "sim": sim,
        "projection": projection,
    }[name](result)
