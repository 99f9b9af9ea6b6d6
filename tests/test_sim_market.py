"""The market experiment: clearing rule, strategies, determinism across shards, bad params."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daskbench import sim
from daskbench.experiments.market import Market, assign_strategies, clear

TIMING = ("wall_ms", "shard_ms", "messages_local", "messages_remote")


def run(ticks=24, shards=1, seed=7, report_every=0, **params):
    settings = sim.Settings(ticks=ticks, shards=shards, tick_seconds=3600, agent_report_every=report_every)
    return sim.run(Market(**params), settings, seed=seed)


def model_rows(outcome):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in outcome.steps]


def agent_rows(outcome):
    """{(tick, population): {column: values in id order}}, however the agents were sharded."""
    parts = {}
    for tick, name, ids, cols in outcome.agents:
        parts.setdefault((tick, name), []).append((ids, cols))
    out = {}
    for key, chunks in parts.items():
        ids = np.concatenate([i for i, _ in chunks])
        order = np.argsort(ids)
        out[key] = {c: np.concatenate([cols[c] for _, cols in chunks])[order] for c in chunks[0][1]}
        out[key]["id"] = ids[order]
    return out


def _equal(a, b):
    np.testing.assert_equal(a, b)
    return True


def test_clear_hand_made_example():
    prices, caps = [30.0, 10.0, 20.0], [100.0, 100.0, 100.0]
    price, dispatch, unserved = clear(prices, caps, 150.0, 3000.0)
    assert price == 20.0 and unserved == 0.0
    assert dispatch.tolist() == [0.0, 100.0, 50.0]
    price, dispatch, _ = clear(prices, caps, 200.0, 3000.0)  # exactly two units: the second sets the price
    assert price == 20.0 and dispatch.tolist() == [0.0, 100.0, 100.0]
    price, dispatch, unserved = clear(prices, caps, 350.0, 3000.0)  # scarcity
    assert price == 3000.0 and unserved == 50.0 and dispatch.tolist() == [100.0, 100.0, 100.0]
    price, dispatch, _ = clear([10.0, 10.0], [100.0, 100.0], 120.0, 3000.0)  # ties: lower id first
    assert price == 10.0 and dispatch.tolist() == [100.0, 20.0]
    price, _, _ = clear([5000.0], [100.0], 50.0, 3000.0)  # bids are capped
    assert price == 3000.0


def test_clearing_through_messages():
    """3 generators bidding cost, flat demand 150 MW: price 20, dispatch 100/50/0, profit a tick later."""
    out = run(
        ticks=4,
        report_every=1,
        n_generators=3,
        strategies="cost",
        costs=[10, 20, 30],
        capacities=[100, 100, 100],
        base_load=0.5,
        peak_load=0.5,
        noise=0.0,
    )
    s = out.steps
    assert s[0]["cleared"] == 0 and math.isnan(s[0]["price"])
    assert (s[1]["price"], s[1]["demand"], s[1]["dispatched"], s[1]["unserved"]) == (20.0, 150.0, 150.0, 0.0)
    assert s[1]["profit"] == 0.0 and s[2]["profit"] == 1000.0  # (20 - 10) * 100 MW * 1 h, settled next tick
    tick2 = [cols for tick, name, _, cols in out.agents if tick == 2 and name == "generator"][0]
    assert tick2["dispatch"].tolist() == [100.0, 50.0, 0.0]
    assert tick2["profit"].tolist() == [1000.0, 0.0, 0.0]


def test_scarcity_hits_price_cap_and_reports_unserved():
    out = run(
        ticks=3,
        n_generators=3,
        strategies="cost",
        costs=[10, 20, 30],
        capacities=[100, 100, 100],
        base_load=1.2,
        peak_load=1.2,
        noise=0.0,
        price_cap=500.0,
    )
    row = out.steps[1]
    assert (
        row["price"] == 500.0 and row["unserved"] == pytest.approx(60.0) and row["unserved_mwh"] == pytest.approx(60.0)
    )
    assert out.metrics["scarcity_periods"] == 2 and out.metrics["unserved_mwh"] == pytest.approx(120.0)


def test_half_hourly_periods_use_half_hours():
    settings = sim.Settings(ticks=3, tick_seconds=1800)
    out = sim.run(
        Market(
            n_generators=3,
            strategies="cost",
            costs=[10, 20, 30],
            capacities=[100, 100, 100],
            base_load=1.2,
            peak_load=1.2,
            noise=0.0,
        ),
        settings,
        seed=1,
    )
    assert out.steps[1]["unserved_mwh"] == pytest.approx(30.0)
    assert out.steps[2]["profit"] == pytest.approx((3000 - 10 + 3000 - 20 + 3000 - 30) * 100 * 0.5)


@pytest.mark.parametrize("strategies", ["learning", {"cost": 0.3, "markup": 0.3, "learning": 0.4}])
def test_identical_on_1_2_4_shards(strategies):
    outs = [
        run(ticks=48, shards=k, report_every=8, n_generators=25, strategies=strategies, peak_load=1.0)
        for k in (1, 2, 4)
    ]
    base = outs[0]
    for o in outs[1:]:
        np.testing.assert_equal(model_rows(o), model_rows(base))
        for key in ("mean_price", "price_std", "total_profit_learning", "unserved_mwh", "markup_learning_2nd_half"):
            np.testing.assert_equal(o.metrics[key], base.metrics[key])
        assert agent_rows(o) and _equal(agent_rows(o), agent_rows(base))


def test_seed_changes_results():
    a = run(ticks=12, seed=1, n_generators=10, strategies="learning")
    b = run(ticks=12, seed=2, n_generators=10, strategies="learning")
    assert a.metrics["mean_price"] != b.metrics["mean_price"]


def test_markup_bids_and_prices_at_least_cost():
    kw = dict(ticks=36, n_generators=20, peak_load=0.95, report_every=5)
    cost = run(strategies="cost", **kw)
    markup = run(strategies="markup", markup=0.3, **kw)
    learn = run(strategies="learning", **kw)
    pc = np.array([r["price"] for r in cost.steps[1:]])
    for other in (markup, learn):
        po = np.array([r["price"] for r in other.steps[1:]])
        assert (po >= pc - 1e-9).all()  # same fleet and demand, every bid scaled up: price never lower
    assert markup.metrics["mean_price"] > cost.metrics["mean_price"]
    for tick, name, ids, cols in markup.agents:
        np.testing.assert_allclose(cols["bid_price"], cols["cost"] * 1.3)
    for tick, name, ids, cols in learn.agents:
        assert (cols["bid_price"] >= cols["cost"]).all()
        assert set(np.round(cols["markup"], 6)) <= {0.0, 0.1, 0.25, 0.5, 1.0}


def test_strategy_mix_assignment():
    assert assign_strategies({"cost": 0.5, "markup": 0.25, "learning": 0.25}, 4) == [
        "cost",
        "cost",
        "markup",
        "learning",
    ]
    mix = assign_strategies({"cost": 1 / 3, "markup": 1 / 3, "learning": 1 / 3}, 10)
    assert len(mix) == 10 and sorted(mix.count(s) for s in ("cost", "markup", "learning")) == [3, 3, 4]
    assert assign_strategies(["cost", "learning"], 2) == ["cost", "learning"]


@pytest.mark.parametrize(
    "params, key",
    [
        (dict(n_generators=0), "n_generators"),
        (dict(strategies="greedy"), "strategies"),
        (dict(strategies={"cost": 0.5, "markup": 0.2}), "strategies"),
        (dict(n_generators=3, strategies=["cost", "markup"]), "strategies"),
        (dict(markup=-0.1), "markup"),
        (dict(epsilon=1.5), "epsilon"),
        (dict(base_load=0.9, peak_load=0.5), "peak_load"),
        (dict(cost_range=[100, 10]), "cost_range"),
        (dict(capacity_range="big"), "capacity_range"),
        (dict(n_generators=2, costs=[1, 2, 3]), "costs"),
        (dict(price_cap=0), "price_cap"),
        (dict(learning_markups=[]), "learning_markups"),
    ],
)
def test_bad_params_name_the_key(params, key):
    with pytest.raises(sim.SimulationError, match=rf"trial\.params\.{key}="):
        Market(**params)


def test_through_trial_function():
    res = sim.trial(
        model="daskbench.experiments.market.Market",
        params={"n_generators": 12, "strategies": "markup"},
        ticks=24,
        shards=2,
        local=True,
        clock={"tick_seconds": 3600},
        agent_report_every=12,
    )
    assert res["shards"] == 2 and res["n_markup"] == 12 and res["mean_price"] > 0
    assert res["steps"].num_rows == 24 and "price" in res["steps"].column_names
    # the 'agents' table replaces the metric 'agents' (the agent count) in the result
    assert set(res["agents"].column_names) >= {"agent_id", "profit", "markup", "strategy"}
    with pytest.raises(sim.SimulationError, match="trial.params.markup"):
        sim.trial(model="daskbench.experiments.market.Market", params={"markup": "lots"}, ticks=2, local=True)
