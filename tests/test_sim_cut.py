"""Messages that are only counted (anonymous, no fields) cut by destination shard as rotated
keys (``daskbench.sim.cut``): the same messages reach the same agents as through the
general cut, on 1, 2, 3 (no keys) and 4 shards, across populations and through restarts."""

from __future__ import annotations

import numpy as np
import pytest

from daskbench import sim
from daskbench.experiments.boltzmann import Boltzmann
from daskbench.sim import cut, partition
from daskbench.sim.clock import Clock
from daskbench.sim.coordinator import simulate
from daskbench.sim.messages import Outbox
from daskbench.sim.shard import Layout, Shard
from tests.test_sim_core import Flaky

VOLATILE = ("wall_ms", "shard_ms", "messages_local", "messages_remote")


@pytest.mark.parametrize("r", [1, 2, 3])
def test_keys_give_back_ids_and_rows_and_cut_into_one_run_per_shard(r):
    n_agents, shards = 100_003, 1 << r
    ids = np.random.default_rng(r).integers(0, n_agents, 50_000)
    ids[:2] = 0, n_agents - 1
    keys = cut.keys_of(ids, r)
    assert keys.dtype == np.uint32
    assert np.array_equal(cut.ids_of(keys, r), ids)
    rows = cut.rows_of_keys(r)
    assert np.array_equal(rows(keys), ids >> r)
    out = np.full(len(keys), -1, dtype=np.intp)
    assert rows(keys, out) is out and np.array_equal(out, ids >> r)
    ends = cut.cut(keys, r)
    assert ends[-1] == len(ids)
    for s, (a, b) in enumerate(zip([0, *ends], ends)):
        got = cut.ids_of(keys[a:b], r)
        assert np.array_equal(np.sort(got), np.sort(ids[ids % shards == s])), s


def test_a_cut_with_empty_shards_and_a_single_message():
    keys = cut.keys_of(np.array([6, 2, 10, 2], dtype=np.int32), 2)  # all on shard 2 of 4
    assert cut.cut(keys, 2) == [0, 0, 4, 4]
    assert sorted(cut.ids_of(keys, 2).tolist()) == [2, 2, 6, 10]
    one = cut.keys_of(np.array([5]), 1)
    assert cut.cut(one, 1) == [0, 1] and cut.ids_of(one, 1).tolist() == [5]
    assert cut.rotation(10, 1) == 0 and cut.rotation(10, 3) == 0  # one shard; not a power of two
    # four shards: rotated keys where the selection is vectorised (AVX-512), else the old cut
    assert cut.rotation(10, 4) == (2 if cut.selection_is_fast() else 0)


def _sends(box: Outbox, n_agents: int) -> None:
    g = np.random.default_rng(7)
    box.send(g.integers(0, n_agents, 900), None, "coin", {})  # int64, as the model draws them
    box.send(g.integers(0, n_agents, 400).astype(np.int32), None, "coin", {})  # a second part
    box.send(3, None, "coin", {}, delay=2)  # a scalar, due later
    box.send(g.integers(0, n_agents, 300), None, "gift", {"n": g.integers(1, 5, 300)})  # has a field
    box.send(g.integers(0, n_agents, 300), np.arange(300), "msg", {"x": g.random(300)})  # has senders


@pytest.mark.parametrize("r", [1, 2])
def test_outbox_cuts_counted_messages_into_the_same_parts_as_the_general_cut(r):
    n_agents, shards = 5_001, 1 << r
    owner = lambda dst: dst & (shards - 1)  # noqa: E731 - as the shard's round robin
    for me in range(shards):
        keyed, plain = Outbox(n_agents, rotate=r), Outbox(n_agents)
        _sends(keyed, n_agents)
        _sends(plain, n_agents)
        a, b = keyed.split(owner, shards, me), plain.split(owner, shards, me)
        assert (a.n_local, a.n_remote, a.local_due) == (b.n_local, b.n_remote, b.local_due)
        got, want = {**a.remote, me: a.local()}, {**b.remote, me: b.local()}
        assert got.keys() == want.keys()
        for s in want:
            assert got[s].keys() == want[s].keys()
            for due, kinds in want[s].items():
                assert got[s][due].keys() == kinds.keys()
                for kind, batch in kinds.items():
                    mine = got[s][due][kind]
                    if kind == "coin":  # only counted: the same ids, in no particular order
                        assert mine.rotated == r and np.array_equal(np.sort(mine.dst), np.sort(batch.dst))
                    else:  # everything else in the order it was sent
                        assert mine.rotated == 0 and np.array_equal(mine.dst, batch.dst)
                        assert all(np.array_equal(mine.fields[f], batch.fields[f]) for f in batch.fields)


def test_counted_and_other_messages_of_one_kind_are_still_the_one_clear_error():
    box = Outbox(100, rotate=1)
    box.send([1, 2], None, "coin", {})
    box.send([3], None, "coin", {"n": 2})
    with pytest.raises(sim.SimulationError, match="'coin' were sent with different fields"):
        box.split(lambda dst: dst & 1, 2, 0)


# --------------------------------------------------------------------------- a model


