"""The ``daskbench-trials`` events, sent by the driver for many chunks at once.

The scheduler's plugin (:mod:`daskbench.observe.plugin`) counts the trials that
ended, by status, their durations and the latest failures. Each chunk's worker used
to log one event; every event is a message the scheduler handles, and its durations
were a value per trial. Now the driver, which receives every chunk's table anyway,
folds the chunks that arrived into one event at most every ``interval_s`` seconds
(and once more before the sweep's ``end``): the durations as the plugin's histogram
buckets and their sum, minimum and maximum, so the scheduler's work is per event,
not per trial or per task.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

from .live import TOPIC_TRIALS
from .prometheus import BUCKETS

#: seconds between two events of one sweep (the status page refreshes every few seconds)
INTERVAL_S = 0.5
#: failures kept per event (the plugin keeps the last 20 per sweep)
MAX_ERRORS = 20


class TrialEvents:
    """The ended trials of one sweep not yet told to the scheduler."""

    def __init__(self, experiment: str, run_id: str, interval_s: float = INTERVAL_S) -> None:
        self.experiment, self.run_id, self.interval_s = experiment, run_id, interval_s
        self._last = time.monotonic()
        self._clear()

    def _clear(self) -> None:
        self.counts: Dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.n, self.total_s, self.min_s, self.max_s = 0, 0.0, float("inf"), 0.0
        self.errors: List[List[Any]] = []

    def add(self, table: Any, counts: Dict[str, int]) -> None:
        """A chunk's ``trials`` table (Arrow, as its worker built it) and its counts by status."""
        import numpy as np

        for status, k in counts.items():
            self.counts[str(status)] = self.counts.get(str(status), 0) + int(k)
        # as Python floats, not Arrow's to_numpy() nor pyarrow.compute: those import pandas
        # (~0.4 s) on the first chunk, in the middle of a run, and the driver needs it nowhere else
        durations = np.array(table.column("duration_s").to_pylist(), dtype=np.float64)  # null: nan
        durations = durations[np.isfinite(durations) & (durations >= 0)]
        if len(durations):
            # bucket i holds BUCKETS[i-1] < d <= BUCKETS[i], as the plugin's own _bucket
            for i, k in enumerate(np.bincount(np.searchsorted(BUCKETS, durations), minlength=len(self.buckets))):
                self.buckets[i] += int(k)
            self.n += len(durations)
            self.total_s += float(durations.sum())
            self.min_s, self.max_s = min(self.min_s, float(durations.min())), max(self.max_s, float(durations.max()))
        if counts.get("ok", 0) < table.num_rows and len(self.errors) < MAX_ERRORS:
            statuses = table.column("status").to_pylist()
            bad = [i for i, s in enumerate(statuses) if s != "ok"][: MAX_ERRORS - len(self.errors)]
            ids, errors = table.column("trial_id").to_pylist(), table.column("error").to_pylist()
            self.errors += [[ids[i], errors[i]] for i in bad]

    def maybe_send(self, send: Callable[[str, Dict[str, Any]], Any]) -> None:
        """Send what is pending if ``interval_s`` has passed since the last event."""
        if time.monotonic() - self._last >= self.interval_s:
            self.send(send)

    def send(self, send: Callable[[str, Dict[str, Any]], Any]) -> None:
        """Send what is pending now, as ``send(topic, message)`` (``Client.log_event``)."""
        self._last = time.monotonic()
        msg = self.message()
        if msg is not None:
            self._clear()
            send(TOPIC_TRIALS, msg)

    def message(self) -> Optional[Dict[str, Any]]:
        """The pending event, or None when no trial ended since the last."""
        if not self.counts:
            return None
        return {
            "experiment": self.experiment,
            "run_id": self.run_id,
            "time": time.time(),
            "counts": dict(self.counts),
            "buckets": list(self.buckets),
            "duration_n": self.n,
            "duration_sum": self.total_s,
            "duration_min": self.min_s if self.n else None,
            "duration_max": self.max_s if self.n else None,
            "errors": list(self.errors),
        }
