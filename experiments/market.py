"""An electricity market in the manner of ASSUME: generators bid into a uniform-price auction.

``n_generators`` generators, each with a marginal cost (EUR/MWh) and a capacity
(MW) drawn from its own random stream, offer their whole capacity at one price
every market period. A market operator (a population of one agent) collects the
bids, sorts them into the merit order (cheapest first, ties by generator id),
accepts them until the period's demand is met and sets a uniform clearing price:
the price of the marginal accepted bid. When demand exceeds all the capacity
offered, everything offered runs, the price is ``price_cap`` (the value of lost
load) and the rest is reported as unserved. Each generator is paid the clearing
price for its dispatch; its profit is ``(price - cost) * dispatch * hours``.

Demand follows a daily sinusoid with its maximum at ``peak_hour`` plus
multiplicative Gaussian noise: ``nominal * (base + (peak - base) * s(h)) * (1 +
noise * z)``, with ``s(h) = (1 + cos(2 pi (h - peak_hour) / 24)) / 2`` and ``h``
the hour of day of the period's start, from the tick's simulated time; ``base``
and ``peak`` (``base_load``, ``peak_load``) are fractions of the fleet's nominal
capacity (the sum of ``capacities`` if given, else ``n_generators`` times the mean of
``capacity_range``), so ``peak_load > 1`` makes scarcity likely.

Timing: one tick is one market period of ``clock.tick_seconds`` (3600: hourly,
1800: half-hourly), and the two message legs are pipelined. At tick ``d - 1``
every generator sends its bid (kind ``bid``) for period ``d``; at tick ``d`` the
operator clears period ``d`` (demand from tick ``d``'s time) and sends each bidder
its dispatch and the price (kind ``cleared``); at tick ``d + 1`` the generators
book the profit of period ``d`` and bid for period ``d + 2``. So in the ``steps``
table, row ``d`` has the market of period ``d`` (``price``, ``demand``,
``dispatched``, ``unserved``) and the profit *settled* at tick ``d``, which is
that of period ``d - 1``. Tick 0 clears nothing (``price`` NaN).

Strategies (``strategies``: one name for all, a mapping name -> fraction, or one
name per generator): ``cost`` bids the marginal cost; ``markup`` bids
``cost * (1 + markup)``; ``learning`` picks a markup among ``learning_markups`` by
epsilon-greedy choice on its own ``self.rng``, and updates the value of the
markup it used, ``q += learning_rate * (profit per MWh of capacity - q)``, once
the profit is known. Model reporters summed over shards are exact (each
generator fills its own slot of a vector), so 1, 2 or 4 shards give identical
results for the same seed.

    python -m daskbench +experiment=market trial.params.n_generators=200 trial.ticks=720
"""

from __future__ import annotations

import math
from collections.abc import Mapping as MappingABC
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from daskbench import sim

STRATEGIES = ("cost", "markup", "learning")


def clear(prices: Sequence[float], quantities: Sequence[float], demand: float,
          price_cap: float) -> Tuple[float, np.ndarray, float]:
    """Uniform-price auction: (clearing price, dispatch per bid, unserved demand).

    Bids are capped at ``price_cap`` and accepted in merit order (price, then
    position) until ``demand`` is met; the price is that of the marginal accepted
    bid, ``price_cap`` if demand is not met, the cheapest bid if nothing is needed.
    """
    p = np.minimum(np.asarray(prices, dtype=np.float64), price_cap)
    q = np.asarray(quantities, dtype=np.float64)
    dispatch = np.zeros(len(q))
    remaining, tol, marginal = float(demand), 1e-9 * max(abs(demand), 1.0), None
    for i in np.argsort(p, kind="stable").tolist():
        if remaining <= tol:
            break
        take = min(q[i], remaining)
        if take > 0:
            dispatch[i], remaining, marginal = take, remaining - take, i
    if remaining > tol:
        return float(price_cap), dispatch, remaining
    if marginal is None:
        return (float(p.min()) if len(p) else float(price_cap)), dispatch, 0.0
    return float(p[marginal]), dispatch, 0.0