class Tipper(sim.Population):
    """Each agent with a coin gives one to a random agent of either population (anonymous, no
    fields: only counted), and a second coin, due a tick later, to the other population."""

    def setup(self, r):
        self.coins = np.full(self.n, 2, dtype=np.int64)
        self.got = np.zeros(self.n, dtype=np.int64)

    def step(self, t):
        box = t.inbox("tip")
        if len(box):
            counted = box.count()
            self.coins += counted
            self.got += counted
        for stream, (lo, hi, delay) in enumerate(self.targets(t)):
            rich = self.coins > 0
            self.coins -= rich
            t.send(lo + t.rng.subset(rich).integers(hi - lo, stream=stream), src=None, kind="tip", delay=delay)

    def targets(self, t):
        n_first, delay = t.model.n[0], t.model.message_delay or 1
        other = (n_first, t.n_agents) if self.name == "first" else (0, n_first)
        return [(0, t.n_agents, delay), (*other, delay + 1)]

    def observe(self):
        return {"coins": int(self.coins.sum()), "got": np.bincount(self.got)}

    def agent_report(self):
        return {"coins": self.coins, "got": self.got}


class Tipping(sim.Model):
    populations = {"first": Tipper, "second": Tipper}

    def __init__(self, n_first=301, n_second=150):
        self.n = (n_first, n_second)

    def sizes(self):
        return {"first": self.n[0], "second": self.n[1]}

    def report(self, tick, totals):
        hist = totals["got"]  # how many agents got each number of coins so far
        spread = int(hist @ np.arange(len(hist)) ** 2)
        return {"coins": totals["coins"], "got_most": len(hist) - 1, "got_spread": spread}


class SlowTipping(Tipping):
    """Coins take 3 and 4 ticks: lookahead up to 3 applies."""

    message_delay = 3


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


def test_counted_messages_across_populations_give_the_same_result_on_1_2_3_4_shards():
    runs = {s: sim.run(Tipping(), sim.Settings(shards=s, ticks=25, agent_report_every=6), seed=5) for s in (1, 2, 3, 4)}
    ref = runs[1]
    key = ["tick", "agent_id"]
    ta = sim.tables(ref)["agents"].to_pandas().sort_values(key).reset_index(drop=True)
    assert ta["got"].sum() > 0
    for s, out in runs.items():
        assert _strip(out.steps) == _strip(ref.steps), s
        tb = sim.tables(out)["agents"].to_pandas().sort_values(key).reset_index(drop=True)
        assert ta.equals(tb), s
    assert runs[2].metrics["messages_remote"] > 0


def test_counted_messages_give_the_same_result_for_every_lookahead():
    def go(shards, lookahead):
        return sim.run(SlowTipping(), sim.Settings(shards=shards, ticks=25, lookahead=lookahead), seed=6)

    ref = go(1, 1)
    for shards, lookahead in ((2, 1), (2, 3), (4, 2)):
        assert _strip(go(shards, lookahead).steps) == _strip(ref.steps), (shards, lookahead)


def test_counted_messages_in_flight_survive_a_restart_from_the_checkpoint():
    def go(lose_at):
        model = Tipping()
        model.seed = 5
        layout = Layout.of(model)
        host = Flaky(model, partition.round_robin(layout.n_agents, 4), layout, 5, lose_at=lose_at)
        settings = sim.Settings(ticks=30, checkpoint_every=7, agent_report_every=5)
        return simulate(model, host, settings, Clock(30)), host

    ref, _ = go(())
    out, host = go((10, 23))
    assert out.metrics["restarts"] == 2
    assert _strip(out.steps) == _strip(ref.steps)
    assert len(out.agents) == len(ref.agents)


def _boltzmann_by_hand(n_agents, shards, keyed, ticks=12, seed=8):
    """Wealth after ``ticks`` with the shards stepped here, ``keyed[i]``: shard i cuts as keys."""
    model = Boltzmann(n_agents)
    model.seed = seed
    layout = Layout.of(model)
    assign = partition.round_robin(n_agents, shards)
    group = [Shard(model, i, assign, layout, seed) for i in range(shards)]
    for shard, k in zip(group, keyed):
        shard.rotate = shard.rotate if k else 0
        shard.setup()
    for tick in range(ticks):
        for shard in group:
            remote, _ = shard.step(tick)
            for dest, parcels in remote.items():
                group[dest].deliver(shard.index, parcels)
    wealth = np.zeros(n_agents, dtype=np.int64)
    for shard in group:
        for _, ids, cols in shard.agent_report():
            wealth[ids] = cols["wealth"]
    return wealth


@pytest.mark.skipif(not cut.selection_is_fast(), reason="no vectorised selection here: nothing is cut as keys")
def test_shards_that_cut_as_keys_and_shards_that_do_not_read_each_other():
    ref = _boltzmann_by_hand(2_001, 1, [False])
    assert 0 < ref.sum() < 2_001 and ref.max() > 1  # the rest is in flight
    for keyed in ([True, True], [True, False], [False, True], [False, False]):
        assert np.array_equal(_boltzmann_by_hand(2_001, 2, keyed), ref), keyed
    assert np.array_equal(_boltzmann_by_hand(2_001, 4, [True, False, True, False]), ref)


def test_without_a_fast_selection_nothing_is_cut_as_keys(monkeypatch):
    monkeypatch.setattr(cut, "_fast", False)
    assert cut.rotation(1_000, 2) == 0
    ref = sim.run(Tipping(), sim.Settings(shards=1, ticks=15), seed=5)
    out = sim.run(Tipping(), sim.Settings(shards=2, ticks=15), seed=5)
    assert _strip(out.steps) == _strip(ref.steps)
