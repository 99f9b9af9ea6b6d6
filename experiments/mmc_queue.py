"""M/M/c queue: a seeded discrete-event simulation checked against Erlang C.

Customers arrive as a Poisson process of rate ``lambda = rho * servers * mu``
and are served first-come first-served by ``servers`` identical servers with
exponential service times of rate ``mu``. The simulation steps from event to
event (arrivals and departures) and reports the mean time spent waiting in the
queue beside the exact steady-state value from the Erlang C formula.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any, Dict

import numpy as np
import pandas as pd


def erlang_c(servers: int, rho: float) -> float:
    """Probability that an arriving customer has to wait (Erlang C)."""
    if not 0 < rho < 1:
        raise ValueError(f"rho must be in (0, 1) for a stable queue, got {rho}")
    a = rho * servers  # offered load in Erlangs
    # sum of a^k/k! computed iteratively to stay exact for large servers
    term, head = 1.0, 1.0
    for k in range(1, servers):
        term *= a / k
        head += term
    tail = term * a / servers / (1 - rho)
    return tail / (head + tail)


def exact_mean_wait(servers: int, rho: float, mu: float = 1.0) -> float:
    """Steady-state mean waiting time in queue, W_q = C(c, a) / (c mu - lambda)."""
    lam = rho * servers * mu
    return erlang_c(servers, rho) / (servers * mu - lam)


def simulate_waits(rho: float, servers: int, customers: int, mu: float, seed: int) -> np.ndarray:
    """Waiting time of each customer, by a discrete-event simulation."""
    lam = rho * servers * mu
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / lam, customers)).tolist()
    service = rng.exponential(1.0 / mu, customers).tolist()
    waits = [0.0] * customers
    departures: list = []  # event heap of departure times
    queue: deque = deque()
    busy = 0
    i = 0
    while i < customers or departures:
        if i < customers and (not departures or arrivals[i] <= departures[0]):
            t = arrivals[i]  # next event: an arrival
            if busy < servers:
                busy += 1
                heapq.heappush(departures, t + service[i])
            else:
                queue.append(i)
            i += 1
        else:
            t = heapq.heappop(departures)  # next event: a departure
            if queue:
                j = queue.popleft()
                waits[j] = t - arrivals[j]
                heapq.heappush(departures, t + service[j])
            else:
                busy -= 1
    return np.asarray(waits)


def trial(rho: float, servers: int, customers: int, mu: float = 1.0, warmup: float = 0.1,
          seed: int = 0, trace_points: int = 20) -> Dict[str, Any]:
    """One replicate: simulated vs exact mean wait, plus a running-mean trace."""
    waits = simulate_waits(float(rho), int(servers), int(customers), float(mu), int(seed))
    kept = waits[int(len(waits) * warmup):]
    exact = exact_mean_wait(int(servers), float(rho), float(mu))
    sim = float(kept.mean())
    running = np.cumsum(kept) / np.arange(1, len(kept) + 1)
    idx = np.unique(np.linspace(0, len(kept) - 1, trace_points).astype(int))
    steps = pd.DataFrame({"customer": idx + 1, "running_mean_wait": running[idx],
                          "exact_mean_wait": exact})
    return {
        "mean_wait": sim,
        "exact_mean_wait": exact,
        "rel_error": abs(sim - exact) / exact,
        "p_wait": float((kept > 0).mean()),
        "exact_p_wait": erlang_c(int(servers), float(rho)),
        "steps": steps,
    }



def staffing(servers: int, mu: float, arrival_rate: float = 8.0, customers: int = 20000,
             wait_target: float = 0.05, server_cost: float = 1.0, speed_cost: float = 0.5,
             penalty: float = 50.0, seed: int = 0) -> Dict[str, Any]:
    """Staffing an M/M/c queue: ``servers`` servers of service rate ``mu`` for a
    Poisson stream of ``arrival_rate`` customers per unit time.

    ``cost`` (to minimise) = servers x (server_cost + speed_cost x mu^2), a faster server
    costing more, plus ``penalty`` x the relative amount by which the simulated mean
    wait misses ``wait_target``. A queue that cannot keep up (utilisation >= 1) is
    not simulated: it misses the target by an infinite margin, which costs
    ``10 x penalty`` plus the staff.
    """
    servers, mu = int(servers), float(mu)
    staff = servers * (server_cost + speed_cost * mu**2)
    rho = arrival_rate / (servers * mu)
    if rho >= 1:
        return {"cost": staff + 10 * penalty, "mean_wait": float("nan"), "rho": rho, "staff_cost": staff}
    waits = simulate_waits(rho, servers, int(customers), mu, int(seed))
    wait = float(waits[len(waits) // 10:].mean())  # the first tenth is warm-up
    miss = max(0.0, wait - wait_target) / wait_target
    return {"cost": staff + penalty * miss, "mean_wait": wait, "rho": rho, "staff_cost": staff,
            "exact_mean_wait": exact_mean_wait(servers, rho, mu)}
