"""The ``daskbench_*`` families on the scheduler's ``/metrics`` (distributed's Prometheus endpoint).

One collector per process, registered with ``prometheus_client``'s registry the
first time a plugin starts, reads the numbers of the started plugins
(:meth:`daskbench.observe.plugin.ObservePlugin.metric_values`): trials by
experiment and status, trial durations, running sweeps, live reports and the
speed of running simulations.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from typing import Any, Dict, Iterator, List, Protocol, Tuple

from ..dask_compat import schedulers_in_this_process

logger = logging.getLogger("distributed.scheduler.daskbench")  # lands in the scheduler's log

#: histogram bucket upper bounds (seconds): trials last from a millisecond to an hour
BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)


class MetricSource(Protocol):
    """What the collector reads off a plugin: its scheduler's event loop and its numbers."""

    loop: Any

    def metric_values(self) -> Dict[str, Any]: ...


_SOURCES: weakref.WeakSet[Any] = weakref.WeakSet()  # started, not closed, in this process
_collector_lock = threading.Lock()
_collector_state: Dict[str, Any] = {"installed": None}


def serve(source: MetricSource) -> bool:
    """Show ``source``'s numbers on ``/metrics`` until :func:`stop_serving`; False if
    prometheus_client is missing (then nothing is shown)."""
    _SOURCES.add(source)
    return _install_collector()


def stop_serving(source: MetricSource) -> None:
    """A closed scheduler's numbers must not show in another's ``/metrics``."""
    _SOURCES.discard(source)


def _install_collector() -> bool:
    """Register the one process-wide collector; False if prometheus_client is missing."""
    with _collector_lock:
        if _collector_state["installed"] is None:
            try:
                import prometheus_client
            except ImportError:
                logger.warning(
                    "daskbench-observe: prometheus_client is not installed, so /metrics has no "
                    "daskbench_* metrics (pip install prometheus_client); /daskbench/status works"
                )
                _collector_state["installed"] = False
            else:
                try:
                    prometheus_client.REGISTRY.register(_Collector())
                except ValueError:  # a second copy of this module (reload): its collector serves
                    logger.debug("daskbench metrics already registered", exc_info=True)
                _collector_state["installed"] = True
        return bool(_collector_state["installed"])


def _sources_for_this_scrape() -> List[MetricSource]:
    # /metrics serves the process-wide registry, so a scrape of one scheduler
    # would show every scheduler's numbers. It runs on its scheduler's event
    # loop: keep the plugins of that loop. Called from elsewhere: all of them.
    sources = list(_SOURCES)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return sources
    if any(getattr(s.loop, "asyncio_loop", None) is loop for s in schedulers_in_this_process()):
        return [p for p in sources if p.loop is loop]
    return sources


class _Collector:
    """Yields the ``daskbench_*`` families summed over this scrape's plugins."""

    def describe(self) -> List[Any]:
        return list(self._families([]))

    def collect(self) -> Iterator[Any]:
        try:
            values = [p.metric_values() for p in _sources_for_this_scrape()]
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

        trials = CounterMetricFamily(
            "daskbench_trials", "Trials finished, by experiment and status", labels=["experiment", "status"]
        )
        for (exp, status), n in sorted(counts.items()):
            trials.add_metric([exp, status], n)
        yield trials
        durations = HistogramMetricFamily(
            "daskbench_trial_duration_seconds", "Time one trial took on its worker", labels=["experiment"]
        )
        for exp, (b, s) in sorted(hist.items()):
            cumulative, acc = [], 0
            for bound, n in zip([*map(repr, BUCKETS), "+Inf"], b):
                acc += n
                cumulative.append((bound, acc))
            durations.add_metric([exp], cumulative, sum_value=s)
        yield durations
        yield GaugeMetricFamily(
            "daskbench_sweeps_running", "Sweeps started and not yet ended", value=sum(v["running"] for v in values)
        )
        reports = CounterMetricFamily(
            "daskbench_live_reports", "Live metric reports (daskbench.report) received", labels=["experiment"]
        )
        for exp, n in sorted(live.items()):
            reports.add_metric([exp], n)
        yield reports
        sim = GaugeMetricFamily(
            "daskbench_sim_ticks_per_second", "Simulated ticks per second of running simulations", labels=["experiment"]
        )
        for exp, tps in sorted(ticks.items()):
            sim.add_metric([exp], tps)
        yield sim
