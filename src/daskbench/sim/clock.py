"""The distributed clock: which tick runs next, and when.

Lockstep: every shard runs tick ``t`` before any runs ``t + 1`` (the host's
barrier). Fast-forward: when no shard has anything due at ``t + 1`` and no
message is in flight, the clock jumps to the earliest tick any shard reports
(discrete-event simulation) instead of stepping through empty ticks.
Real time: with ``realtime_factor`` set, tick ``t`` starts no earlier than
``(t - start) * tick_seconds / realtime_factor`` wall seconds after the run
began (``realtime_factor=1``: one simulated second per second).
"""

from __future__ import annotations

import math
import numbers
import time
from typing import Callable, Iterable, Optional

from .errors import SimulationError


def _positive(x: object) -> bool:
    """A finite real number > 0 (not a bool, not a string a config left unparsed)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x) and float(x) > 0


class Clock:
    """Decides the next tick and paces ticks against the wall clock. Pure apart
    from ``now``/``sleep``, which tests replace with a fake clock."""

    def __init__(
        self,
        ticks: int,
        start: int = 0,
        fast_forward: bool = True,
        realtime_factor: Optional[float] = None,
        tick_seconds: float = 1.0,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not (isinstance(ticks, int) and ticks >= 1):
            raise SimulationError(f"ticks={ticks!r}: give a whole number of ticks >= 1")
        if realtime_factor is not None and not _positive(realtime_factor):
            raise SimulationError(
                f"clock.realtime_factor={realtime_factor!r}: give a positive number, or null for as fast as possible"
            )
        if not _positive(tick_seconds):
            raise SimulationError(
                f"clock.tick_seconds={tick_seconds!r}: give a positive number of simulated seconds per tick"
            )
        self.start, self.end = int(start), int(start) + int(ticks)
        self.fast_forward = bool(fast_forward)
        self.realtime_factor = realtime_factor
        self.tick_seconds = float(tick_seconds)
        self._now, self._sleep = now, sleep
        self._t0: Optional[float] = None
        self.max_lag_s = 0.0

    def time_of(self, tick: int) -> float:
        """Simulated seconds at the start of ``tick``."""
        return (tick - self.start) * self.tick_seconds

    def next(self, tick: int, due: Iterable[Optional[int]], in_flight: bool) -> Optional[int]:
        """The tick after ``tick``; ``None`` when the simulation is over."""
        nxt = tick + 1
        if self.fast_forward and not in_flight:
            known = [d for d in due if d is not None]
            if not known:
                return None  # nothing will ever happen again
            nxt = max(nxt, min(known))
        return nxt if nxt < self.end else None

    def restart(self) -> None:
        """Re-anchor the pacing after a restart from a checkpoint."""
        self._t0 = None

    def pace(self, tick: int) -> None:
        """Wait until ``tick`` is due in real time (no-op without ``realtime_factor``)."""
        if self.realtime_factor is None:
            return
        now = self._now()
        if self._t0 is None:
            self._t0 = now - self.time_of(tick) / self.realtime_factor
            return
        target = self._t0 + self.time_of(tick) / self.realtime_factor
        if target > now:
            self._sleep(target - now)
        else:
            self.max_lag_s = max(self.max_lag_s, now - target)
