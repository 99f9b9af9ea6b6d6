"""Watching sweeps from the scheduler: Prometheus metrics and a status page.

:class:`ObservePlugin` is a scheduler plugin. It listens to the events the
driver and the workers log (topics and messages in :mod:`daskbench.observe.live`) and
keeps a small, bounded summary per sweep, which it publishes two ways on the
scheduler's HTTP server (the dashboard port):

- ``/metrics`` (distributed's Prometheus endpoint) gains ``daskbench_*``
  metrics: trials by status, trial durations, running sweeps, live reports and
  simulation speed, labelled by experiment;
- ``/daskbench/status`` (HTML, refreshes itself) and ``/daskbench/status.json``.

Only scheduler hooks are used, so it works on every kind of cluster.
"""

from __future__ import annotations

import asyncio
import collections
import html
import json
import logging
import math
import threading
import time
import weakref
from typing import Any, Deque, Dict, Iterator, List, Optional, Tuple

from distributed.diagnostics.plugin import SchedulerPlugin
from tornado import web

from .live import TOPIC_LIVE, TOPIC_SIM, TOPIC_SWEEP, TOPIC_TRIALS

logger = logging.getLogger("distributed.scheduler.daskbench")  # lands in the scheduler's log

NAME = "daskbench-observe"
#: histogram bucket upper bounds (seconds): trials last from a millisecond to an hour
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
           60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# Bounds that keep a scheduler's memory flat however long it lives and however