class Generator(sim.Agent):
    """A generator: marginal cost, capacity and a bidding strategy; bids every tick."""

    def setup(self) -> None:
        m: Market = self.model
        cost, capacity = self.rng.uniform(*m.cost_range), self.rng.uniform(*m.capacity_range)
        self.cost = float(m.costs[self.id] if m.costs is not None else cost)
        self.capacity = float(m.capacities[self.id] if m.capacities is not None else capacity)
        self.strategy = m.strategy_of[self.id]
        self.q = np.zeros(len(m.learning_markups))  # value of each markup (learning)
        self.pending: Dict[int, int] = {}  # bid tick -> markup index, until settled
        self.markup = m.markup if self.strategy == "markup" else 0.0
        self.bid_price = self.cost
        self.dispatch = self.profit = self.total_profit = 0.0

    def step(self, t: sim.AgentTick) -> None:
        m: Market = self.model
        self.dispatch = self.profit = 0.0
        for msg in t.inbox:  # kind "cleared": the period cleared at the previous tick
            self.dispatch = msg.quantity
            self.profit = (msg.price - self.cost) * msg.quantity * msg.hours
            self.total_profit += self.profit
            arm = self.pending.pop(msg.period - 1, None)
            if arm is not None:
                reward = self.profit / (self.capacity * msg.hours)
                self.q[arm] += m.learning_rate * (reward - self.q[arm])
        if self.strategy == "learning":
            explore = self.rng.random() < m.epsilon
            arm = int(self.rng.integers(len(self.q))) if explore else int(np.argmax(self.q))
            self.pending[t.tick] = arm
            self.markup = m.learning_markups[arm]
        self.bid_price = self.cost * (1.0 + self.markup)
        t.send(m.n_generators, "bid", price=self.bid_price, quantity=self.capacity)

    def report(self) -> Mapping[str, Any]:
        return {"strategy": self.strategy, "cost": self.cost, "capacity": self.capacity, "markup": self.markup,
                "bid_price": self.bid_price, "dispatch": self.dispatch, "profit": self.profit,
                "total_profit": self.total_profit}

    @classmethod
    def observe(cls, agents: List["Generator"]) -> Mapping[str, Any]:
        # one slot per generator: the sum over shards adds zeros only, so it is exact
        n = agents[0].model.n_generators
        profit, markup = np.zeros(n), np.zeros(n)
        for a in agents:
            profit[a.id], markup[a.id] = a.profit, a.markup
        return {"gen_profit": profit, "gen_markup": markup}


class Operator(sim.Agent):
    """The market operator: clears each period's bids and tells every bidder its dispatch."""

    def setup(self) -> None:
        self.last_time: Optional[float] = None
        self.state = dict(price=math.nan, demand=0.0, dispatched=0.0, unserved=0.0, offered=0.0,
                          unserved_mwh=0.0, cleared=0)

    def step(self, t: sim.AgentTick) -> None:
        m: Market = self.model
        hours = None if self.last_time is None else (t.time - self.last_time) / 3600.0
        self.last_time = t.time
        bids = [msg for msg in t.inbox if msg.kind == "bid"]  # sorted by sender id
        if not bids or hours is None:
            self.state.update(price=math.nan, demand=0.0, dispatched=0.0, unserved=0.0, offered=0.0,
                              unserved_mwh=0.0, cleared=0)
            return
        demand = m.demand_at(t.time, float(self.rng.standard_normal()))
        price, dispatch, unserved = clear([b.price for b in bids], [b.quantity for b in bids], demand, m.price_cap)
        for b, q in zip(bids, dispatch.tolist()):
            t.send(b.src, "cleared", price=price, quantity=q, hours=hours, period=t.tick)
        self.state.update(price=price, demand=demand, dispatched=float(dispatch.sum()), unserved=unserved,
                          offered=float(sum(b.quantity for b in bids)), unserved_mwh=unserved * hours, cleared=1)

    @classmethod
    def observe(cls, agents: List["Operator"]) -> Mapping[str, Any]:
        return dict(agents[0].state)


