"""Watching sweeps from the scheduler: the plugin that keeps what the metrics and status page show.

:class:`ObservePlugin` is a scheduler plugin. It listens to the events the
driver and the workers log (topics and messages in :mod:`daskbench.observe.live`) and
keeps a small, bounded summary per sweep, which it publishes two ways on the
scheduler's HTTP server (the dashboard port):

- ``/metrics`` (distributed's Prometheus endpoint) gains ``daskbench_*``
  metrics: trials by status, trial durations, running sweeps, live reports and
  simulation speed, labelled by experiment (:mod:`daskbench.observe.prometheus`);
- ``/daskbench/status`` (HTML, refreshes itself) and ``/daskbench/status.json``
  (:mod:`daskbench.observe.status_page`).

Only scheduler hooks are used, so it works on every kind of cluster.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

from distributed.diagnostics.plugin import SchedulerPlugin

from .live import TOPIC_LIVE, TOPIC_SIM, TOPIC_SWEEP, TOPIC_TRIALS
from .prometheus import BUCKETS, serve, stop_serving
from .status_page import add_routes

logger = logging.getLogger("distributed.scheduler.daskbench")  # lands in the scheduler's log

NAME = "daskbench-observe"
# Bounds that keep a scheduler's memory flat however long it lives and however
# many trials it runs: everything kept is per sweep or per experiment, never per trial
# (but for the simulations running now, at most MAX_SIMS a sweep).
MAX_RUNS = 50
MAX_FAILURES = 20
MAX_EXPERIMENTS = 200  # also bounds Prometheus label cardinality
MAX_METRICS = 32
MAX_TEXT = 400
MAX_SIMS = 256  # simulations tracked per sweep (trials at once); the oldest heard is dropped
#: seconds after which a simulation nobody heard from (its coordinator's worker died) stops counting
SIM_SILENT_S = 300.0
OTHER = "(other)"  # the experiment label once MAX_EXPERIMENTS names are in use
FINISHED_STATUSES = ("ok", "failed", "timeout", "cancelled")


def _bucket(seconds: float) -> int:
    for i, bound in enumerate(BUCKETS):
        if seconds <= bound:
            return i
    return len(BUCKETS)


def _num(value: Any) -> Optional[float]:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    s = str(value)
    return s if len(s) <= limit else s[: limit - 1] + "…"


class _Totals:
    """Cumulative numbers of one experiment: Prometheus counters never go down,
    so they are kept apart from the per-sweep state, which is evicted."""

    __slots__ = ("counts", "buckets", "dur_sum", "live_reports")

    def __init__(self) -> None:
        self.counts: Dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative
        self.dur_sum = 0.0
        self.live_reports = 0


class _Run:
    """What the scheduler knows about one sweep (one ``run_id``)."""

    def __init__(self, experiment: str, run_id: str, now: float) -> None:
        self.experiment, self.run_id = experiment, run_id
        self.state = "running"
        self.announced = False  # a start event was heard (else: seen from its trials only)
        self.started, self.last = now, now  # scheduler clock: no driver skew
        self.ended: Optional[float] = None
        self.total: Optional[int] = None
        self.results = ""
        self.counts: Dict[str, int] = {}  # from the workers' chunk events
        self.final: Optional[Dict[str, int]] = None  # the driver's counts at the end
        self.failures: Deque[Tuple[float, str, str]] = collections.deque(maxlen=MAX_FAILURES)
        self.dur_n, self.dur_sum, self.dur_min, self.dur_max = 0, 0.0, math.inf, 0.0
        self.live_reports = 0
        self.live_last: Optional[float] = None
        self.metrics: Dict[str, List[float]] = {}  # name -> [last, n, sum, min, max]
        # trial_id -> (ticks per second, when heard): the simulations running now
        self.sims: collections.OrderedDict[str, Tuple[float, float]] = collections.OrderedDict()
        self.sim_last: Optional[float] = None  # their speed together when last heard; None: no simulation

    def ticks_per_s(self, now: float) -> Optional[float]:
        """Ticks per second of this sweep's simulations together: of those running now
        while it runs, as last heard once it is over (the status page); None if it ran none."""
        if self.sim_last is None or self.state != "running":
            return self.sim_last
        return sum(tps for tps, heard in self.sims.values() if now - heard < SIM_SILENT_S)

    def done(self) -> int:
        counts = self.final if self.final is not None else self.counts
        return sum(v for k, v in counts.items() if k != "skipped")

    def snapshot(self, now: float) -> Dict[str, Any]:
        counts = dict(self.final if self.final is not None else self.counts)
        skipped = counts.pop("skipped", 0)
        done = sum(counts.values())
        elapsed = (self.ended or now) - self.started
        return {
            "experiment": self.experiment,
            "run_id": self.run_id,
            "state": self.state,
            "started": self.started,
            "ended": self.ended,
            "last_event": self.last,
            "total": self.total,
            "done": done,
            "skipped": skipped,
            "counts": counts,
            "ok": counts.get("ok", 0),
            "failed": done - counts.get("ok", 0),
            "rate": done / elapsed if elapsed > 0 else 0.0,
            "results": self.results,
            "durations": {
                "count": self.dur_n,
                "mean": self.dur_sum / self.dur_n if self.dur_n else None,
                "min": self.dur_min if self.dur_n else None,
                "max": self.dur_max if self.dur_n else None,
            },
            "live": {
                "reports": self.live_reports,
                "last": self.live_last,
                "metrics": {
                    k: {"last": m[0], "mean": m[2] / m[1], "min": m[3], "max": m[4]} for k, m in self.metrics.items()
                },
            },
            "ticks_per_s": self.ticks_per_s(now),
            "failures": [{"time": t, "trial_id": tid, "error": err} for t, tid, err in reversed(self.failures)],
        }


class ObservePlugin(SchedulerPlugin):
    """Scheduler plugin behind daskbench's Prometheus metrics and status page.

    Register it with ``client.register_plugin(ObservePlugin())``; registering it
    again on the same scheduler does nothing (``idempotent``).
    """

    name = NAME
    idempotent = True

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()  # events arrive on the loop; a scrape may come from elsewhere
        self.runs: collections.OrderedDict[str, _Run] = collections.OrderedDict()
        self.totals: Dict[str, _Totals] = {}
        self.scheduler: Any = None
        self.loop: Any = None
        self.prometheus = False
        self._bad_events = 0

    def __getstate__(self) -> Dict[str, Any]:
        # sent to the scheduler before it has any state worth keeping; a falsy
        # state would skip __setstate__ and leave the copy without attributes
        return {"version": 1}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self._reset()

    # -- scheduler hooks ---------------------------------------------------------

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.loop = getattr(scheduler.loop, "asyncio_loop", None)
        self.prometheus = serve(self)
        add_routes(scheduler, _snapshot_of)

    async def close(self) -> None:
        stop_serving(self)  # a closed scheduler's numbers must not show in another's /metrics

    def remove_client(self, scheduler: Any, client: str) -> None:
        # The driver announces the end of its sweep; if every client has gone and
        # a sweep never said so, its driver died: do not show it running for ever.
        if any(c != "fire-and-forget" for c in scheduler.clients):
            return
        with self._lock:
            for run in self.runs.values():
                if run.state == "running":
                    run.state, run.ended = "lost", time.time()

    def log_event(self, topic: str, msg: Any) -> None:
        handler = self._HANDLERS.get(topic)
        if handler is None:
            return
        try:
            if not isinstance(msg, dict):
                raise TypeError(f"message is a {type(msg).__name__}, not a dict")
            with self._lock:
                handler(self, msg, time.time())
        except Exception as exc:  # a malformed event must not disturb the scheduler
            self._bad_events += 1
            if self._bad_events == 1:
                logger.warning(
                    "daskbench-observe: ignoring a malformed %s event (%s: %s)", topic, type(exc).__name__, exc
                )

    # -- event handling (under the lock) -----------------------------------------

    def _run(self, msg: Dict[str, Any], now: float) -> _Run:
        run_id = _text(msg.get("run_id") or "", 64)
        run = self.runs.get(run_id)
        if run is None:
            if len(self.runs) >= MAX_RUNS:
                self._evict()
            run = self.runs[run_id] = _Run(_text(msg.get("experiment") or "?", 200), run_id, now)
        run.last = now
        return run

    def _evict(self) -> None:
        # the oldest sweep that is over, else the one quiet for longest
        over = [k for k, r in self.runs.items() if r.state != "running"]
        victim = over[0] if over else min(self.runs, key=lambda k: self.runs[k].last)
        del self.runs[victim]

    def _totals(self, experiment: str) -> _Totals:
        t = self.totals.get(experiment)
        if t is None:
            if len(self.totals) >= MAX_EXPERIMENTS:
                return self.totals.setdefault(OTHER, _Totals())
            t = self.totals[experiment] = _Totals()
        return t

    def _on_sweep(self, msg: Dict[str, Any], now: float) -> None:
        run = self._run(msg, now)
        total = _num(msg.get("total"))
        if total is not None:
            run.total = int(total)
        if msg.get("results"):
            run.results = _text(msg["results"])
        if msg.get("event") == "start":
            run.announced, run.state, run.ended, run.final = True, "running", None, None
            if not run.counts:
                run.started = now
        elif msg.get("event") == "end":
            run.state, run.ended = "finished", now
            final = {_text(k, 32): int(v) for k, v in (msg.get("counts") or {}).items() if _num(v) is not None}
            # Trials the driver settled itself (cancelled, chunks lost with a
            # worker) never reach a worker's event: count them now.
            totals = self._totals(run.experiment)
            for status, n in final.items():
                missing = n - run.counts.get(status, 0)
                if status != "skipped" and missing > 0:
                    totals.counts[status] = totals.counts.get(status, 0) + missing
                    run.counts[status] = n
            run.final = final

    def _on_trials(self, msg: Dict[str, Any], now: float) -> None:
        run = self._run(msg, now)
        totals = self._totals(run.experiment)
        for status, n in (msg.get("counts") or {}).items():
            n = _num(n)
            if n is None or n <= 0 or status == "skipped":
                continue
            status = _text(status, 32)
            run.counts[status] = run.counts.get(status, 0) + int(n)
            if len(totals.counts) < 16 or status in totals.counts:  # statuses are few; bound them anyway
                totals.counts[status] = totals.counts.get(status, 0) + int(n)
        if "buckets" in msg:
            _add_histogram(run, totals, msg)
        for d in msg.get("durations") or ():  # one value per trial: the events of earlier drivers
            d = _num(d)
            if d is None or d < 0:
                continue
            run.dur_n += 1
            run.dur_sum += d
            run.dur_min, run.dur_max = min(run.dur_min, d), max(run.dur_max, d)
            totals.buckets[_bucket(d)] += 1
            totals.dur_sum += d
        for item in (msg.get("errors") or ())[:MAX_FAILURES]:
            trial_id, error = (list(item) + ["", ""])[:2]
            run.failures.append((_num(msg.get("time")) or now, _text(trial_id, 64), _text(error)))

    def _on_live(self, msg: Dict[str, Any], now: float) -> None:
        run = self._run(msg, now)
        run.live_reports += 1
        run.live_last = now
        self._totals(run.experiment).live_reports += 1
        for name, value in (msg.get("metrics") or {}).items():
            v = _num(value)
            if v is None:
                continue
            name = _text(name, 64)
            m = run.metrics.get(name)
            if m is None:
                if len(run.metrics) >= MAX_METRICS:
                    continue
                m = run.metrics[name] = [v, 0, 0.0, v, v]
            m[0], m[1], m[2], m[3], m[4] = v, m[1] + 1, m[2] + v, min(m[3], v), max(m[4], v)

    def _on_sim(self, msg: Dict[str, Any], now: float) -> None:
        run = self._run(msg, now)
        tps = _num(msg.get("ticks_per_s"))
        if tps is None:
            return
        trial_id = _text(msg.get("trial_id") or "", 64)
        run.sims.pop(trial_id, None)
        if msg.get("done"):  # over: the speed last heard stays on the page
            run.sim_last = run.sim_last or 0.0
            return
        if len(run.sims) >= MAX_SIMS:
            run.sims.popitem(last=False)
        run.sims[trial_id] = (tps, now)
        run.sim_last = sum(t for t, _ in run.sims.values())

    _HANDLERS = {TOPIC_SWEEP: _on_sweep, TOPIC_TRIALS: _on_trials, TOPIC_LIVE: _on_live, TOPIC_SIM: _on_sim}

    # -- views -------------------------------------------------------------------

    def snapshot(self) -> Dict[str, Any]:
        """Everything the status page shows, as plain JSON-able data."""
        now = time.time()
        with self._lock:
            runs = [r.snapshot(now) for r in self.runs.values()]
        runs.sort(key=lambda r: (r["state"] != "running", -r["started"]))
        failures = sorted(
            ({"experiment": r["experiment"], "run_id": r["run_id"], **f} for r in runs for f in r["failures"]),
            key=lambda f: -f["time"],
        )[:MAX_FAILURES]
        address = getattr(self.scheduler, "address", "") if self.scheduler is not None else ""
        return {"scheduler": address, "time": now, "prometheus": self.prometheus, "runs": runs, "failures": failures}

    def metric_values(self) -> Dict[str, Any]:
        """The numbers behind the ``daskbench_*`` Prometheus metrics of this scheduler."""
        with self._lock:
            running = sum(1 for r in self.runs.values() if r.state == "running")
            ticks: Dict[str, float] = {}
            now = time.time()
            for r in self.runs.values():
                tps = r.ticks_per_s(now)
                if tps is not None:  # a finished simulation runs at 0 ticks/s
                    ticks[r.experiment] = ticks.get(r.experiment, 0.0) + (tps if r.state == "running" else 0.0)
            totals = {
                name: (dict(t.counts), list(t.buckets), t.dur_sum, t.live_reports) for name, t in self.totals.items()
            }
        return {"running": running, "ticks": ticks, "totals": totals}


def _add_histogram(run: _Run, totals: _Totals, msg: Dict[str, Any]) -> None:
    """Durations already in buckets (the driver's events): counts per bucket, sum, min, max."""
    buckets = [_num(b) for b in msg.get("buckets") or ()]
    n, total = _num(msg.get("duration_n")), _num(msg.get("duration_sum"))
    if len(buckets) != len(totals.buckets) or any(b is None or b < 0 for b in buckets) or not n or total is None:
        return
    for i, b in enumerate(buckets):
        totals.buckets[i] += int(b or 0)
    run.dur_n += int(n)
    run.dur_sum += total
    totals.dur_sum += total
    lo, hi = _num(msg.get("duration_min")), _num(msg.get("duration_max"))
    if lo is not None and hi is not None:
        run.dur_min, run.dur_max = min(run.dur_min, lo), max(run.dur_max, hi)


def _snapshot_of(scheduler: Any) -> Optional[Dict[str, Any]]:
    """What the status page shows: the snapshot of the plugin registered now, whatever
    its name (a replaced one takes over), or None."""
    plugin = next((p for p in scheduler.plugins.values() if isinstance(p, ObservePlugin)), None)
    return plugin.snapshot() if plugin is not None else None
