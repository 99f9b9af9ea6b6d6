"""SIR (optionally SEIR) epidemic on a clustered contact network, placed by community.

The network, built from the trial seed and the parameters alone:

- **households**: people live in households of 1-6 (ids are consecutive inside a
  household and households follow one another along a "home line"); everyone in
  a household is in contact with everyone else;
- **workplaces and schools**: a fraction ``work_fraction`` of people each belong
  to one workplace of ``work_min``..``work_max`` people, recruited near home (people
  sorted by home position plus a normal offset of ``commute`` people, then cut
  into consecutive blocks); inside a workplace each person has ``work_degree``
  contacts, the nearest colleagues on a ring (a clique when the workplace is small);
- **long-range contacts**: ``random_contacts`` per person on average, between
  people drawn uniformly at random.

Dynamics, one tick = one day: every infectious person sends an ``infect`` message
to each of their contacts, tagged with the setting of the contact (household,
work or random). A susceptible person who received ``k_h``, ``k_w``, ``k_r`` such
contacts is infected with probability ``1 - (1-p_household)^k_h (1-p_work)^k_w
(1-p_random)^k_r``, i.e. independent transmission per contact, drawn from its own
per-agent random stream. Infected people are exposed for ``latent_ticks`` ticks
(0: infectious at once), then infectious for ``recovery_ticks`` ticks, or, with
``gamma`` set, recover with probability ``gamma`` each tick; then removed.
The ``initial_infected`` index cases are drawn from the seed and are infectious
at tick 0. Every draw depends only on (seed, person, tick), so the result is the
same on any number of shards and under any allocation; only the share of
messages that cross shards changes. With no one exposed or infectious left the
populations report no next activity and the simulation stops early.

Steps table: ``S``, ``E``, ``I``, ``R`` and ``new_infections`` per tick (plus the
engine's ``messages_local``/``messages_remote``); trial summary: ``peak_infected``,
``peak_tick``, ``attack_rate`` (final R / people), ``ever_infected``,
``epidemic_over``, beside the engine's ``cross_shard_fraction`` and ``graph_cut_fraction``.

    python -m daskbench +experiment=epidemic
    python -m daskbench +experiment=epidemic trial.params.n_people=50000 trial.shards=4 \\
        trial.allocation=round_robin,community
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from daskbench import sim

S, E, I, R = 0, 1, 2, 3
HOUSEHOLD, WORK, RANDOM = 0, 1, 2
SETTINGS = ("household", "work", "random")
# share of households of 1, 2, ... 6 people (roughly a European census)
HOUSEHOLD_SIZES = np.array([0.28, 0.34, 0.16, 0.14, 0.05, 0.03])
_INFECT_STREAM = 1
_RECOVER_STREAM = 2


def _rng(seed: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, 0xE91D, purpose]))


class Network(NamedTuple):
    """The contact network as arrays: edges ``u < v`` (no pair twice: a pair in several settings
    keeps the first of household, work, random) with their ``setting``, and each person's
    ``household`` and ``workplace`` number (-1: none)."""

    u: np.ndarray
    v: np.ndarray
    setting: np.ndarray
    household: np.ndarray
    workplace: np.ndarray


def contact_edges(n: int, seed: int, work_fraction: float, work_min: int, work_max: int, work_degree: int,
                  commute: float, random_contacts: float) -> Network:
    """Build the :class:`Network` of ``n`` people from ``seed`` (see the module docstring)."""
    rng = _rng(seed, 1)
    # households: consecutive ids, sizes drawn until everyone has one
    sizes = rng.choice(np.arange(1, 7), size=n, p=HOUSEHOLD_SIZES)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n)) + 1]
    sizes[-1] -= int(sizes.sum()) - n
    household = np.repeat(np.arange(len(sizes)), sizes)
    pos = np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # place inside the household
    size_of = sizes[household]
    us, vs, kinds = [], [], []
    for d in range(1, int(sizes.max())):
        a = np.flatnonzero(pos + d < size_of)
        us.append(a), vs.append(a + d), kinds.append(np.full(len(a), HOUSEHOLD))
    # workplaces: workers sorted by home position + noise, cut into consecutive blocks
    workers = np.flatnonzero(rng.random(n) < work_fraction)
    order = workers[np.argsort(workers + rng.normal(0.0, commute, len(workers)), kind="stable")]
    blocks = rng.integers(work_min, work_max + 1, size=len(order) // work_min + 1)
    ends = np.cumsum(blocks)
    ends = ends[ends < len(order)]
    if len(order) and (len(ends) == 0 or len(order) - ends[-1] >= work_min):
        ends = np.append(ends, len(order))
    elif len(ends):
        ends[-1] = len(order)  # a short remainder joins the last workplace
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)[: len(ends)]
    wsize = np.repeat(ends - starts, ends - starts)
    wstart = np.repeat(starts, ends - starts)
    wpos = np.arange(len(order)) - wstart
    workplace = np.full(n, -1, dtype=np.int64)
    workplace[order] = np.repeat(np.arange(len(starts)), ends - starts)
    for d in range(1, work_degree // 2 + 1):  # ring lattice: each side's d-th neighbour
        a = wstart + wpos
        b = wstart + (wpos + d) % np.maximum(wsize, 1)
        keep = a != b
        us.append(order[a[keep]]), vs.append(order[b[keep]]), kinds.append(np.full(int(keep.sum()), WORK))
    # long-range contacts
    m = int(round(n * random_contacts / 2))
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    us.append(a), vs.append(b), kinds.append(np.full(m, RANDOM))
    u, v, kind = np.concatenate(us), np.concatenate(vs), np.concatenate(kinds)
    u, v = np.minimum(u, v), np.maximum(u, v)
    keep = u != v
    u, v, kind = u[keep], v[keep], kind[keep]
    _, first = np.unique(u * n + v, return_index=True)  # first occurrence: household before work before random
    return Network(u[first], v[first], kind[first].astype(np.int8), household, workplace)


class Person(sim.Population):
    """This shard's people: disease state, infection tick, and their contacts as CSR arrays."""

    def setup(self, rng: sim.AgentRandom) -> None:
        indptr, nbr, setting = self.model.csr()
        starts, ends = indptr[self.ids], indptr[self.ids + 1]
        self.deg = (ends - starts).astype(np.int64)
        self.indptr = np.concatenate([[0], np.cumsum(self.deg)])
        take = np.repeat(starts - self.indptr[:-1], self.deg) + np.arange(self.indptr[-1])
        self.nbr, self.setting = nbr[take], setting[take]  # this shard's rows of the global CSR
        self.state = np.full(self.n, S, dtype=np.int8)
        self.infected_at = np.full(self.n, -1, dtype=np.int64)
        self.infectious_at = np.full(self.n, -1, dtype=np.int64)
        index = np.isin(self.ids, self.model.index_cases())
        self.state[index], self.infected_at[index], self.infectious_at[index] = I, 0, 0

    def step(self, t: sim.Tick) -> None:
        m = self.model
        inf = self.state == I
        # 1. recoveries of those infectious before this tick
        if m.gamma is None:
            done = inf & (self.infectious_at + m.recovery_ticks <= t.tick)
        else:
            done = inf.copy()
            done[inf] = t.rng.bernoulli(m.gamma, stream=_RECOVER_STREAM, where=inf)
        self.state[done] = R
        # 2. the exposed whose latent period is over
        self.state[(self.state == E) & (self.infectious_at <= t.tick)] = I
        # 3. infections by the contacts of last tick
        box = t.inbox("infect")
        if len(box):
            counts = np.bincount(box.rows * 3 + box["setting"], minlength=3 * self.n).reshape(self.n, 3)
            hit = (self.state == S) & (counts.sum(axis=1) > 0)
            if hit.any():
                k = counts[hit]
                with np.errstate(invalid="ignore"):  # 0 contacts * log(0) for a setting with p = 1
                    log_esc = sum(np.where(k[:, s] > 0, k[:, s] * m.log_escape[s], 0.0) for s in range(3))
                p = -np.expm1(log_esc)  # 1 - prod over settings of (1 - p_setting)^contacts
                new = hit.copy()
                new[hit] = t.rng.random(_INFECT_STREAM, where=hit) < p
                self.infected_at[new] = t.tick
                self.infectious_at[new] = t.tick + m.latent_ticks
                self.state[new] = I if m.latent_ticks == 0 else E
        # 4. every infectious person contacts all of their contacts
        rows = np.flatnonzero(self.state == I)
        if len(rows):
            deg = self.deg[rows]
            first = np.repeat(self.indptr[rows] - np.concatenate([[0], np.cumsum(deg)[:-1]]), deg)
            edges = first + np.arange(int(deg.sum()))
            t.send(self.nbr[edges], src=np.repeat(self.ids[rows], deg), kind="infect", setting=self.setting[edges])

    def next_activity(self, tick: int) -> Optional[int]:
        if (self.state == I).any():
            return tick + 1
        exposed = self.state == E
        return max(int(self.infectious_at[exposed].min()), tick + 1) if exposed.any() else None

    def observe(self) -> Mapping[str, Any]:
        counts = np.bincount(self.state, minlength=4)
        infected = self.infected_at[self.infected_at >= 0]
        return {"S": int(counts[S]), "E": int(counts[E]), "I": int(counts[I]), "R": int(counts[R]),
                "new_by_tick": np.bincount(infected) if len(infected) else np.zeros(1, np.int64)}

    def agent_report(self) -> Mapping[str, Any]:
        return {"state": self.state.copy(), "infected_at": self.infected_at.copy(), "degree": self.deg.copy()}


