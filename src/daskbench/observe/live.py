"""Live metrics: trials report intermediate values while they run.

Inside a trial, ``daskbench.report(loss=0.3, step=10)`` sends the values as a
Dask event (``Worker.log_event``) on the topic ``daskbench-live``; the driver
subscribes to it (``Client.subscribe_topic``) and shows the latest aggregate on
the progress line, and the scheduler plugin in :mod:`daskbench.observe.plugin` counts
them for Prometheus. Sends are throttled per trial (the last value always
arrives), so a trial that reports every step does not flood the scheduler.

Event topics and their messages (all plain dicts, shared with the plugin):

- ``daskbench-live``: ``{experiment, run_id, trial_id, time, metrics: {name: float}, rejected: {name: type}}``
- ``daskbench-trials`` (from the driver, for the chunks that ended since the last, at most
  twice a second: :mod:`daskbench.observe.trial_events`): ``{experiment, run_id, time,
  counts: {status: n}, buckets: [n per duration bucket], duration_n, duration_sum,
  duration_min, duration_max, errors: [[trial_id, error], ...]}`` (earlier workers sent
  ``durations: [s, ...]`` instead of the buckets; the plugin takes both)
- ``daskbench-sweep`` (from the driver): ``{event: "start"|"end", experiment, run_id, time,
  total, results, counts}``
- ``daskbench-sim`` (from a sharded simulation's coordinator, about once a second):
  ``{experiment, run_id, trial_id, time, tick, ticks_per_s, done}``

The worker-side runner says which trial runs in a thread with :func:`set_current`
/ :func:`reset_current` (a chunk's fast loop sets one :class:`TrialCursor` for all its
trials); a trial's child process (``runner.isolation=process``)
relays its events through its worker with :func:`set_sender`.
"""

from __future__ import annotations

import contextvars
import math
import numbers
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

TOPIC_LIVE = "daskbench-live"
TOPIC_TRIALS = "daskbench-trials"
TOPIC_SWEEP = "daskbench-sweep"
TOPIC_SIM = "daskbench-sim"

#: seconds between two sends of the same trial's metrics
MIN_INTERVAL_S = 0.25
#: seconds between two reports of a simulation's speed
SIM_INTERVAL_S = 1.0


@dataclass(frozen=True)
class TrialContext:
    """Which trial is running in this thread (set by the worker-side runner)."""

    experiment: str
    run_id: str
    trial_id: str
    prune: bool = False  # an adaptive search prunes: every report with a step is sent (pruners compare steps)


class TrialCursor:
    """The running trial of a chunk that runs its trials one after another in one thread:
    the chunk sets it once (:func:`set_current`) and moves ``trial_id`` from trial to
    trial, instead of a :class:`TrialContext` made and set per trial; :func:`current`
    makes the trial's context only when a trial asks for it. ``trial_id`` None: between
    trials (a thread the trial left running, with a copy of its context, reports nothing)."""

    __slots__ = ("experiment", "run_id", "prune", "trial_id")

    def __init__(self, experiment: str, run_id: str, prune: bool = False) -> None:
        self.experiment, self.run_id, self.prune = experiment, run_id, prune
        self.trial_id: Optional[str] = None

    def context(self) -> Optional[TrialContext]:
        """The running trial's context, or None between trials."""
        tid = self.trial_id
        return None if tid is None else TrialContext(self.experiment, self.run_id, tid, self.prune)


Current = Union[TrialContext, TrialCursor]
_current: contextvars.ContextVar[Optional[Current]] = contextvars.ContextVar("daskbench_trial", default=None)
_pending: Dict[str, Tuple[float, Optional[Dict[str, Any]]]] = {}  # trial_id -> (last send time, unsent message)
_lock = threading.Lock()
#: called as hook(trial_id, metrics) by report(); daskbench.runner.prune adds the one
#: that stops a pruned trial (observe never drives the run itself)
REPORT_HOOKS: List[Callable[[str, Dict[str, float]], None]] = []


Sender = Callable[[str, Dict[str, Any]], None]


def current() -> Optional[TrialContext]:
    """The running trial, or None outside one (pass it to threads you start)."""
    ctx = _current.get()
    return ctx.context() if isinstance(ctx, TrialCursor) else ctx


def set_current(context: Optional[Current]) -> contextvars.Token[Optional[Current]]:
    """Make ``context`` the running trial of this thread (and of the threads that copy
    its context); returns the token that :func:`reset_current` takes."""
    return _current.set(context)


def reset_current(token: contextvars.Token[Optional[Current]]) -> None:
    """Undo the :func:`set_current` that returned ``token`` (the trial is over)."""
    _current.reset(token)