def _bad(key: str, value: Any, want: str) -> sim.SimulationError:
    return sim.SimulationError(f"market: trial.params.{key}={value!r}: {want}")


def _pair(key: str, value: Any, low: float) -> Tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise _bad(key, value, "give [low, high]") from None
    if not (low <= lo <= hi and math.isfinite(hi)):
        raise _bad(key, value, f"give [low, high] with {low} <= low <= high")
    return lo, hi


def _per_generator(key: str, value: Any, n: int, low: float) -> Optional[List[float]]:
    if value is None:
        return None
    try:
        vals = None if isinstance(value, str) else [float(v) for v in value]
    except (TypeError, ValueError):
        vals = None
    if vals is None or len(vals) != n or not all(math.isfinite(v) and v >= low for v in vals):
        raise _bad(key, value, f"give null or one number >= {low} per generator ({n})")
    return vals


def assign_strategies(strategies: Any, n: int) -> List[str]:
    """One strategy per generator from a name, a mapping name -> fraction, or a list of names.

    Fractions become counts by largest remainder; generators get them in id blocks.
    """
    if isinstance(strategies, str):
        out = [strategies] * n
    elif isinstance(strategies, MappingABC):
        fr = {str(k): float(v) for k, v in strategies.items()}
        if any(v < 0 for v in fr.values()) or abs(sum(fr.values()) - 1) > 1e-6:
            raise _bad("strategies", dict(strategies), "fractions must be >= 0 and sum to 1")
        raw = {k: v * n for k, v in fr.items()}
        counts = {k: int(math.floor(v)) for k, v in raw.items()}
        for k in sorted(raw, key=lambda k: -(raw[k] - counts[k]))[: n - sum(counts.values())]:
            counts[k] += 1
        out = [k for k in fr for _ in range(counts[k])]
    elif isinstance(strategies, Sequence) and len(strategies) == n:
        out = [str(s) for s in strategies]
    else:
        raise _bad("strategies", strategies, f"give a name, {{name: fraction}} or one name per generator ({n})")
    unknown = sorted(set(out) - set(STRATEGIES))
    if unknown:
        raise _bad("strategies", strategies, f"unknown strategy {unknown[0]!r}; use {', '.join(STRATEGIES)}")
    return out