# many trials it runs: everything kept is per sweep or per experiment, never per trial.
MAX_RUNS = 50
MAX_FAILURES = 20
MAX_EXPERIMENTS = 200  # also bounds Prometheus label cardinality
MAX_METRICS = 32
MAX_TEXT = 400
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
        self.started, self.ended, self.last = now, None, now  # scheduler clock: no driver skew
        self.total: Optional[int] = None
        self.results = ""
        self.counts: Dict[str, int] = {}  # from the workers' chunk events
        self.final: Optional[Dict[str, int]] = None  # the driver's counts at the end
        self.failures: Deque[Tuple[float, str, str]] = collections.deque(maxlen=MAX_FAILURES)
        self.dur_n, self.dur_sum, self.dur_min, self.dur_max = 0, 0.0, math.inf, 0.0
        self.live_reports, self.live_last = 0, None
        self.metrics: Dict[str, List[float]] = {}  # name -> [last, n, sum, min, max]
        self.ticks_per_s: Optional[float] = None

    def done(self) -> int:
        counts = self.final if self.final is not None else self.counts
        return sum(v for k, v in counts.items() if k != "skipped")

    def snapshot(self, now: float) -> Dict[str, Any]:
        counts = dict(self.final if self.final is not None else self.counts)
        skipped = counts.pop("skipped", 0)
        done = sum(counts.values())
        elapsed = (self.ended or now) - self.started
        return {
            "experiment": self.experiment, "run_id": self.run_id, "state": self.state,
            "started": self.started, "ended": self.ended, "last_event": self.last,
            "total": self.total, "done": done, "skipped": skipped, "counts": counts,
            "ok": counts.get("ok", 0), "failed": done - counts.get("ok", 0),
            "rate": done / elapsed if elapsed > 0 else 0.0, "results": self.results,
            "durations": {"count": self.dur_n, "mean": self.dur_sum / self.dur_n if self.dur_n else None,
                          "min": self.dur_min if self.dur_n else None, "max": self.dur_max if self.dur_n else None},
            "live": {"reports": self.live_reports, "last": self.live_last,
                     "metrics": {k: {"last": m[0], "mean": m[2] / m[1], "min": m[3], "max": m[4]}
                                 for k, m in self.metrics.items()}},
            "ticks_per_s": self.ticks_per_s,
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
        self.runs: "collections.OrderedDict[str, _Run]" = collections.OrderedDict()
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
        self.prometheus = _install_collector()
        _LIVE.add(self)
        _add_routes(scheduler)

    async def close(self) -> None:
        _LIVE.discard(self)  # a closed scheduler's numbers must not show in another's /metrics

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
                logger.warning("daskbench-observe: ignoring a malformed %s event (%s: %s)",
                               topic, type(exc).__name__, exc)

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
        for d in msg.get("durations") or ():
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
        if tps is not None:
            run.ticks_per_s = tps

    _HANDLERS = {TOPIC_SWEEP: _on_sweep, TOPIC_TRIALS: _on_trials, TOPIC_LIVE: _on_live, TOPIC_SIM: _on_sim}

    # -- views -------------------------------------------------------------------

    def snapshot(self) -> Dict[str, Any]:
        """Everything the status page shows, as plain JSON-able data."""
        now = time.time()
        with self._lock:
            runs = [r.snapshot(now) for r in self.runs.values()]
        runs.sort(key=lambda r: (r["state"] != "running", -r["started"]))
        failures = sorted(({"experiment": r["experiment"], "run_id": r["run_id"], **f}
                           for r in runs for f in r["failures"]), key=lambda f: -f["time"])[:MAX_FAILURES]
        address = getattr(self.scheduler, "address", "") if self.scheduler is not None else ""
        return {"scheduler": address, "time": now, "prometheus": self.prometheus,
                "runs": runs, "failures": failures}

    def metric_values(self) -> Dict[str, Any]:
        """The numbers behind the ``daskbench_*`` Prometheus metrics of this scheduler."""
        with self._lock:
            running = sum(1 for r in self.runs.values() if r.state == "running")
            ticks: Dict[str, float] = {}
            for r in self.runs.values():
                if r.ticks_per_s is not None:  # a finished simulation runs at 0 ticks/s
                    ticks[r.experiment] = ticks.get(r.experiment, 0.0) + (r.ticks_per_s if r.state == "running" else 0.0)
            totals = {name: (dict(t.counts), list(t.buckets), t.dur_sum, t.live_reports)
                      for name, t in self.totals.items()}
        return {"running": running, "ticks": ticks, "totals": totals}


# -- Prometheus ------------------------------------------------------------------

_LIVE: "weakref.WeakSet[ObservePlugin]" = weakref.WeakSet()  # started, not closed, in this process
_collector_lock = threading.Lock()
_collector_state: Dict[str, Any] = {"installed": None}


def _install_collector() -> bool:
    """Register the one process-wide collector; False if prometheus_client is missing."""
    with _collector_lock:
        if _collector_state["installed"] is None:
            try:
                import prometheus_client
            except ImportError:
                logger.warning("daskbench-observe: prometheus_client is not installed, so /metrics has no "
                               "daskbench_* metrics (pip install prometheus_client); /daskbench/status works")
                _collector_state["installed"] = False
            else:
                try:
                    prometheus_client.REGISTRY.register(_Collector())
                except ValueError:  # a second copy of this module (reload): its collector serves
                    logger.debug("daskbench metrics already registered", exc_info=True)
                _collector_state["installed"] = True
        return bool(_collector_state["installed"])


def _plugins_for_this_scrape() -> List[ObservePlugin]:
    # /metrics serves the process-wide registry, so a scrape of one scheduler
    # would show every scheduler's numbers. It runs on its scheduler's event
    # loop: keep the plugins of that loop. Called from elsewhere: all of them.
    plugins = list(_LIVE)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return plugins
    from distributed.scheduler import Scheduler

    if any(getattr(s.loop, "asyncio_loop", None) is loop for s in list(Scheduler._instances)):
        return [p for p in plugins if p.loop is loop]
    return plugins


class _Collector:
    """Yields the ``daskbench_*`` families summed over this scrape's plugins."""

    def describe(self) -> List[Any]:
        return list(self._families([]))

    def collect(self) -> Iterator[Any]:
        try:
            values = [p.metric_values() for p in _plugins_for_this_scrape()]
        except Exception:  # never break distributed's own metrics on the same page
            logger.exception("daskbench-observe: cannot collect metrics")
            values = []
        return iter(list(self._families(values)))

    @staticmethod
    def _families(values: List[Dict[str, Any]]) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        counts: Dict[Tuple[str, str], int] = {}
        hist: Dict[str, Tuple[List[int], float]] = {}
        live: Dict[str, int] = {}
        ticks: Dict[str, float] = {}
        for v in values:  # several plugins only when schedulers share a loop: sum them
            for exp, (c, buckets, dur_sum, reports) in v["totals"].items():
                for status, n in c.items():
                    counts[exp, status] = counts.get((exp, status), 0) + n
                b, s = hist.get(exp, ([0] * len(buckets), 0.0))
                hist[exp] = ([x + y for x, y in zip(b, buckets)], s + dur_sum)
                live[exp] = live.get(exp, 0) + reports
            for exp, tps in v["ticks"].items():
                ticks[exp] = ticks.get(exp, 0.0) + tps

        trials = CounterMetricFamily("daskbench_trials", "Trials finished, by experiment and status",
                                     labels=["experiment", "status"])
        for (exp, status), n in sorted(counts.items()):
            trials.add_metric([exp, status], n)
        yield trials
        durations = HistogramMetricFamily("daskbench_trial_duration_seconds", "Time one trial took on its worker",
                                          labels=["experiment"])
        for exp, (b, s) in sorted(hist.items()):
            cumulative, acc = [], 0
            for bound, n in zip([*map(repr, BUCKETS), "+Inf"], b):
                acc += n
                cumulative.append((bound, acc))
            durations.add_metric([exp], cumulative, sum_value=s)
        yield durations
        yield GaugeMetricFamily("daskbench_sweeps_running", "Sweeps started and not yet ended",
                                value=sum(v["running"] for v in values))
        reports = CounterMetricFamily("daskbench_live_reports", "Live metric reports (daskbench.report) received",
                                      labels=["experiment"])
        for exp, n in sorted(live.items()):
            reports.add_metric([exp], n)
        yield reports
        sim = GaugeMetricFamily("daskbench_sim_ticks_per_second", "Simulated ticks per second of running simulations",
                                labels=["experiment"])
        for exp, tps in sorted(ticks.items()):
            sim.add_metric([exp], tps)
        yield sim


# -- HTTP ------------------------------------------------------------------------

def _add_routes(scheduler: Any) -> None:
    """Serve the status page on the scheduler's HTTP server, once per scheduler."""
    app = getattr(scheduler, "http_application", None)
    if app is None or getattr(app, "_daskbench_routes", False):
        return  # no HTTP server: no page, and nothing else depends on it
    prefix = _http_prefix(app)
    kwargs = {"scheduler": scheduler}
    # add_handlers puts these rules before distributed's catch-all ones
    app.add_handlers(r".*", [(prefix + "daskbench/status", StatusPage, kwargs),
                             (prefix + "daskbench/status.json", StatusJSON, kwargs)])
    app._daskbench_routes = True


def _http_prefix(app: Any) -> str:
    """The dashboard's URL prefix (``--dashboard-prefix``), read off its /metrics route."""
    for rule in getattr(app.default_router, "rules", []):
        for sub in getattr(rule.target, "rules", []):
            pattern = getattr(getattr(sub.matcher, "regex", None), "pattern", "")
            if pattern.endswith("metrics$") and "/" in pattern:
                return pattern[: -len("metrics$")].rstrip("/") + "/"
    return "/"


class _Handler(web.RequestHandler):
    def initialize(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def _snapshot(self) -> Optional[Dict[str, Any]]:
        # the plugin registered now, whatever its name: a replaced one takes over
        plugin = next((p for p in self.scheduler.plugins.values() if isinstance(p, ObservePlugin)), None)
        return plugin.snapshot() if plugin is not None else None

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")


class StatusJSON(_Handler):
    """``GET /daskbench/status.json``: the sweeps this scheduler has seen."""

    def get(self) -> None:
        snap = self._snapshot()
        if snap is None:
            raise web.HTTPError(404, "the daskbench-observe plugin is not installed")
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(snap, default=str))


class StatusPage(_Handler):
    """``GET /daskbench/status``: the same as a page that refreshes itself every 2 s."""

    def get(self) -> None:
        snap = self._snapshot()
        if snap is None:
            raise web.HTTPError(404, "the daskbench-observe plugin is not installed")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(render_html(snap))


# -- the page --------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px 32px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#656d76;margin-bottom:18px}.note{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:6px}
table{border-collapse:collapse;width:100%}th,td{padding:7px 10px;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:middle}
th{background:#f6f8fa;font-weight:600;font-size:13px;color:#424a53}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{width:180px;height:12px;background:#eaeef2;border-radius:6px;overflow:hidden;display:inline-block;vertical-align:middle}
.bar{display:inline-flex}.bar span{display:block;height:100%;background:#2da44e}.bar span.bad{background:#cf222e}
.bar span.skip{background:#8c959f}
.pt{font-size:12px;color:#424a53;margin-left:8px;font-variant-numeric:tabular-nums}
.st{padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.running{background:#0969da}.finished{background:#1a7f37}.lost{background:#9a6700}
.failed{color:#cf222e;font-weight:600}.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.err{max-width:640px;white-space:pre-wrap;word-break:break-word}.dim{color:#656d76}
"""


# Refresh in place, not by navigating (meta refresh): the scroll position stays,
# and headless browsers given a virtual time budget do not reload for ever.
_REFRESH = (
    '<noscript><meta http-equiv="refresh" content="2"></noscript><script>'
    'setInterval(function(){fetch(location.href,{cache:"no-store"}).then(function(r){return r.text()})'
    '.then(function(t){document.body.replaceWith(new DOMParser().parseFromString(t,"text/html").body)})'
    '.catch(function(){})},2000)</script>'
)


def _when(t: Optional[float]) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def _eta(r: Dict[str, Any]) -> str:
    left = (r["total"] or 0) - r["done"] - r["skipped"]
    if r["state"] != "running" or left <= 0 or r["rate"] <= 0:
        return ""
    secs = int(left / r["rate"])
    return f'<br><span class="dim">ETA {secs // 3600}:{secs // 60 % 60:02d}:{secs % 60:02d}</span>'


def _row(r: Dict[str, Any]) -> str:
    e = html.escape
    total = r["total"]
    done = r["done"] + r["skipped"]
    # one segment per outcome: a few failures must not paint the whole bar red
    scale = 100.0 / max(total or done or 1, done, 1)
    bar = "".join(f'<span class="{cls}" style="width:{n * scale:.2f}%"></span>'
                  for cls, n in (("skip", r["skipped"]), ("", r["ok"]), ("bad", r["failed"])) if n)
    prog = f"{done}/{total}" if total is not None else f"{done}/?"
    other = {k: v for k, v in r["counts"].items() if k not in ("ok", "failed") and v}
    detail = f' <span class="dim">({", ".join(f"{v} {e(k)}" for k, v in sorted(other.items()))})</span>' if other else ""
    live = [f"{e(k)}={m['last']:.4g}" for k, m in list(r["live"]["metrics"].items())[:3]]
    if r["ticks_per_s"] is not None:
        tps = r["ticks_per_s"]
        live.append(f"{tps:,.0f} ticks/s" if abs(tps) >= 100 else f"{tps:.3g} ticks/s")
    skipped = f'<br><span class="dim">{r["skipped"]} skipped (already ok)</span>' if r["skipped"] else ""
    return (
        f'<tr><td><b>{e(r["experiment"])}</b><br><span class="mono dim">{e(r["run_id"])}</span></td>'
        f'<td><span class="st {e(r["state"])}">{e(r["state"])}</span></td>'
        f'<td><span class="bar">{bar}</span>'
        f'<span class="pt">{prog}</span>{skipped}</td>'
        f'<td class="n">{r["ok"]}</td><td class="n{" failed" if r["failed"] else ""}">{r["failed"]}{detail}</td>'
        f'<td class="n">{r["rate"]:.1f}/s{_eta(r)}</td><td>{_when(r["started"])}</td>'
        f'<td class="mono">{e(r["results"])}</td><td class="mono">{" ".join(live)}</td></tr>'
    )


def render_html(snap: Dict[str, Any]) -> str:
    """The status page for a :meth:`ObservePlugin.snapshot`; all text is escaped."""
    e = html.escape
    parts = [
        '<!DOCTYPE html><html><head><meta charset="utf-8">',
        f"<title>daskbench status</title><style>{_CSS}</style>{_REFRESH}</head><body>",
        "<h1>daskbench sweeps</h1>",
        f'<div class="sub">scheduler <span class="mono">{e(snap["scheduler"])}</span> · '
        f'updated {_when(snap["time"])} · refreshes every 2 s · <a href="status.json">JSON</a></div>',
    ]
    if not snap["prometheus"]:
        parts.append('<p class="note">prometheus_client is not installed on the scheduler: '
                     "/metrics has no daskbench_* metrics.</p>")
    if snap["runs"]:
        states = collections.Counter(r["state"] for r in snap["runs"])
        parts.append(f'<div class="sub">{" · ".join(f"{n} {e(k)}" for k, n in sorted(states.items()))}</div>')
        parts.append("<table><tr><th>Experiment</th><th>State</th><th>Progress</th><th>OK</th><th>Failed</th>"
                     "<th>Rate</th><th>Started</th><th>Results</th><th>Live</th></tr>")
        parts.extend(_row(r) for r in snap["runs"])
        parts.append("</table>")
    else:
        parts.append('<p class="dim">No sweep has run on this scheduler yet.</p>')
    parts.append("<h2>Recent failures</h2>")
    if snap["failures"]:
        parts.append("<table><tr><th>Time</th><th>Experiment</th><th>Trial</th><th>Error</th></tr>")
        parts.extend(
            f'<tr><td>{_when(f["time"])}</td><td>{e(f["experiment"])}</td>'
            f'<td class="mono">{e(f["trial_id"])}</td><td class="mono err">{e(f["error"])}</td></tr>'
            for f in snap["failures"])
        parts.append("</table>")
    else:
        parts.append('<p class="dim">None.</p>')
    parts.append("</body></html>")
    return "".join(parts)