def _numeric(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        return v if math.isfinite(v) else None
    return None


def report(context: Optional[TrialContext] = None, **metrics: Any) -> None:
    """Report intermediate numeric values of the running trial.

    Outside a trial running on a Dask worker this does nothing. A value that is
    not a finite number is not aggregated; the driver says so once per metric.
    """
    ctx = context or current()
    if ctx is None:
        return
    clean: Dict[str, float] = {}
    rejected: Dict[str, str] = {}
    for name, value in metrics.items():
        v = _numeric(value)
        if v is None:
            rejected[str(name)] = type(value).__name__
        else:
            clean[str(name)] = v
    for hook in REPORT_HOOKS:  # the runner's pruning: raises TrialPruned once the search pruned this trial
        hook(ctx.trial_id, clean)
    msg = {
        "experiment": ctx.experiment,
        "run_id": ctx.run_id,
        "trial_id": ctx.trial_id,
        "time": time.time(),
        "metrics": clean,
        "rejected": rejected,
    }
    now = time.monotonic()
    with _lock:
        last = _pending.get(ctx.trial_id, (0.0, None))[0]
        if now - last < MIN_INTERVAL_S and not rejected and not (ctx.prune and "step" in clean):
            _pending[ctx.trial_id] = (last, msg)  # keep the newest; sent later or at the end
            return
        _pending[ctx.trial_id] = (now, None)
    send(TOPIC_LIVE, msg)


def flush(trial_id: str) -> None:
    """Send a trial's last throttled report (called when the trial ends)."""
    if trial_id not in _pending:  # the trial never reported: no lock to take (once per trial)
        return
    with _lock:
        entry = _pending.pop(trial_id, None)
    if entry and entry[1] is not None:
        send(TOPIC_LIVE, entry[1])


def unsent() -> Dict[str, Any]:
    """The trials whose last throttled report :func:`flush` has still to send: empty unless
    trials report (the same object for the process's life, to test cheaply)."""
    return _pending


def send(topic: str, msg: Dict[str, Any]) -> None:
    """Log one event on ``topic``: on this process's Dask worker, or through the
    sender set with :func:`set_sender`; outside a worker nobody hears it."""
    _sender(topic, msg)


def set_sender(sender: Sender) -> None:
    """Send this process's events with ``sender`` instead of its Dask worker: a trial's
    child process, which has no worker, hands them to its parent this way."""
    global _sender
    _sender = sender


def _to_worker(topic: str, msg: Dict[str, Any]) -> None:
    try:
        from distributed import get_worker

        get_worker().log_event(topic, msg)
    except (ImportError, ValueError):  # not on a worker: nobody to tell
        pass


_sender: Sender = _to_worker


class TickRate:
    """A sharded simulation's speed, sent on ``daskbench-sim`` by its coordinator: after
    the first tick, about every :data:`SIM_INTERVAL_S` seconds, and once at the end.

    Outside a trial of a sweep (``context`` None: a notebook's own ``sim.run``) it
    sends nothing: no sweep would show it.
    """

    def __init__(self, context: Optional[TrialContext], interval_s: float = SIM_INTERVAL_S):
        self.context, self.interval_s = context, interval_s
        self._since, self._ticks, self._sent = time.monotonic(), 0, False
        self._last_tick: Optional[int] = None

    def restart(self) -> None:
        """The shards (re)started: count from now, not from before they were placed."""
        self._since, self._ticks = time.monotonic(), 0

    def ticked(self, tick: int) -> None:
        """One tick ran on every shard."""
        if self.context is None:
            return
        self._ticks += 1
        self._last_tick = tick
        now = time.monotonic()
        elapsed = now - self._since
        if elapsed > 0 and (not self._sent or elapsed >= self.interval_s):
            self._send(self._ticks / elapsed, done=False)
            self._since, self._ticks, self._sent = now, 0, True

    def done(self) -> None:
        """The simulation is over (finished or failed): it runs no more ticks."""
        if self.context is not None:
            self._send(0.0, done=True)

    def _send(self, ticks_per_s: float, done: bool) -> None:
        ctx = self.context
        assert ctx is not None
        send(
            TOPIC_SIM,
            {
                "experiment": ctx.experiment,
                "run_id": ctx.run_id,
                "trial_id": ctx.trial_id,
                "time": time.time(),
                "tick": self._last_tick,
                "ticks_per_s": ticks_per_s,
                "done": done,
            },
        )


class LiveAggregate:
    """Driver side: the latest value of each metric per trial, averaged over the
    trials heard from in the last ``window_s`` seconds."""

    def __init__(self, run_id: str, window_s: float = 30.0, warn: Callable[[str], None] = print):
        self.run_id, self.window_s, self.warn = run_id, window_s, warn
        self._latest: Dict[str, Tuple[float, Dict[str, float]]] = {}
        self._warned: Set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, event: Tuple[float, Dict[str, Any]]) -> None:
        """Handler for ``Client.subscribe_topic`` (called on the client's loop)."""
        _, msg = event
        if not isinstance(msg, dict) or msg.get("run_id") != self.run_id:
            return
        for name, typ in (msg.get("rejected") or {}).items():
            if name not in self._warned:
                self._warned.add(name)
                self.warn(
                    f"daskbench.report: metric {name!r} from trial {msg.get('trial_id')} is a {typ}, "
                    "not a number; only numbers are aggregated"
                )
        with self._lock:
            self._latest[msg["trial_id"]] = (time.monotonic(), dict(msg.get("metrics") or {}))

    def summary(self, limit: int = 4) -> str:
        """``name=mean`` for up to ``limit`` metrics, with the number of trials."""
        cutoff = time.monotonic() - self.window_s
        with self._lock:
            for tid in [t for t, (ts, _) in self._latest.items() if ts < cutoff]:
                del self._latest[tid]
            values: Dict[str, List[float]] = {}
            for _, metrics in self._latest.values():
                for k, v in metrics.items():
                    values.setdefault(k, []).append(v)
            n = len(self._latest)
        if not values:
            return ""
        parts = [f"{k}={sum(v) / len(v):.4g}" for k, v in list(values.items())[:limit]]
        return f"live ({n} trial{'s' if n != 1 else ''}): " + " ".join(parts)