class Market(sim.Model):
    """Generators (ids ``0 .. n_generators - 1``) bidding to one operator (id ``n_generators``)."""

    populations = {"generator": Generator, "operator": Operator}

    def __init__(self, n_generators: int = 50, strategies: Any = "cost", markup: float = 0.2,
                 learning_markups: Sequence[float] = (0.0, 0.1, 0.25, 0.5, 1.0), epsilon: float = 0.1,
                 learning_rate: float = 0.2, cost_range: Sequence[float] = (10.0, 120.0),
                 capacity_range: Sequence[float] = (50.0, 250.0), costs: Optional[Sequence[float]] = None,
                 capacities: Optional[Sequence[float]] = None, base_load: float = 0.45, peak_load: float = 0.85,
                 peak_hour: float = 18.0, noise: float = 0.03, price_cap: float = 3000.0):
        if not (isinstance(n_generators, (int, np.integer)) and not isinstance(n_generators, bool) and n_generators >= 1):
            raise _bad("n_generators", n_generators, "give a whole number >= 1")
        self.n_generators = n = int(n_generators)
        self.strategy_of = assign_strategies(strategies, n)
        checks = {"markup": (markup, lambda v: v >= 0, "give a number >= 0"),
                  "epsilon": (epsilon, lambda v: 0 <= v <= 1, "give a probability in [0, 1]"),
                  "learning_rate": (learning_rate, lambda v: 0 < v <= 1, "give a number in (0, 1]"),
                  "base_load": (base_load, lambda v: v >= 0, "give a fraction of capacity >= 0"),
                  "peak_load": (peak_load, lambda v: v >= float(base_load), "give a fraction >= base_load"),
                  "peak_hour": (peak_hour, lambda v: 0 <= v < 24, "give an hour in [0, 24)"),
                  "noise": (noise, lambda v: v >= 0, "give a relative standard deviation >= 0"),
                  "price_cap": (price_cap, lambda v: v > 0, "give a price > 0 (the value of lost load)")}
        for key, (value, ok, want) in checks.items():
            try:
                good = math.isfinite(float(value)) and ok(float(value))
            except (TypeError, ValueError):
                good = False
            if not good:
                raise _bad(key, value, want)
            setattr(self, key, float(value))
        try:
            self.learning_markups = [float(v) for v in learning_markups]
        except (TypeError, ValueError):
            self.learning_markups = []
        if not self.learning_markups or min(self.learning_markups) < 0:
            raise _bad("learning_markups", learning_markups, "give a non-empty list of markups >= 0")
        self.cost_range = _pair("cost_range", cost_range, 0.0)
        self.capacity_range = _pair("capacity_range", capacity_range, 0.0)
        self.costs = _per_generator("costs", costs, n, 0.0)
        self.capacities = _per_generator("capacities", capacities, n, 0.0)
        self.nominal = sum(self.capacities) if self.capacities else n * sum(self.capacity_range) / 2
        self.strategy_mask = {s: np.array([x == s for x in self.strategy_of]) for s in STRATEGIES}

    def sizes(self) -> Mapping[str, int]:
        return {"generator": self.n_generators, "operator": 1}

    def demand_at(self, time_s: float, z: float) -> float:
        """Demand (MW) of the period starting at ``time_s`` simulated seconds, for noise draw ``z``."""
        shape = 0.5 * (1.0 + math.cos(2 * math.pi * ((time_s / 3600.0) % 24 - self.peak_hour) / 24))
        level = self.base_load + (self.peak_load - self.base_load) * shape
        return max(0.0, self.nominal * level * (1.0 + self.noise * z))

    def report(self, tick: int, totals: Mapping[str, Any]) -> Mapping[str, Any]:
        profit, markup = totals["gen_profit"], totals["gen_markup"]
        row = {k: totals[k] for k in ("price", "demand", "dispatched", "unserved", "offered", "unserved_mwh", "cleared")}
        row["profit"] = float(profit.sum())
        row["mean_markup"] = float(markup.mean())
        for s, mask in self.strategy_mask.items():
            row[f"profit_{s}"] = float(profit[mask].sum())
            row[f"markup_{s}"] = float(markup[mask].mean()) if mask.any() else math.nan
        return row

    def summary(self, steps: List[Dict[str, Any]]) -> Mapping[str, Any]:
        prices = np.array([s["price"] for s in steps if s["cleared"]])
        out: Dict[str, Any] = {
            "mean_price": float(prices.mean()) if len(prices) else math.nan,
            "price_std": float(prices.std()) if len(prices) else math.nan,
            "price_abs_change": float(np.abs(np.diff(prices)).mean()) if len(prices) > 1 else math.nan,
            "scarcity_periods": int((prices >= self.price_cap).sum()),
            "unserved_mwh": float(sum(s["unserved_mwh"] for s in steps)),
            "total_profit": float(sum(s["profit"] for s in steps)),
        }
        tail = steps[len(steps) // 2:]
        for s in STRATEGIES:
            out[f"total_profit_{s}"] = float(sum(r[f"profit_{s}"] for r in steps))
            out[f"n_{s}"] = int(self.strategy_mask[s].sum())
            out[f"markup_{s}_2nd_half"] = float(np.mean([r[f"markup_{s}"] for r in tail])) if tail else math.nan
        return out
