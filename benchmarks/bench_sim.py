"""Simulations on Dask actors: tick overhead, Boltzmann against Mesa, 1 -> 2 workers, placement.

Four measurements, each next to its baseline in this one script:

Simulations run as a sweep runs them: ``daskbench.sim.trial`` is a task on a
worker of a 2-worker ``LocalCluster`` (one thread each), and its coordinator
places one shard actor per worker in turn.

1. **Tick overhead**: the ``Idle`` model (agents due every tick that do nothing)
   on 1, 2 and 4 shard actors: wall time per tick, which is the coordinator's
   one call per shard plus the barrier.
2. **Boltzmann against Mesa**: ``daskbench.experiments.boltzmann`` (1 shard actor, and in
   the coordinator's own process) against Mesa's tutorial model
   (``benchmarks/mesa_boltzmann.py``), same number of agents and steps, agent-steps
   per second of stepping (start-up excluded on both sides), with each side's
   Gini after the last step as a check that they model the same thing.
3. **1 -> 2 workers**: Boltzmann with 10^5 and 10^6 agents on 1 shard (one
   worker busy) against 2 shards on the 2 workers of the same cluster.
   Beside it, the machine's own ceiling: the same model stepped with no Dask
   at all, half the agents in one process, then in two processes at once
   (two cores sharing caches and memory bandwidth do not give 2x).
4. **Placement**: ``daskbench.experiments.epidemic`` under ``round_robin`` and
   ``community`` allocation on 2 and 4 shards: fraction of messages that cross
   shards (deterministic: it does not depend on where the shards run).
5. **Lookahead**: ticks/s on 2 shards with ``clock.lookahead`` 4 against 1, for
   models whose messages take 4 ticks (``benchmarks/sim_models.py``).
6. **Scaling curve**: Boltzmann on 1, 2, 4 and 8 shards on a cluster with one
   worker per core (shard counts above the core count are skipped): ticks/s
   and speed-up over 1 shard. One command gives the curve on a bigger machine.
7. **Transport**: the tick overhead on 2 shards and Boltzmann 10^6 on 2 shards
   with the envelopes on direct sockets between shards (``clock.transport:
   socket``, the default) against Dask actor calls (``comm``), alternating.

Every sharded figure but the last uses ``--transport`` (default ``socket``, the
shipped default).

Every timed figure is the median of ``--repeats`` runs, the two sides
alternating. Dashboard off, everything on 127.0.0.1.

    .venv/bin/python benchmarks/bench_sim.py            # quick set (a few minutes)
    .venv/bin/python benchmarks/bench_sim.py --full     # more ticks, more repeats
    .venv/bin/python benchmarks/bench_sim.py --smoke    # tiny sizes: the scripts still run
    .venv/bin/python benchmarks/bench_sim.py --transport comm   # the Dask actor calls throughout
    .venv/bin/python benchmarks/bench_sim.py --million  # only 1,000,000 agents: 1 vs 2 shards and the ceiling

Writes ``benchmarks/results/sim.json`` (see ``_common.emit``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # experiments/ and benchmarks/ importable, here and on workers
import _common as C  # noqa: E402

#: sizes per mode: (tick-overhead ticks, Boltzmann vs Mesa agents, steps, speedup sizes, speedup ticks,
#: epidemic people, repeats)
MODES: Dict[str, Dict[str, Any]] = {
    "smoke": dict(
        idle_ticks=20,
        mesa_agents=2_000,
        mesa_steps=5,
        speedup_sizes=[20_000],
        speedup_ticks=5,
        epidemic_people=1_000,
        repeats=1,
    ),
    "quick": dict(
        idle_ticks=300,
        mesa_agents=100_000,
        mesa_steps=10,
        speedup_sizes=[100_000, 1_000_000],
        speedup_ticks=40,
        epidemic_people=5_000,
        repeats=3,
    ),
    "full": dict(
        idle_ticks=1_000,
        mesa_agents=100_000,
        mesa_steps=30,
        speedup_sizes=[100_000, 1_000_000],
        speedup_ticks=100,
        epidemic_people=20_000,
        repeats=5,
    ),
}
IDLE, BOLTZMANN, EPIDEMIC = (
    "sim_models.Idle",
    "daskbench.experiments.boltzmann.Boltzmann",
    "daskbench.experiments.epidemic.Epidemic",
)
TARGETS = {
    "tick_overhead_ms_2_shards": 0.5,
    "vs_mesa": 20.0,
    "speedup_1m_of_ceiling": 0.85,  # 2 shards on 2 workers against 2 plain processes, same run
    "community_vs_round_robin": 0.5,
}


#: clock.transport of the sharded runs (--transport)
TRANSPORT = {"name": "socket"}


def _sim(model: str, params: Dict[str, Any], client: Any = None, **settings: Any) -> Dict[str, Any]:
    """One simulation's metrics. With ``client``: as a sweep runs it, the trial is a task on a
    worker and its coordinator places the shard actors; without: every shard in this process."""
    from daskbench import sim

    kwargs = dict(model=model, params=params, seed=2026, **settings)
    if client is None:
        return sim.trial(local=True, **kwargs)
    kwargs["clock"] = {"transport": TRANSPORT["name"], **(settings.get("clock") or {})}
    return client.submit(sim.trial, pure=False, **kwargs).result()


def transports(client: Any, ticks: int, n: int, n_ticks: int, repeats: int) -> Dict[str, Any]:
    """The 2-shard tick overhead (``Idle``, ``ticks``) and Boltzmann with ``n`` agents (``n_ticks``)
    with ``clock.transport`` socket against comm, alternating."""
    idle: Dict[str, List[float]] = {"socket": [], "comm": []}
    big: Dict[str, List[float]] = {"socket": [], "comm": []}
    for _ in range(repeats):
        for tr in ("socket", "comm"):
            clock = {"fast_forward": False, "transport": tr}
            idle[tr].append(_sim(IDLE, {"n_agents": 1_000}, client, ticks=ticks, shards=2, clock=clock)["tick_ms"])
            big[tr].append(_sim(BOLTZMANN, {"n_agents": n}, client, ticks=n_ticks, shards=2, clock=clock)["tick_ms"])
    out: Dict[str, Any] = {"agents": n}
    for tr in ("socket", "comm"):
        out[tr] = {"idle_tick_ms": C.median(idle[tr]), "boltzmann_tick_ms": C.median(big[tr])}
    return out


def tick_overhead(client: Any, ticks: int, repeats: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for shards in (1, 2, 4):
        runs = [
            _sim(IDLE, {"n_agents": 1_000}, client, ticks=ticks, shards=shards, clock={"fast_forward": False})[
                "tick_ms"
            ]
            for _ in range(repeats)
        ]
        out[f"{shards}_shards_ms"] = C.median(runs)
    return out


def mesa_steps(n: int, steps: int) -> Dict[str, Any]:
    try:
        from mesa_boltzmann import MoneyModel, compute_gini
    except ImportError as exc:  # Mesa comes with the bench extra only
        return {"skipped": f"Mesa not installed ({exc}); pip install -e '.[bench]'"}
    model = MoneyModel(n, seed=2026, collect=False)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.step()
    dt = time.perf_counter() - t0
    return {"agent_steps_per_s": n * steps / dt, "seconds": dt, "gini": compute_gini(model)}


def vs_mesa(client: Any, n: int, steps: int, repeats: int) -> Dict[str, Any]:
    actor, local, mesa = [], [], []
    gini: Dict[str, float] = {}
    for _ in range(repeats):
        m = mesa_steps(n, steps)
        if "skipped" in m:
            return {"agents": n, "steps": steps, **m}
        mesa.append(m["agent_steps_per_s"])
        gini["mesa"] = m["gini"]
        a = _sim(BOLTZMANN, {"n_agents": n}, client, ticks=steps + 1, shards=1)  # tick 0 reports the start
        actor.append(a["agent_steps_per_s"])
        gini["daskbench"] = a["gini"]
        local.append(_sim(BOLTZMANN, {"n_agents": n}, None, ticks=steps + 1, shards=1)["agent_steps_per_s"])
    base = C.median(mesa)
    return {
        "agents": n,
        "steps": steps,
        "mesa_agent_steps_per_s": base,
        "daskbench_actor_agent_steps_per_s": C.median(actor),
        "daskbench_in_process_agent_steps_per_s": C.median(local),
        "ratio_actor": C.median(actor) / base,
        "ratio_in_process": C.median(local) / base,
        "gini_after_last_step": gini,
    }


def speedup(client: Any, sizes: List[int], ticks: int, repeats: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for n in sizes:
        runs: Dict[int, List[Dict[str, Any]]] = {1: [], 2: []}
        _sim(BOLTZMANN, {"n_agents": n}, client, ticks=3, shards=2)  # warm both workers (imports, allocator)
        for _ in range(repeats):
            for shards in (1, 2):
                runs[shards].append(_sim(BOLTZMANN, {"n_agents": n}, client, ticks=ticks, shards=shards))
        tick = {s: C.median([r["tick_ms"] for r in rs]) for s, rs in runs.items()}
        # shard_ms: the slowest shard's own stepping per tick, without calls, barrier or messages
        step = {s: C.median([r["shard_ms"] for r in rs]) for s, rs in runs.items()}
        out[str(n)] = {
            "ticks": ticks,
            "tick_ms_1_shard": tick[1],
            "tick_ms_2_shards": tick[2],
            "speedup": tick[1] / tick[2],
            "step_ms_1_shard": step[1],
            "step_ms_2_shards": step[2],
            "step_speedup": step[1] / step[2],
        }
    return out


def _local_rate(n: int, ticks: int) -> float:
    return _sim(BOLTZMANN, {"n_agents": n}, None, ticks=ticks, shards=1)["agent_steps_per_s"]


def machine_ceiling(n: int, ticks: int, repeats: int) -> Dict[str, Any]:
    """How much faster two processes step two halves than one process steps one half, with no
    Dask at all: what the cores and memory of this machine allow a 2-shard run to gain."""
    import concurrent.futures as cf
    import multiprocessing as mp

    half = n // 2
    alone, pair = [], []
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_local_rate, [1_000] * 2, [2] * 2))  # start both processes
        for _ in range(repeats):
            alone.append(pool.submit(_local_rate, half, ticks).result())
            pair.append(sum(pool.map(_local_rate, [half] * 2, [ticks] * 2)))
    return {
        "agents_per_process": half,
        "ticks": ticks,
        "one_process_agent_steps_per_s": C.median(alone),
        "two_processes_agent_steps_per_s": C.median(pair),
        "ceiling": C.median(pair) / C.median(alone),
    }


def million(client: Any, n: int, ticks: int, repeats: int) -> Dict[str, Any]:
    """Target 14.2 alone (``--million``): Boltzmann with ``n`` agents on 1 shard and on 2 shards
    of the 2-worker cluster, and the machine's 2-process ceiling (``n / 2`` agents in one plain
    process, then in two at once), the four side by side in every repeat, so load that comes
    and goes hits all of them; the share of the ceiling is taken per repeat, then the median."""
    import concurrent.futures as cf
    import multiprocessing as mp

    half = n // 2
    tick: Dict[int, List[float]] = {1: [], 2: []}
    step: Dict[int, List[float]] = {1: [], 2: []}
    alone: List[float] = []
    pair: List[float] = []
    shares: List[float] = []
    _sim(BOLTZMANN, {"n_agents": n}, client, ticks=3, shards=2)  # warm both workers (imports, allocator)
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_local_rate, [1_000] * 2, [2] * 2))  # start both processes
        for _ in range(repeats):
            for shards in (1, 2):
                r = _sim(BOLTZMANN, {"n_agents": n}, client, ticks=ticks, shards=shards)
                tick[shards].append(r["tick_ms"])
                step[shards].append(r["shard_ms"])
            alone.append(pool.submit(_local_rate, half, ticks).result())
            pair.append(sum(pool.map(_local_rate, [half] * 2, [ticks] * 2)))
            shares.append((tick[1][-1] / tick[2][-1]) / (pair[-1] / alone[-1]))
    t1, t2 = C.median(tick[1]), C.median(tick[2])
    ceiling = C.median(pair) / C.median(alone)
    return {
        "agents": n,
        "ticks": ticks,
        "tick_ms_1_shard": t1,
        "tick_ms_2_shards": t2,
        "speedup": t1 / t2,
        "step_ms_1_shard": C.median(step[1]),
        "step_ms_2_shards": C.median(step[2]),
        "one_process_agent_steps_per_s": C.median(alone),
        "two_processes_agent_steps_per_s": C.median(pair),
        "ceiling": ceiling,
        "share_of_ceiling": (t1 / t2) / ceiling,
        "share_per_repeat": shares,
        "share_median_of_repeats": C.median(shares),
    }


def _million_main(n: int, ticks: int, repeats: int) -> int:
    from distributed import Client

    warnings.filterwarnings("ignore", message="Port .* is already in use")
    with C.local_cluster(2) as cluster, Client(cluster) as client:
        m = _timed(
            f"{n:,} agents: 1 vs 2 shards and the 2-process ceiling",
            lambda: million(client, n, ticks, repeats),
        )
    rows = [
        [
            f"Boltzmann {n:,} agents, 2 shards/2 workers",
            f"{m['tick_ms_2_shards']:.1f} ms/tick",
            f"1 shard: {m['tick_ms_1_shard']:.1f} ms/tick",
            f"{m['speedup']:.2f}x",
            "",
        ],
        [
            "  of which stepping (slowest shard)",
            f"{m['step_ms_2_shards']:.1f} ms/tick",
            f"1 shard: {m['step_ms_1_shard']:.1f} ms/tick",
            f"{m['step_ms_1_shard'] / m['step_ms_2_shards']:.2f}x",
            "",
        ],
        [
            f"ceiling: 2 plain processes x {n // 2:,} agents, no Dask",
            f"{m['two_processes_agent_steps_per_s'] / 1e6:.1f} M/s",
            f"1 process: {m['one_process_agent_steps_per_s'] / 1e6:.1f} M/s",
            f"{m['ceiling']:.2f}x",
            "",
        ],
        [
            "share of the ceiling (medians; median of per-repeat shares)",
            f"{m['share_of_ceiling']:.2f}",
            f"{m['share_median_of_repeats']:.2f}",
            "",
            ">= 0.85",
        ],
    ]
    print()
    print(C.table(rows, ["measure", "daskbench", "baseline", "ratio", "target"]))
    met = m["share_of_ceiling"] >= TARGETS["speedup_1m_of_ceiling"]
    print(f"targets met: speedup_1m_of_ceiling {'yes' if met else 'NO'} ({TARGETS['speedup_1m_of_ceiling']})")
    C.emit(
        "sim_million",
        {
            "mode": "million",
            "repeats": repeats,
            "transport": TRANSPORT["name"],
            "million": m,
            "target_met": {"speedup_1m_of_ceiling": met},
        },
    )
    return 0


def placement(people: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {"people": people}
    for shards in (2, 4):
        row = {}
        for allocation in ("round_robin", "community"):
            t0 = time.perf_counter()
            m = _sim(EPIDEMIC, {"n_people": people}, None, ticks=200, shards=shards, allocation=allocation)
            row[allocation] = {
                "cross_shard_fraction": m["cross_shard_fraction"],
                "seconds": time.perf_counter() - t0,
                "attack_rate": m["attack_rate"],
            }
        row["ratio"] = row["community"]["cross_shard_fraction"] / row["round_robin"]["cross_shard_fraction"]
        out[f"{shards}_shards"] = row
    return out


# --- the barrier between shards, lookahead and the scaling curve (issue 14, parts 2-4) -------------

IDLE_DELAYED, BOLTZMANN_DELAYED = "sim_models.IdleDelayed", "sim_models.BoltzmannDelayed"


def lookahead(client: Any, ticks: int, n: int, repeats: int) -> Dict[str, Any]:
    """Ticks/s on 2 shards with clock.lookahead 1 and 4, for models whose messages take 4 ticks:
    ``IdleDelayed`` (the exchange alone) and ``BoltzmannDelayed`` (``n`` agents)."""
    out: Dict[str, Any] = {}
    for label, model, params in (
        ("idle", IDLE_DELAYED, {"n_agents": 1_000}),
        ("boltzmann", BOLTZMANN_DELAYED, {"n_agents": n}),
    ):
        rate: Dict[int, List[float]] = {1: [], 4: []}
        for _ in range(repeats):
            for la in (1, 4):
                m = _sim(model, params, client, ticks=ticks, shards=2, clock={"fast_forward": False, "lookahead": la})
                rate[la].append(1e3 / m["tick_ms"])
        r1, r4 = C.median(rate[1]), C.median(rate[4])
        out[label] = {"params": params, "ticks": ticks, "ticks_per_s_L1": r1, "ticks_per_s_L4": r4, "ratio": r4 / r1}
    return out


def scaling(n: int, ticks: int, repeats: int) -> Dict[str, Any]:
    """Boltzmann with ``n`` agents on 1, 2, 4 and 8 shards, one per worker of a cluster with one
    worker per core; shard counts above the core count are skipped."""
    import os

    from distributed import Client

    cores = os.cpu_count() or 1
    out: Dict[str, Any] = {"agents": n, "ticks": ticks, "workers": cores}
    with (
        C.local_cluster(cores) as cluster,
        Client(cluster) as client,
    ):
        counts = [s for s in (1, 2, 4, 8) if s <= cores]
        _sim(BOLTZMANN, {"n_agents": n}, client, ticks=3, shards=max(counts))  # warm every worker
        runs: Dict[int, List[float]] = {s: [] for s in counts}
        for _ in range(repeats):
            for s in counts:
                runs[s].append(_sim(BOLTZMANN, {"n_agents": n}, client, ticks=ticks, shards=s)["tick_ms"])
    base = C.median(runs[1])
    for s in (1, 2, 4, 8):
        if s not in runs:
            out[f"{s}_shards"] = {"skipped": f"{s} shards need {s} cores; this machine has {cores}"}
            continue
        ms = C.median(runs[s])
        out[f"{s}_shards"] = {"tick_ms": ms, "ticks_per_s": 1e3 / ms, "speedup": base / ms}
    return out


def _new_rows(res: Dict[str, Any]) -> List[List[str]]:
    rows = []
    sp, mc = res["speedup"].get("1000000"), res["machine_ceiling"]
    if sp:
        rows.append(
            [
                "1,000,000 agents, 2 shards: share of the 2-process ceiling",
                f"{sp['speedup']:.2f}x",
                f"ceiling {mc['ceiling']:.2f}x",
                f"{sp['speedup'] / mc['ceiling']:.2f}",
                ">= 0.85",
            ]
        )
    for label, r in res["lookahead"].items():
        if label == "took_s":
            continue
        rows.append(
            [
                f"{label} {r['params']['n_agents']:,} agents, 2 shards, lookahead 4",
                f"{r['ticks_per_s_L4']:,.0f} ticks/s",
                f"lookahead 1: {r['ticks_per_s_L1']:,.0f} ticks/s",
                f"{r['ratio']:.2f}x",
                "",
            ]
        )
    tr = res["transports"]
    for key, label in (
        ("idle_tick_ms", "Idle 1,000 agents"),
        ("boltzmann_tick_ms", f"Boltzmann {tr['agents']:,} agents"),
    ):
        sock, comm = tr["socket"][key], tr["comm"][key]
        rows.append(
            [
                f"{label}, 2 shards: socket vs comm",
                f"{sock:.2f} ms/tick",
                f"comm {comm:.2f} ms/tick",
                f"{comm / sock:.2f}x",
                "",
            ]
        )
    sc = res["scaling"]
    for s in (1, 2, 4, 8):
        r = sc[f"{s}_shards"]
        name = f"scaling: Boltzmann {sc['agents']:,} agents, {s} shard{'s' if s > 1 else ''} on {sc['workers']} workers"
        if "skipped" in r:
            rows.append([name, "skipped", r["skipped"], "", ""])
        else:
            rows.append(
                [name, f"{r['ticks_per_s']:.1f} ticks/s", f"{r['tick_ms']:.1f} ms/tick", f"{r['speedup']:.2f}x", ""]
            )
    return rows


# --- end of issue 14, parts 2-4 ------------------------------------------------------------------


def _timed(label: str, fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    print(f"  {label} ...", flush=True)
    t0 = time.perf_counter()
    out = fn()
    out["took_s"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv: List[str] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", dest="mode", const="quick")
    g.add_argument("--full", action="store_const", dest="mode", const="full")
    g.add_argument("--smoke", action="store_const", dest="mode", const="smoke")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--transport", choices=("socket", "comm"), default="socket", help="clock.transport of sharded runs")
    p.add_argument(
        "--million",
        action="store_true",
        help="only target 14.2: 1,000,000 agents (--smoke: 20,000) on 1 and 2 shards beside the 2-process "
        "ceiling, interleaved per repeat (ticks and repeats of the mode; writes results/sim_million.json)",
    )
    args = p.parse_args(argv)
    TRANSPORT["name"] = args.transport
    mode = args.mode or "quick"
    cfg = dict(MODES[mode])
    repeats = args.repeats or cfg["repeats"]
    if args.million:
        return _million_main(max(cfg["speedup_sizes"]), cfg["speedup_ticks"], repeats)

    from distributed import Client

    # the scheduler's HTTP server moves off a taken port: not news here
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    res: Dict[str, Any] = {"mode": mode, "repeats": repeats, "targets": TARGETS, "transport": args.transport}
    with (
        C.local_cluster(2) as cluster,
        Client(cluster) as client,
    ):
        res["tick_overhead"] = _timed("tick overhead", lambda: tick_overhead(client, cfg["idle_ticks"], repeats))
        res["vs_mesa"] = _timed(
            "Boltzmann vs Mesa", lambda: vs_mesa(client, cfg["mesa_agents"], cfg["mesa_steps"], repeats)
        )
        res["speedup"] = _timed(
            "1 -> 2 workers", lambda: speedup(client, cfg["speedup_sizes"], cfg["speedup_ticks"], repeats)
        )
        res["lookahead"] = _timed(
            "lookahead 1 vs 4", lambda: lookahead(client, cfg["idle_ticks"], min(cfg["speedup_sizes"]), repeats)
        )
        big = max(cfg["speedup_sizes"])
        res["transports"] = _timed(
            "socket vs comm",
            lambda: transports(client, cfg["idle_ticks"], big, cfg["speedup_ticks"], repeats),
        )
    res["machine_ceiling"] = _timed("2 plain processes", lambda: machine_ceiling(big, cfg["speedup_ticks"], repeats))
    res["scaling"] = _timed("scaling curve", lambda: scaling(big, cfg["speedup_ticks"], repeats))
    res["placement"] = _timed("placement", lambda: placement(cfg["epidemic_people"]))

    rows = [
        [
            f"tick overhead, {s} shard{'s' if s > 1 else ''} on 2 workers",
            f"{res['tick_overhead'][f'{s}_shards_ms']:.2f} ms",
            "",
            "",
            "<= 0.5 ms" if s == 2 else "",
        ]
        for s in (1, 2, 4)
    ]
    vm = res["vs_mesa"]
    if "skipped" in vm:
        rows.append([f"Boltzmann {vm['agents']:,} agents vs Mesa", "skipped", vm["skipped"], "", ">= 20x"])
    else:
        rows.append(
            [
                f"Boltzmann {vm['agents']:,} agents, 1 shard actor",
                f"{vm['daskbench_actor_agent_steps_per_s'] / 1e6:.2f} M/s",
                f"Mesa {vm['mesa_agent_steps_per_s'] / 1e6:.3f} M/s",
                f"{vm['ratio_actor']:.0f}x",
                ">= 20x",
            ]
        )
        rows.append(
            [
                f"Boltzmann {vm['agents']:,} agents, in process",
                f"{vm['daskbench_in_process_agent_steps_per_s'] / 1e6:.2f} M/s",
                f"Mesa {vm['mesa_agent_steps_per_s'] / 1e6:.3f} M/s",
                f"{vm['ratio_in_process']:.0f}x",
                "",
            ]
        )
    for n, s in res["speedup"].items():
        if n == "took_s":
            continue
        rows.append(
            [
                f"Boltzmann {int(n):,} agents, 2 shards/2 workers",
                f"{s['tick_ms_2_shards']:.1f} ms/tick",
                f"1 shard: {s['tick_ms_1_shard']:.1f} ms/tick",
                f"{s['speedup']:.2f}x",
                ">= 0.85 x ceiling" if int(n) == 1_000_000 else "",
            ]
        )
        rows.append(
            [
                "  of which stepping (slowest shard)",
                f"{s['step_ms_2_shards']:.1f} ms/tick",
                f"1 shard: {s['step_ms_1_shard']:.1f} ms/tick",
                f"{s['step_speedup']:.2f}x",
                "",
            ]
        )
    mc = res["machine_ceiling"]
    rows.append(
        [
            f"ceiling: 2 plain processes x {mc['agents_per_process']:,} agents, no Dask",
            f"{mc['two_processes_agent_steps_per_s'] / 1e6:.1f} M/s",
            f"1 process: {mc['one_process_agent_steps_per_s'] / 1e6:.1f} M/s",
            f"{mc['ceiling']:.2f}x",
            "",
        ]
    )
    for k in ("2_shards", "4_shards"):
        r = res["placement"][k]
        rows.append(
            [
                f"epidemic {res['placement']['people']:,} people, {k.replace('_', ' ')}: cross-shard",
                f"community {r['community']['cross_shard_fraction']:.3f}",
                f"round_robin {r['round_robin']['cross_shard_fraction']:.3f}",
                f"{r['ratio']:.2f}",
                "<= 0.5",
            ]
        )
    rows.extend(_new_rows(res))
    print()
    print(C.table(rows, ["measure", "daskbench", "baseline", "ratio", "target"]))

    met = {
        "tick_overhead_ms_2_shards": res["tick_overhead"]["2_shards_ms"] <= TARGETS["tick_overhead_ms_2_shards"],
        "community_vs_round_robin": all(res["placement"][k]["ratio"] <= 0.5 for k in ("2_shards", "4_shards")),
    }
    if "skipped" not in vm:
        met["vs_mesa"] = vm["ratio_actor"] >= TARGETS["vs_mesa"]
    if "1000000" in res["speedup"]:
        share = res["speedup"]["1000000"]["speedup"] / res["machine_ceiling"]["ceiling"]
        met["speedup_1m_of_ceiling"] = share >= TARGETS["speedup_1m_of_ceiling"]
    res["target_met"] = met
    print("targets met: " + ", ".join(f"{k} {'yes' if v else 'NO'} ({TARGETS[k]})" for k, v in met.items()))
    C.emit("sim", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