def _param(name: str, value: Any, lo: float, hi: float = math.inf, integer: bool = False,
           allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not (lo <= value <= hi):
        what = "a whole number" if integer else "a number"
        bounds = f">= {lo}" if hi == math.inf else f"in [{lo}, {hi}]"
        raise sim.SimulationError(f"Epidemic: trial.params.{name}={value!r}: give {what} {bounds}"
                                  + (" (or null)" if allow_none else ""))
    return int(value) if integer else float(value)


class Epidemic(sim.Model):
    """SIR/SEIR on a household-workplace contact network; parameters as in the module docstring."""

    populations = {"person": Person}

    def __init__(self, n_people: int = 5000, initial_infected: int = 10, p_household: float = 0.10,
                 p_work: float = 0.03, p_random: float = 0.03, latent_ticks: int = 0,
                 recovery_ticks: Optional[int] = 5, gamma: Optional[float] = None, work_fraction: float = 0.8,
                 work_min: int = 5, work_max: int = 50, work_degree: int = 6, commute: float = 50.0,
                 random_contacts: float = 0.2):
        self.n_people = _param("n_people", n_people, 1, integer=True)
        self.initial_infected = _param("initial_infected", initial_infected, 0, integer=True)
        if self.initial_infected > self.n_people:
            raise sim.SimulationError(f"Epidemic: trial.params.initial_infected={initial_infected} is more than "
                                      f"trial.params.n_people={n_people}")
        self.p = np.array([_param(f"p_{s}", v, 0, 1) for s, v in zip(SETTINGS, (p_household, p_work, p_random))])
        with np.errstate(divide="ignore"):
            self.log_escape = np.log1p(-self.p)  # -inf for p = 1: certain transmission
        self.latent_ticks = _param("latent_ticks", latent_ticks, 0, integer=True)
        self.recovery_ticks = _param("recovery_ticks", recovery_ticks, 1, integer=True, allow_none=True)
        self.gamma = _param("gamma", gamma, 0, 1, allow_none=True)
        if (self.gamma is None) == (self.recovery_ticks is None):
            raise sim.SimulationError("Epidemic: give either trial.params.recovery_ticks (a fixed infectious period) "
                                      "or trial.params.gamma (recovery probability per tick), and set the other to null")
        if self.gamma == 0:
            raise sim.SimulationError("Epidemic: trial.params.gamma=0: nobody would ever recover; give a number in (0, 1]")
        self.work_fraction = _param("work_fraction", work_fraction, 0, 1)
        self.work_min = _param("work_min", work_min, 2, integer=True)
        self.work_max = _param("work_max", work_max, self.work_min, integer=True)
        self.work_degree = _param("work_degree", work_degree, 0, integer=True)
        if self.work_degree % 2:
            raise sim.SimulationError(f"Epidemic: trial.params.work_degree={work_degree}: give an even number "
                                      "(contacts on each side of a workplace ring)")
        self.commute = _param("commute", commute, 0)
        self.random_contacts = _param("random_contacts", random_contacts, 0)
        self._cache: Dict[str, Any] = {}

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}  # each shard rebuilds the network from the seed instead of receiving it
        return state

    def _cached(self, key: str, build):
        if self._cache.get("seed") != self.seed:
            self._cache = {"seed": self.seed}
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def sizes(self) -> Mapping[str, int]:
        return {"person": self.n_people}

    def network(self) -> Network:
        """The :class:`Network` of this model's seed and parameters (cached)."""
        return self._cached("network", lambda: contact_edges(
            self.n_people, self.seed, self.work_fraction, self.work_min, self.work_max, self.work_degree,
            self.commute, self.random_contacts))

    def csr(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The network as CSR over all people: ``(indptr, neighbour, setting)``, neighbours sorted."""
        def build():
            u, v, kind = self.network()[:3]
            src, dst = np.concatenate([u, v]), np.concatenate([v, u])
            order = np.lexsort((dst, src))
            indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=self.n_people))])
            return indptr, dst[order], np.concatenate([kind, kind])[order]
        return self._cached("csr", build)

    def graph(self) -> Any:
        """The contact network as a ``networkx.Graph`` over person ids, edges tagged with ``setting``."""
        def build():
            import networkx as nx

            u, v, kind = self.network()[:3]
            g = nx.Graph()
            g.add_nodes_from(range(self.n_people))
            for k, name in enumerate(SETTINGS):
                sel = kind == k
                g.add_edges_from(zip(u[sel].tolist(), v[sel].tolist()), setting=name)
            return g
        return self._cached("graph", build)

    def index_cases(self) -> np.ndarray:
        """Ids of the people infectious at tick 0, drawn from the seed."""
        return self._cached("index", lambda: np.sort(_rng(self.seed, 2).choice(
            self.n_people, self.initial_infected, replace=False)))

    def report(self, tick: int, totals: Mapping[str, Any]) -> Mapping[str, Any]:
        new = np.atleast_1d(totals["new_by_tick"])
        return {"S": totals["S"], "E": totals["E"], "I": totals["I"], "R": totals["R"],
                "new_infections": int(new[tick]) if tick < len(new) else 0}

    def summary(self, steps: List[Dict[str, Any]]) -> Mapping[str, Any]:
        if not steps:
            return {}
        peak = max(steps, key=lambda s: (s["I"], -s["tick"]))
        last = steps[-1]
        return {"peak_infected": peak["I"], "peak_tick": peak["tick"],
                "attack_rate": last["R"] / self.n_people,
                "ever_infected": (self.n_people - last["S"]) / self.n_people,
                "epidemic_over": last["E"] + last["I"] == 0}
