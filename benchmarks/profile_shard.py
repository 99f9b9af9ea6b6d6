"""CPU of one shard's tick in a 2-shard Boltzmann run against the plain model on as many agents.

Both sides run in this one process, no Dask, no sockets: shard 0 of a 2-shard run of
``2 * n`` agents (round robin, so it holds ``n`` of them; its messages to shard 1 are
handed over as they would arrive, and shard 1's messages to it likewise) against a
1-shard run of the plain model with ``n`` agents (stepped, like shard 0, beside another
``n`` agents: a second plain model). The ticks alternate between the two
sides, so load on the machine hits both alike; the figure is the CPU time
(``time.thread_time``) of shard 0's ``step`` per tick over the plain model's, i.e. what
sharding itself adds to the work of a shard (splitting messages by destination shard,
merging the inboxes of two senders, rows from global ids).

    python benchmarks/profile_shard.py                # 500,000 agents per shard, 30 ticks
    python benchmarks/profile_shard.py --agents 100000 --ticks 10
    python benchmarks/profile_shard.py --profile      # cProfile of the shard's ticks too

Prints a small table, the CPU of the tick's parts on each side (the model's own step, which
holds sending and counting its inbox; cutting messages by shard: ``Outbox.split``, and since
the shard cuts its own part after sending the others theirs, ``Shard.settle``), and the JSON
(``benchmarks/results/profile_shard.json``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import _common as C  # noqa: E402


def _shards(n_agents: int, n_shards: int, seed: int) -> List[Any]:
    from daskbench.experiments.boltzmann import Boltzmann
    from daskbench.sim.partition import round_robin
    from daskbench.sim.shard import Layout, Shard

    model = Boltzmann(n_agents)
    model.seed = seed
    layout = Layout.of(model)
    assign = round_robin(n_agents, n_shards)
    shards = [Shard(model, i, assign, layout, seed) for i in range(n_shards)]
    for s in shards:
        s.setup()
    return shards


class _Parts:
    """CPU of a few parts of a tick (the model's own step, sending, cutting messages by shard,
    counting an inbox), while ``on``: wrappers around those methods, a clock read per call."""

    NAMES = {
        "model step": ("daskbench.experiments.boltzmann", "Wealth", "step"),
        "Outbox.send": ("daskbench.sim.messages", "Outbox", "send"),
        "Outbox.split": ("daskbench.sim.messages", "Outbox", "split"),
        "Shard.settle (own part)": ("daskbench.sim.shard", "Shard", "settle"),  # absent before it existed
        "Inbox.count": ("daskbench.sim.inbox", "Inbox", "count"),
    }

    def __init__(self) -> None:
        import importlib

        self.on = False
        self.tick: Dict[str, float] = {}
        self.ticks: Dict[str, List[float]] = {}
        for label, (module, cls, name) in self.NAMES.items():
            owner = getattr(importlib.import_module(module), cls)
            if hasattr(owner, name):
                setattr(owner, name, self._wrap(label, getattr(owner, name)))

    def _wrap(self, label: str, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return fn(*args, **kwargs)
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.tick[label] = self.tick.get(label, 0.0) + time.thread_time() - t0

        return timed

    def keep(self, side: str) -> None:
        for label, seconds in self.tick.items():
            self.ticks.setdefault(f"{side}: {label}", []).append(seconds)
        self.tick = {}


def _step(shards: List[Any], tick: int, timed: int, prof: Optional[cProfile.Profile], parts: _Parts) -> float:
    """Step every shard at ``tick``, delivering what each sends; CPU seconds of ``shards[timed]``."""
    cpu = 0.0
    for i, shard in enumerate(shards):
        if i == timed and prof is not None:
            prof.enable()
        parts.on = i == timed
        t0 = time.thread_time()
        remote, _ = shard.step(tick)
        parts.on = False
        if i == timed:
            cpu = time.thread_time() - t0
            if prof is not None:
                prof.disable()
        for dest, parcels in remote.items():
            shards[dest].deliver(shard.index, parcels)
    return cpu


def measure(n: int, ticks: int, profile: bool, seed: int = 2026) -> Dict[str, Any]:
    from daskbench.sim.memory import keep_temporaries

    keep_temporaries()  # as in a shard's process
    sharded = _shards(2 * n, 2, seed)
    # two plain models stepped one after the other, the first timed: each side steps 2n agents a tick
    plain = _shards(n, 1, seed) + _shards(n, 1, seed + 1)
    prof = {"shard": cProfile.Profile(), "plain": cProfile.Profile()} if profile else {}
    parts = _Parts()
    cpu: Dict[str, List[float]] = {"shard": [], "plain": []}
    warm = 3  # the first ticks move from equal wealth to the steady state
    for tick in range(warm + ticks):
        on = tick >= warm
        # alternate which side goes first, so neither always follows the other's cache misses
        order = ("shard", "plain") if tick % 2 else ("plain", "shard")
        for side in order:
            shards = sharded if side == "shard" else plain
            c = _step(shards, tick, 0, prof.get(side) if on else None, parts)
            if on:
                cpu[side].append(c)
                parts.keep(side)
            parts.tick = {}
    out: Dict[str, Any] = {"agents_per_shard": n, "ticks": ticks}
    for side in ("shard", "plain"):
        out[f"{side}_cpu_ms"] = 1e3 * C.median(cpu[side])
    out["ratio"] = out["shard_cpu_ms"] / out["plain_cpu_ms"]
    out["parts_cpu_ms"] = {k: 1e3 * C.median(v) for k, v in sorted(parts.ticks.items())}
    # in a run on workers the shard cuts its own part while the others' parts travel: off its path
    settle = out["parts_cpu_ms"].get("shard: Shard.settle (own part)", 0.0)
    out["shard_before_waiting_ms"] = out["shard_cpu_ms"] - settle
    out["ratio_before_waiting"] = out["shard_before_waiting_ms"] / out["plain_cpu_ms"]
    if profile:
        for side, p in prof.items():
            buf = io.StringIO()
            pstats.Stats(p, stream=buf).sort_stats("cumulative").print_stats(22)
            print(f"--- cProfile, {side} ({ticks} ticks), by own time ---")
            print(buf.getvalue())
    return out


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=500_000, help="agents per shard (default 500,000)")
    p.add_argument("--ticks", type=int, default=30)
    p.add_argument("--profile", action="store_true", help="print a cProfile of both sides")
    args = p.parse_args(argv)
    res = measure(args.agents, args.ticks, args.profile)
    rows = [
        [
            f"Boltzmann, shard 0 of 2 ({args.agents:,} agents) vs plain model ({args.agents:,} agents)",
            f"{res['shard_cpu_ms']:.2f} ms CPU/tick",
            f"plain {res['plain_cpu_ms']:.2f} ms CPU/tick",
            f"{res['ratio']:.3f}x",
        ],
        [
            "  the shard's work before it waits for the others (all but Shard.settle)",
            f"{res['shard_before_waiting_ms']:.2f} ms CPU/tick",
            "",
            f"{res['ratio_before_waiting']:.3f}x",
        ],
    ]
    print(C.table(rows, ["measure", "shard", "plain", "ratio"]))
    print()
    print(C.table([[k, f"{v:.2f} ms"] for k, v in res["parts_cpu_ms"].items()], ["part of the tick (median)", "CPU"]))
    C.emit("profile_shard", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
