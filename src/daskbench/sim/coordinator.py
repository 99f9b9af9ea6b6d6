"""The coordinator: drives the clock over a host's shards and collects the results.

One simulation is one trial. The coordinator asks the host for a *window* of
ticks at a time (one call per shard; inside the window the shards keep in step
among themselves, see :mod:`daskbench.sim.window`), turns the shards' partial
reporters of every tick that ran into the model's reporters for the ``steps``
table, collects agent reporters every ``agent_report_every`` ticks for the
``agents`` table, and keeps a checkpoint of every shard every ``checkpoint_every``
ticks. A window ends before the next agent report or checkpoint is due, at the
end, or after ``span`` ticks: ``span`` starts at :data:`FIRST_WINDOW` and doubles
(up to :data:`MAX_WINDOW`) while a window takes less than :data:`WINDOW_S`, so
the coordinator hears from the shards a few times a second; with
``realtime_factor`` set a window is one tick (the coordinator paces every tick).
On a host that can take a window before the last one ended (``submit`` and
``collect``: the actors), the coordinator asks for the next window as soon as it
has asked for one, on the guess that it starts where that one stops (it does unless
the clock skips idle ticks past its end), so the shards go from one window to the
next without waiting for the coordinator (a round trip of 5-10 ms through the
workers' event loops); not before a checkpoint or an agent report, which the
coordinator takes between windows, nor in real time.
When a shard is lost it starts the shards again from the last checkpoint (or
from the start), drops what it had collected past that point and carries on,
so the result is the one an undisturbed run gives.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .barrier import TRANSPORTS
from .clock import Clock
from .errors import ShardLost, SimulationError
from .host import Host
from .model import Model
from .partition import ALLOCATIONS
from .shard import StepReport, add_partial
from .window import chain

logger = logging.getLogger("daskbench.sim")

FIRST_WINDOW, MAX_WINDOW, WINDOW_S = 8, 4096, 0.25


def _whole(v: Any, least: int) -> bool:
    return bool(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= least)


@dataclass
class Settings:
    """How to run a simulation (the ``trial.*`` keys of a simulation experiment)."""

    ticks: int = 100
    shards: Union[int, str, None] = "auto"  # auto: see daskbench.sim.parallelism; null: one per worker
    allocation: str = "round_robin"
    fast_forward: bool = True
    realtime_factor: Optional[float] = None
    tick_seconds: float = 1.0
    checkpoint_every: int = 0  # ticks; 0 = no checkpoints (restart from the start)
    agent_report_every: int = 0  # ticks; 0 = no agents table
    max_restarts: int = 3
    lookahead: int = 1  # clock.lookahead: ticks shards advance between exchanges (<= the model's message_delay)
    transport: str = "socket"  # clock.transport: how shards on different workers exchange (daskbench.sim.barrier)

    def check(self) -> None:
        """Raise a :class:`SimulationError` naming the first bad setting (no model needed)."""
        for name in ("checkpoint_every", "agent_report_every", "max_restarts"):
            v = getattr(self, name)
            if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0):
                raise SimulationError(f"{name}={v!r}: give a whole number >= 0 (0 = off)")
        shards = self.shards
        whole = isinstance(shards, (int, np.integer)) and not isinstance(shards, bool)
        if not (shards is None or shards == "auto" or (whole and int(shards) >= 1)):  # type: ignore[arg-type]
            raise SimulationError(
                f"shards={self.shards!r}: give a whole number >= 1, auto (the default: local for a small "
                "model, sharded for a large one), or null for one per worker"
            )
        if self.allocation not in ALLOCATIONS:
            raise SimulationError(f"allocation={self.allocation!r} is not known; use one of {', '.join(ALLOCATIONS)}")
        if not _whole(self.lookahead, 1):
            raise SimulationError(
                f"clock.lookahead={self.lookahead!r}: give a whole number of ticks >= 1 "
                "(1: shards exchange messages every tick)"
            )
        if self.transport not in TRANSPORTS:
            raise SimulationError(
                f"clock.transport={self.transport!r}: use socket (direct connections between shards, the "
                "default) or comm (Dask actor calls)"
            )
        # the clock checks its own settings (ticks, realtime_factor, tick_seconds)
        Clock(self.ticks, 0, self.fast_forward, self.realtime_factor, self.tick_seconds)

    def check_model(self, cls: type) -> None:
        """Raise a :class:`SimulationError` if ``clock.lookahead`` does not suit the model class."""
        name, delay = cls.__name__, getattr(cls, "message_delay", None)
        if delay is not None and not _whole(delay, 1):
            raise SimulationError(f"{name}.message_delay={delay!r}: declare a whole number of ticks >= 1, or None")
        if self.lookahead == 1:
            return
        if delay is None:
            raise SimulationError(
                f"clock.lookahead={self.lookahead}: {name} declares no message_delay, so its messages may be due "
                "the next tick; use clock.lookahead=1, or declare message_delay (the ticks from sending a message "
                "to its receiver seeing it) on the model"
            )
        if delay < self.lookahead:
            raise SimulationError(
                f"clock.lookahead={self.lookahead} is more than {name}.message_delay={delay}: its messages are due "
                f"{delay} tick(s) after they are sent; use clock.lookahead <= {delay}"
            )


@dataclass
class Outcome:
    """Everything a simulation produced."""

    steps: List[Dict[str, Any]]
    agents: List[Tuple[int, str, np.ndarray, Dict[str, np.ndarray]]]  # (tick, population, ids, columns)
    metrics: Dict[str, Any]


def _scalar(name: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        return value.item() if hasattr(value, "item") else value
    if isinstance(value, np.ndarray) and value.shape == ():
        return value.item()
    raise SimulationError(
        f"model reporter {name!r} returned {type(value).__name__}"
        f"{' of shape ' + str(value.shape) if isinstance(value, np.ndarray) else ''}; reporters must return "
        "scalars (reduce arrays in Model.report)"
    )


class Checkpoint:
    __slots__ = ("tick", "next_tick", "snapshots", "n_steps", "n_agents", "counters")

    def __init__(
        self,
        tick: Optional[int],
        next_tick: int,
        snapshots: Optional[List[bytes]],
        n_steps: int,
        n_agents: int,
        counters: Dict[str, int],
    ):
        self.tick, self.next_tick, self.snapshots = tick, next_tick, snapshots
        self.n_steps, self.n_agents, self.counters = n_steps, n_agents, counters


@dataclass
class _Progress:
    """What a simulation has produced so far; rolled back to ``ckpt`` when a shard is lost."""

    steps: List[Dict[str, Any]]
    agents: List[Tuple[int, str, np.ndarray, Dict[str, np.ndarray]]]
    counters: Dict[str, int]
    ckpt: Checkpoint
    last_tick: int
    restarts: int = 0
    span: int = FIRST_WINDOW  # ticks in the next window at most
    returned: float = 0.0  # when the last window's reports came back (perf_counter)


def simulate(model: Model, host: Host, settings: Settings, clock: Clock) -> Outcome:
    """Run the simulation to its end on ``host`` and return what it produced."""
    counters = {"local": 0, "remote": 0, "agent_steps": 0, "executed": 0}
    t_start = time.perf_counter()
    host.start(None)
    done = _Progress([], [], counters, Checkpoint(None, clock.start, None, 0, 0, dict(counters)), clock.start)
    tick: Optional[int] = clock.start
    ahead: Any = None  # the next window, asked for before the last one ended
    while tick is not None:
        try:
            tick, ahead = _window(model, host, settings, clock, done, tick, ahead)
        except ShardLost as exc:
            ahead = None
            tick = _restart(host, settings, clock, done, exc)
    if ahead is not None:  # asked for past the end: the shards skip it
        try:
            host.collect(ahead)  # type: ignore[attr-defined]
        except ShardLost:
            pass  # the simulation is complete; a shard lost now changes nothing
    metrics = _metrics(model, clock, done, time.perf_counter() - t_start)
    return Outcome(done.steps, done.agents, metrics)


def _until(settings: Settings, clock: Clock, tick: int, span: int) -> int:
    """Where the window starting at ``tick`` ends: before the next report or checkpoint is due."""
    if settings.realtime_factor is not None:
        span = 1
    until = min(clock.end, tick + span)
    A, C, since = settings.agent_report_every, settings.checkpoint_every, tick - clock.start
    if A:  # the window's last tick may be one the agents are reported at
        until = min(until, tick + 1 if since % A == 0 else tick + A - since % A + 1)
    if C:
        until = min(until, clock.start + (since // C + 1) * C)
    return until


def _follows(settings: Settings, clock: Clock, until: int) -> bool:
    """May the next window be asked for before the one ending at ``until`` has ended?
    Not if the coordinator takes a checkpoint or an agent report after it, nor in real time."""
    if settings.realtime_factor is not None or until >= clock.end:
        return False
    A, C, since = settings.agent_report_every, settings.checkpoint_every, until - clock.start
    return not (C and since % C == 0) and not (A and (since - 1) % A == 0)


def _window(
    model: Model, host: Host, settings: Settings, clock: Clock, done: _Progress, tick: int, ahead: Any = None
) -> Tuple[Optional[int], Any]:
    """Run the window starting at ``tick`` and record it; returns the next tick (None: the end)
    and the window after it if it was asked for already (see the module docstring)."""
    lookahead = settings.lookahead
    pipelined = hasattr(host, "submit")
    if ahead is not None and ahead.start != tick:  # the guess did not hold: the shards skip it
        host.collect(ahead)  # type: ignore[attr-defined]
        ahead = None
    if ahead is not None:
        window, until = ahead, ahead.until
    else:
        until = _until(settings, clock, tick, done.span)
        clock.pace(tick)
        window = host.submit(tick, until, clock, lookahead) if pipelined else None  # type: ignore[attr-defined]
    t0 = time.perf_counter() if window is None else max(window.issued, done.returned)
    after = None
    if pipelined and _follows(settings, clock, until):
        after = host.submit(until, _until(settings, clock, until, done.span), clock, lookahead, True)  # type: ignore[attr-defined]
    if window is None:
        reports = host.run(tick, until, clock, lookahead)
    else:
        got = host.collect(window)  # type: ignore[attr-defined]
        if got is None:
            raise SimulationError(f"the shards skipped the window from tick {tick}, which follows the last one")
        reports = got
    done.returned = time.perf_counter()
    wall = done.returned - t0  # asked for ahead: from the last window's end, as the shards ran it
    ran, nxt = chain(clock, tick, until, reports)
    counters = done.counters
    for t, rs in ran:
        row = _row(model, t, clock.time_of(t), rs, wall / len(ran))
        done.steps.append(row)
        counters["local"] += row["messages_local"]
        counters["remote"] += row["messages_remote"]
        counters["agent_steps"] += row["agent_steps"]
        counters["executed"] += 1
    last = done.last_tick = ran[-1][0]
    A = settings.agent_report_every
    if A and ((last - clock.start) % A == 0 or nxt is None):
        done.agents.extend((last, name, ids, cols) for name, ids, cols in host.agent_report())
    C = settings.checkpoint_every
    if C and nxt is not None and (until - clock.start) % C == 0:
        done.ckpt = Checkpoint(last, nxt, host.snapshot(), len(done.steps), len(done.agents), dict(counters))
    if wall < WINDOW_S:
        done.span = min(done.span * 2, MAX_WINDOW)
    elif wall > 2 * WINDOW_S:
        done.span = max(done.span // 2, 1)
    return nxt, after


def _restart(host: Host, settings: Settings, clock: Clock, done: _Progress, exc: ShardLost) -> int:
    """Start the shards again from the last checkpoint (or the start); returns the tick to run next."""
    done.restarts += 1
    if done.restarts > settings.max_restarts:
        raise SimulationError(
            f"a shard was lost {done.restarts} times ({exc}); giving up after max_restarts={settings.max_restarts}"
        ) from exc
    ckpt = done.ckpt
    where = f"the checkpoint of tick {ckpt.tick}" if ckpt.snapshots is not None else "the start"
    logger.warning("simulation: %s; restarting from %s (restart %d)", exc, where, done.restarts)
    host.close(lost=True)
    host.start(ckpt.snapshots)
    del done.steps[ckpt.n_steps :]
    del done.agents[ckpt.n_agents :]
    done.counters = dict(ckpt.counters)
    done.returned = 0.0
    clock.restart()
    return ckpt.next_tick


#: columns of a ``steps`` row that are not the model's reporters
_STEP_ONLY = ("tick", "time", "wall_ms", "shard_ms", "messages_local", "messages_remote", "agent_steps")


def _metrics(model: Model, clock: Clock, done: _Progress, wall_s: float) -> Dict[str, Any]:
    """The trial's metrics: the last step's reporters, the run's counts and speed, the model's summary."""
    steps, counters = done.steps, done.counters
    tick_s = sum(s["wall_ms"] for s in steps) / 1e3
    total = counters["local"] + counters["remote"]
    metrics: Dict[str, Any] = {}
    if steps:
        metrics.update({k: v for k, v in steps[-1].items() if k not in _STEP_ONLY})
    metrics.update(
        {
            "ticks": counters["executed"],
            "final_tick": done.last_tick,
            "messages_local": counters["local"],
            "messages_remote": counters["remote"],
            "cross_shard_fraction": counters["remote"] / total if total else 0.0,
            "agent_steps": counters["agent_steps"],
            "restarts": done.restarts,
            "sim_wall_s": wall_s,
            "tick_ms": float(np.mean([s["wall_ms"] for s in steps])) if steps else math.nan,
            "shard_ms": float(np.mean([s["shard_ms"] for s in steps])) if steps else math.nan,
            # per second of ticking: starting shards and checkpoints are in sim_wall_s only
            "agent_steps_per_s": sum(s["agent_steps"] for s in steps) / tick_s if tick_s > 0 else math.nan,
        }
    )
    if clock.realtime_factor is not None:
        metrics["realtime_max_lag_s"] = clock.max_lag_s
    for key, value in dict(model.summary(steps)).items():
        metrics[str(key)] = _scalar(str(key), value)
    return metrics


def _row(model: Model, tick: int, sim_time: float, reports: Sequence[StepReport], wall: float) -> Dict[str, Any]:
    totals: Dict[str, Any] = {}
    for r in reports:
        for key, value in r.partials.items():
            add_partial(totals, key, value, "a population")
    row: Dict[str, Any] = {"tick": tick, "time": sim_time}
    for key, value in dict(model.report(tick, totals)).items():
        row[str(key)] = _scalar(str(key), value)
    row["messages_local"] = sum(r.local for r in reports)
    row["messages_remote"] = sum(r.remote for r in reports)
    row["agent_steps"] = sum(r.agent_steps for r in reports)
    row["wall_ms"] = wall * 1e3
    row["shard_ms"] = max(r.seconds for r in reports) * 1e3  # the slowest shard's own stepping
    return row
