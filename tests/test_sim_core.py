"""The simulation core without Dask: random streams, messages, placement, clock,
shards and the coordinator's restarts (a host that loses a shard on purpose)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import networkx as nx
import numpy as np
import pytest
from scipy import stats

from daskbench import sim
from daskbench.experiments.boltzmann import Boltzmann, gini_from_histogram
from daskbench.sim import partition, rng
from daskbench.sim.clock import Clock
from daskbench.sim.coordinator import simulate
from daskbench.sim.host import LocalHost
from daskbench.sim.shard import Layout

# --------------------------------------------------------------------------- random streams


def test_agent_draws_depend_on_the_agent_not_on_the_array():
    ids = np.arange(1000)
    whole = rng.uniform(ids, seed=7, tick=3, stream=0)
    part = rng.uniform(ids[500:], seed=7, tick=3, stream=0)
    assert np.array_equal(whole[500:], part)
    assert not np.array_equal(whole, rng.uniform(ids, 7, 4, 0))  # next tick
    assert not np.array_equal(whole, rng.uniform(ids, 7, 3, 1))  # other stream
    assert not np.array_equal(whole, rng.uniform(ids, 8, 3, 0))  # other seed


def test_agent_draws_are_uniform_and_independent():
    ids = np.arange(200_000)
    u = rng.uniform(ids, 1, 0, 0)
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    v = rng.uniform(ids, 1, 1, 0)
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.01
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01  # neighbouring agents
    k = rng.integers(ids, 10, 1, 0, 0)
    assert k.min() == 0 and k.max() == 9
    assert stats.chisquare(np.bincount(k)).pvalue > 1e-4
    z = rng.normal(ids, 1, 0, 0)
    assert stats.kstest(z, "norm").pvalue > 1e-4


def test_object_agents_get_their_own_generator():
    a = rng.agent_generator(5, 3).random(4)
    assert np.array_equal(a, rng.agent_generator(5, 3).random(4))
    assert not np.array_equal(a, rng.agent_generator(5, 4).random(4))


# --------------------------------------------------------------------------- placement


def test_round_robin_and_bad_shard_counts():
    assert partition.round_robin(5, 2).tolist() == [0, 1, 0, 1, 0]
    with pytest.raises(sim.SimulationError, match="shards=8 is more than the model's 5 agents"):
        partition.allocate("round_robin", 5, 8, lambda: None, 0)
    with pytest.raises(sim.SimulationError, match="allocation='ring' is not known"):
        partition.allocate("ring", 5, 2, lambda: None, 0)
    with pytest.raises(sim.SimulationError, match="define graph"):
        partition.allocate("community", 5, 2, lambda: None, 0)


def test_community_placement_is_balanced_and_cuts_few_edges():
    g = nx.connected_caveman_graph(20, 10)  # 20 cliques of 10, joined in a ring
    n = g.number_of_nodes()
    for shards in (2, 3, 4):
        assign = partition.community(n, shards, g, seed=1)
        sizes = np.bincount(assign, minlength=shards)
        assert sizes.max() - sizes.min() <= 1
        rr = partition.cut_fraction(g, partition.round_robin(n, shards))
        assert partition.cut_fraction(g, assign) <= rr / 4


def test_community_rejects_nodes_that_are_not_agents():
    g = nx.Graph([(0, 1), (1, 99)])
    with pytest.raises(sim.SimulationError, match="node 99, which is not an agent id"):
        partition.community(10, 2, g, 0)


# --------------------------------------------------------------------------- clock


def test_clock_fast_forwards_over_idle_ticks():
    c = Clock(ticks=100)
    assert c.next(3, [10, None, 7], in_flight=False) == 7
    assert c.next(3, [10, 7], in_flight=True) == 4  # a message is due next tick
    assert c.next(3, [None, None], in_flight=False) is None
    assert c.next(98, [500], in_flight=False) is None
    assert Clock(ticks=100, fast_forward=False).next(3, [10], in_flight=False) == 4


def test_clock_paces_ticks_in_real_time():
    now = [100.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    c = Clock(ticks=10, realtime_factor=2.0, tick_seconds=1.0, now=lambda: now[0], sleep=sleep)
    c.pace(0)
    c.pace(1)
    assert slept == [pytest.approx(0.5)]
    now[0] += 3.0  # a slow tick: behind schedule, no sleep, lag recorded
    c.pace(2)
    assert len(slept) == 1 and c.max_lag_s == pytest.approx(2.5)  # due at 101, now 103.5
    with pytest.raises(sim.SimulationError, match="realtime_factor"):
        Clock(ticks=10, realtime_factor=0)


# --------------------------------------------------------------------------- models used below


class Chatter(sim.Population):
    """Each agent sends its id and a random float to two random agents; keeps what it reads, in order."""

    def setup(self, r):
        self.seen = np.zeros(self.n)
        self.order_hash = np.zeros(self.n, dtype=np.int64)

    def step(self, t):
        box = t.inbox()
        if len(box):
            # read in order: each agent's hash depends on the order its messages arrive in
            rows = box.rows
            pos = np.arange(len(rows)) - np.searchsorted(rows, rows)  # rank within the receiver
            np.add.at(self.order_hash, rows, (pos + 1) * (box.src.astype(np.int64) % 1000 + 1))
            self.seen += box.sum("x")  # floats: the same rounding on any sharding
        for stream in (0, 1):
            t.send(t.rng.integers(t.n_agents, stream=stream), src=self.ids, x=t.rng.random(stream + 2))

    def observe(self):
        return {"order": int(self.order_hash.sum())}  # integers: exact in any order of shards

    def agent_report(self):
        return {"seen": self.seen, "order": self.order_hash}


class Pinger(sim.Agent):
    """A plain-object agent: answers every message with one of its own, to the sender."""

    def setup(self):
        self.got = 0

    def step(self, t):
        for m in t.inbox:
            if m.kind != "ping":
                continue  # chatter also lands here
            self.got += m.hops
            if m.hops < 5:
                t.send(m.src, kind="ping", hops=m.hops + 1)
        if t.tick == 0:
            lo = t.n_agents - t.model.n[1]  # pingers' ids come after the chatter's
            t.send(lo + int(self.rng.integers(t.model.n[1])), kind="ping", hops=1)

    def next_activity(self, tick):
        return None  # only when a message arrives

    def report(self):
        return {"got": self.got}

    @classmethod
    def observe(cls, agents):
        return {"got": sum(a.got for a in agents)}


class Mixed(sim.Model):
    populations = {"chatter": Chatter, "pinger": Pinger}

    def __init__(self, n_chatter=300, n_pinger=40):
        self.n = (n_chatter, n_pinger)

    def sizes(self):
        return {"chatter": self.n[0], "pinger": self.n[1]}


class Courier(Chatter):
    """Chatter every third tick, its messages due the model's ``message_delay`` (3) ticks later;
    at tick ``model.soon`` (if set) one message due the next tick."""

    def step(self, t):
        super().step(t)
        if t.tick == t.model.soon and self.n:
            t.send(self.ids[:1], src=self.ids[:1], delay=1, x=0.0)

    def next_activity(self, tick):
        return tick + 3


class Delayed(sim.Model):
    """Couriers and pingers whose messages take 3 ticks: lookahead up to 3 applies."""

    populations = {"chatter": Courier, "pinger": Pinger}
    message_delay = 3

    def __init__(self, n_chatter=200, n_pinger=30, soon=None):
        self.n, self.soon = (n_chatter, n_pinger), soon

    def sizes(self):
        return {"chatter": self.n[0], "pinger": self.n[1]}


def _run(model, shards, seed=3, **kw):
    return sim.run(model, sim.Settings(shards=shards, **kw), seed=seed)


@pytest.mark.parametrize("model", [lambda: Boltzmann(n_agents=500), lambda: Mixed()], ids=["boltzmann", "mixed"])
def test_same_seed_same_result_on_1_2_4_shards(model):
    runs = [_run(model(), s, ticks=30, agent_report_every=10) for s in (1, 2, 4)]
    ref = runs[0]
    for out in runs[1:]:
        for a, b in zip(ref.steps, out.steps):
            assert {
                k: v for k, v in a.items() if k not in ("wall_ms", "shard_ms", "messages_local", "messages_remote")
            } == {k: v for k, v in b.items() if k not in ("wall_ms", "shard_ms", "messages_local", "messages_remote")}
        ta, tb = sim.tables(ref)["agents"].to_pandas(), sim.tables(out)["agents"].to_pandas()
        key = ["tick", "agent_id"]
        assert ta.sort_values(key).reset_index(drop=True).equals(tb.sort_values(key).reset_index(drop=True))
    assert runs[0].metrics["cross_shard_fraction"] == 0
    assert 0.4 < runs[1].metrics["cross_shard_fraction"] < 0.6
    assert _run(model(), 2, seed=4, ticks=30).steps[-1] != ref.steps[-1]


def test_messages_are_counted_local_and_remote_per_tick():
    out = _run(Boltzmann(n_agents=1000), 2, ticks=5)
    for row in out.steps:
        assert row["messages_local"] + row["messages_remote"] > 0
    assert out.metrics["messages_remote"] == sum(r["messages_remote"] for r in out.steps)


def test_boltzmann_conserves_wealth_and_its_gini_matches_mesas_formula():
    out = _run(Boltzmann(n_agents=2000), 2, ticks=200)
    assert all(r["wealth_total"] == 2000 for r in out.steps)
    assert out.steps[0]["gini"] == 0
    assert 0.5 < out.metrics["gini_mean_2nd_half"] < 0.65  # Boltzmann-Gibbs: about 0.58 at mean wealth 1
    x = np.array([0, 0, 1, 3, 5, 5])
    n = len(x)
    mesa = 1 + 1 / n - 2 * sum(xi * (n - i) for i, xi in enumerate(sorted(x))) / (n * x.sum())
    assert gini_from_histogram(np.bincount(x)) == pytest.approx(mesa)


def test_object_agents_and_fast_forward():
    out = _run(Mixed(n_chatter=0, n_pinger=30), 3, ticks=1000)
    # each pinger's first message bounces 5 hops; after that nothing is due: the run ends early
    assert out.metrics["ticks"] == 6 and out.metrics["final_tick"] == 5
    assert out.steps[-1]["got"] == 30 * (1 + 2 + 3 + 4 + 5)


# --------------------------------------------------------------------------- bad input


class Bad(sim.Model):
    def __init__(self, what="", n=10):
        self.what, self.n = what, n

    @property
    def populations(self):
        return {"a": Sender} if self.what != "type" else {"a": int}

    def sizes(self):
        return {"a": self.n, "ghost": 1} if self.what == "unknown" else {"a": self.n}

    def report(self, tick, totals):
        return {"v": np.ones(3)} if self.what == "report" else {}


class Sender(sim.Population):
    def step(self, t):
        if t.model.what == "dst":
            t.send(np.array([1, 12]), src=self.ids[:2])


@pytest.mark.parametrize(
    "what,match",
    [
        ("unknown", "names agent type 'ghost', which the model does not declare"),
        ("type", "populations\\['a'\\] is <class 'int'>"),
        ("dst", "to agent id 12, which does not exist: the model has 10 agents"),
        ("report", "model reporter 'v' returned ndarray of shape \\(3,\\)"),
    ],
)
def test_bad_models_get_errors_naming_the_culprit(what, match):
    with pytest.raises(sim.SimulationError, match=match):
        _run(Bad(what), 2, ticks=3)


def test_more_shards_than_agents():
    with pytest.raises(sim.SimulationError, match="shards=20 is more than the model's 10 agents"):
        _run(Bad(), 20, ticks=3)


def test_trial_target_names_bad_model_and_params():
    with pytest.raises(sim.SimulationError, match="trial.model='daskbench.experiments.nope.X' cannot be imported"):
        sim.trial("daskbench.experiments.nope.X")
    with pytest.raises(sim.SimulationError, match="unexpected keyword argument 'agents'.*check trial.params"):
        sim.trial("daskbench.experiments.boltzmann.Boltzmann", {"agents": 3})
    with pytest.raises(sim.SimulationError, match="trial.clock.speed is not a clock setting"):
        sim.trial("daskbench.experiments.boltzmann.Boltzmann", clock={"speed": 2})


# --------------------------------------------------------------------------- restarts


class Flaky(LocalHost):
    """A host whose shard is lost at given ticks (as a dead worker would be)."""

    def __init__(self, *a, lose_at=(), **kw):
        super().__init__(*a, **kw)
        self.lose_at = set(lose_at)
        self.starts = 0

    def start(self, snapshots=None):
        self.starts += 1
        super().start(snapshots)

    def run(self, start, until, clock, lookahead=1):
        lost = sorted(t for t in self.lose_at if start <= t < until)
        if lost:
            self.lose_at.discard(lost[0])
            raise sim.ShardLost(f"lost at tick {lost[0]}")
        return super().run(start, until, clock, lookahead)


@pytest.mark.parametrize("checkpoint_every", [0, 7])
def test_a_lost_shard_restarts_from_the_checkpoint_with_the_same_result(checkpoint_every):
    def go(lose_at):
        model = Mixed()
        model.seed = 3
        layout = Layout.of(model)
        host = Flaky(model, partition.round_robin(layout.n_agents, 2), layout, 3, lose_at=lose_at)
        settings = sim.Settings(ticks=40, checkpoint_every=checkpoint_every, agent_report_every=5)
        return simulate(model, host, settings, Clock(40)), host

    ref, _ = go(())
    out, host = go((17, 33))
    assert host.starts == 3 and out.metrics["restarts"] == 2
    assert [r["tick"] for r in out.steps] == list(range(40))

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in ("wall_ms", "shard_ms")} for r in rows]

    assert strip(out.steps) == strip(ref.steps)
    assert len(out.agents) == len(ref.agents)


def test_restarts_run_out_with_a_clear_error():
    model = Mixed()
    layout = Layout.of(model)
    host = Flaky(model, partition.round_robin(layout.n_agents, 2), layout, 0, lose_at=range(0, 40))
    with pytest.raises(sim.SimulationError, match="giving up after max_restarts=2"):
        simulate(model, host, sim.Settings(ticks=40, max_restarts=2), Clock(40))


# --------------------------------------------------------------------------- lookahead


def test_lookahead_gives_the_same_result_and_fast_forwards():
    ref = _run(Delayed(), 1, ticks=40, agent_report_every=7)
    ticks = [r["tick"] for r in ref.steps]
    assert ticks[:6] == [0, 3, 6, 9, 12, 15]  # couriers every 3 ticks, pingers' hops due 3 later
    assert ref.metrics["ticks"] < 40
    for shards, lookahead in ((2, 1), (2, 3), (4, 2)):
        out = _run(Delayed(), shards, ticks=40, agent_report_every=7, lookahead=lookahead)
        assert _same(out.steps) == _same(ref.steps), (shards, lookahead)
        assert _agents(out).equals(_agents(ref))


def _agents(outcome):
    return sim.tables(outcome)["agents"].to_pandas().sort_values(["tick", "agent_id"]).reset_index(drop=True)


def _same(rows):
    return [
        {k: v for k, v in r.items() if k not in ("wall_ms", "shard_ms", "messages_local", "messages_remote")}
        for r in rows
    ]


def test_lookahead_checks():
    with pytest.raises(sim.SimulationError, match=r"clock.lookahead=0: give a whole number"):
        sim.Settings(lookahead=0).check()
    with pytest.raises(sim.SimulationError, match=r"clock.lookahead=2.0: give a whole number"):
        sim.Settings(lookahead=2.0).check()
    with pytest.raises(sim.SimulationError, match="Mixed declares no message_delay"):
        _run(Mixed(), 2, ticks=5, lookahead=2)
    with pytest.raises(sim.SimulationError, match="more than Delayed.message_delay=3"):
        _run(Delayed(), 2, ticks=5, lookahead=4)
    # a message due sooner than the lookahead: the sender, the tick and L
    with pytest.raises(sim.SimulationError, match="sent by agent 0 at tick 6 is due 1 tick.*clock.lookahead=3"):
        _run(Delayed(soon=6), 2, ticks=20, lookahead=3)
    assert _run(Delayed(soon=6), 2, ticks=20).metrics["ticks"] > 0  # fine with lookahead 1


# --------------------------------------------------------------------------- allocator


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_temporaries_sets_glibcs_thresholds_without_starting_a_process():
    # ctypes.util.find_library("c") ran `ldconfig -p` in a child: a fork of the worker on
    # its first simulation trial. In a fresh interpreter that may start no process at all:
    code = textwrap.dedent(
        """
        import subprocess

        def no_process(*a, **k):
            raise RuntimeError("keep_temporaries started a process")

        subprocess.Popen = no_process
        from daskbench.sim.memory import keep_temporaries

        assert keep_temporaries() is True
        assert keep_temporaries() is True  # once: the second call only says it is done
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
