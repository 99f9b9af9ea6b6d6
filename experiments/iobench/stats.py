"""iobench's figures: latency histograms and the trial's metrics and tables
summarised from the agents' results."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Dict, List

import numpy as np
import pandas as pd

from .settings import OPS, Settings

MB = 1e6
WORKER_COLUMNS = ["worker", "host", "agent", "op", "ops", "bytes", "errors", "ops_s", "MB_s", "lat_mean_ms",
                  "lat_p50_ms", "lat_p90_ms", "lat_p99_ms", "lat_max_ms", "concurrency", "elapsed_s",
                  "start_lag_s", "first_error"]
TIMELINE_COLUMNS = ["worker", "agent", "second", "ops", "bytes", "MB_s", "errors"] + [f"{op}_ops" for op in OPS]


class LatencyHistogram:
    """Latencies in log-spaced buckets (1 % wide, 0.1 us to 1000 s); exact count, sum, min, max."""

    LO = 1e-7
    GROWTH = 1.01
    _INV_LOG = 1.0 / math.log(GROWTH)
    NBUCKETS = int(math.ceil(math.log(1e3 / LO) / math.log(GROWTH))) + 1

    def __init__(self) -> None:
        self.counts = [0] * self.NBUCKETS
        self.n = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def record(self, seconds: float) -> None:
        i = int(math.log(seconds / self.LO) * self._INV_LOG) if seconds > self.LO else 0
        self.counts[i if i < self.NBUCKETS else self.NBUCKETS - 1] += 1
        self.n += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds
        if seconds < self.min:
            self.min = seconds

    def merge(self, other: "LatencyHistogram") -> "LatencyHistogram":
        self.counts = list(np.add(self.counts, other.counts))
        self.n += other.n
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) in seconds; NaN when empty."""
        if self.n == 0:
            return math.nan
        rank = max(1, math.ceil(q / 100.0 * self.n))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        mid = self.LO * self.GROWTH ** (i + 0.5)  # geometric middle of the bucket
        return min(max(mid, self.min), self.max)

    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def to_dict(self) -> Dict[str, Any]:
        nz = np.flatnonzero(self.counts)
        return {"idx": nz.astype(np.int32), "cnt": np.asarray(self.counts, np.int64)[nz], "n": self.n,
                "total": self.total, "min": self.min, "max": self.max}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LatencyHistogram":
        h = cls()
        for i, c in zip(d["idx"], d["cnt"]):
            h.counts[int(i)] = int(c)
        h.n, h.total, h.min, h.max = int(d["n"]), float(d["total"]), float(d["min"]), float(d["max"])
        return h


def _ms(seconds: float) -> float:
    return seconds * 1e3 if math.isfinite(seconds) else math.nan


def summarise(settings: Settings, agents: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The trial's metrics and its ``workers`` and ``timeline`` tables from the agents' results."""
    agents = sorted(agents, key=lambda a: a["agent"])
    rows, timeline = [], []
    merged = {op: LatencyHistogram() for op in OPS}
    totals = {op: {"ops": 0, "bytes": 0, "errors": 0, "ops_s": 0.0, "MB_s": 0.0} for op in OPS}
    for a in agents:
        el = a["elapsed_s"]
        for op in OPS:
            d = a["ops"][op]
            h = LatencyHistogram.from_dict(d["hist"])
            merged[op].merge(h)
            t = totals[op]
            t["ops"] += d["ops"]
            t["bytes"] += d["bytes"]
            t["errors"] += d["errors"]
            t["ops_s"] += d["ops"] / el
            t["MB_s"] += d["bytes"] / el / MB
            if op not in settings.ops and not d["ops"] and not d["errors"]:
                continue  # not in the mix and never run (a read falling back to write is)
            rows.append({
                "worker": a["worker"], "host": a["host"], "agent": a["agent"], "op": op,
                "ops": d["ops"], "bytes": d["bytes"], "errors": d["errors"],
                "ops_s": d["ops"] / el, "MB_s": d["bytes"] / el / MB,
                "lat_mean_ms": _ms(h.mean()), "lat_p50_ms": _ms(h.percentile(50)),
                "lat_p90_ms": _ms(h.percentile(90)), "lat_p99_ms": _ms(h.percentile(99)),
                "lat_max_ms": _ms(h.max) if h.n else math.nan,
                "concurrency": a["concurrency"], "elapsed_s": el, "start_lag_s": a["start_lag_s"],
                "first_error": d["first_error"],
            })
        tl = a["timeline"]
        for sec in range(len(tl["bytes"])):
            row = {"worker": a["worker"], "agent": a["agent"], "second": sec,
                   "ops": int(tl["ops"][:, sec].sum()), "bytes": int(tl["bytes"][sec]),
                   "MB_s": float(tl["bytes"][sec]) / MB, "errors": int(tl["errors"][sec])}
            for k, op in enumerate(OPS):
                row[f"{op}_ops"] = int(tl["ops"][k, sec])
            timeline.append(row)
    metrics: Dict[str, Any] = {
        "ops_s": sum(t["ops_s"] for t in totals.values()),
        "MB_s": sum(t["MB_s"] for t in totals.values()),
        "ops": sum(t["ops"] for t in totals.values()),
        "bytes": sum(t["bytes"] for t in totals.values()),
        "errors": sum(t["errors"] for t in totals.values()),
        "n_workers": len(agents),
    }
    for op in OPS:
        metrics[f"{op}_ops_s"] = totals[op]["ops_s"]
    metrics["write_MB_s"] = totals["write"]["MB_s"]
    metrics["read_MB_s"] = totals["read"]["MB_s"]
    for op in OPS:
        metrics[f"{op}_p50_ms"] = _ms(merged[op].percentile(50))
        metrics[f"{op}_p99_ms"] = _ms(merged[op].percentile(99))
    metrics["max_start_lag_s"] = max((a["start_lag_s"] for a in agents), default=0.0)
    metrics["cleanup_problems"] = sum(len(a.get("cleanup") or []) for a in agents)
    # `workers` is the table's name, so the count is `n_workers`
    return {**metrics, "workers": pd.DataFrame(rows, columns=WORKER_COLUMNS),
            "timeline": pd.DataFrame(timeline, columns=TIMELINE_COLUMNS)}
