"""The epidemic experiment: its contact network, shard-independence, message locality, params."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from daskbench import sim
from daskbench.experiments.epidemic import HOUSEHOLD, RANDOM, WORK, Epidemic

CONF = Path(__file__).resolve().parents[1] / "conf" / "experiment" / "epidemic.yaml"
EPI = ("tick", "S", "E", "I", "R", "new_infections")


def network(seed=7, **params):
    m = Epidemic(**params)
    m.seed = seed
    return m, m.network()


def run(model, shards=1, allocation="round_robin", ticks=300, seed=11, report_every=0):
    return sim.run(
        model,
        sim.Settings(ticks=ticks, shards=shards, allocation=allocation, agent_report_every=report_every),
        seed=seed,
    )


def test_network_is_deterministic_for_a_seed():
    _, a = network(seed=7, n_people=3000)
    _, b = network(seed=7, n_people=3000)
    _, c = network(seed=8, n_people=3000)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert len(a.u) != len(c.u) or not np.array_equal(a.u, c.u)
    m, _ = network(seed=7, n_people=3000)
    g = m.graph()
    assert g is m.graph()  # cached
    assert sorted(g.nodes) == list(range(3000)) and g.number_of_edges() == len(a.u)
    m.seed = 8  # a new seed is a new network
    assert m.graph().number_of_edges() == len(c.u)


def test_network_has_households_workplaces_and_long_range_contacts():
    m, net = network(seed=3, n_people=4000, work_min=5, work_max=50, work_degree=6, work_fraction=0.8)
    n = 4000
    hh_sizes = np.bincount(net.household)
    assert hh_sizes.min() >= 1 and hh_sizes.max() <= 6 and 2 < hh_sizes.mean() < 3.2
    assert (np.diff(net.household) >= 0).all()  # a household's ids are consecutive
    # every household is a clique of household edges
    hh = net.setting == HOUSEHOLD
    assert (net.household[net.u[hh]] == net.household[net.v[hh]]).all()
    assert hh.sum() == int((hh_sizes * (hh_sizes - 1) // 2).sum())
    # workplaces: 5..50 people (a short last one may join the previous), ring contacts inside
    has_work = net.workplace >= 0
    assert 0.75 < has_work.mean() < 0.85
    w_sizes = np.bincount(net.workplace[has_work])
    assert w_sizes.min() >= 5 and (w_sizes[:-1] <= 50).all()
    wk = net.setting == WORK
    assert (net.workplace[net.u[wk]] == net.workplace[net.v[wk]]).all()
    assert np.bincount(np.concatenate([net.u[wk], net.v[wk]]), minlength=n).max() <= 6
    # workplaces recruit near home: colleagues live close on the home line
    assert np.median(np.abs(net.u[wk] - net.v[wk])) < 150
    rnd = net.setting == RANDOM
    assert 0.1 * n / 2 < rnd.sum() <= 0.2 * n / 2
    assert (net.u < net.v).all() and len(np.unique(net.u * n + net.v)) == len(net.u)
    g = m.graph()
    assert {d["setting"] for *_, d in g.edges(data=True)} == {"household", "work", "random"}


@pytest.mark.parametrize(
    "params",
    [
        {},  # SIR with a fixed infectious period
        {"latent_ticks": 2, "gamma": 0.25, "recovery_ticks": None, "p_household": 0.2},  # SEIR, geometric recovery
    ],
)
def test_same_epidemic_on_any_shards_and_allocation(params):
    outs = {}
    for shards, allocation in [
        (1, "round_robin"),
        (2, "round_robin"),
        (4, "round_robin"),
        (2, "community"),
        (4, "community"),
    ]:
        outs[shards, allocation] = run(Epidemic(n_people=2000, **params), shards, allocation, report_every=1000)
    base = outs[1, "round_robin"]
    assert base.metrics["attack_rate"] > 0.1  # an epidemic happened
    curve = [tuple(s[k] for k in EPI) for s in base.steps]
    final = {}
    for key, out in outs.items():
        assert [tuple(s[k] for k in EPI) for s in out.steps] == curve, key
        for k in ("peak_infected", "peak_tick", "attack_rate", "ever_infected", "final_tick"):
            assert out.metrics[k] == base.metrics[k], (key, k)
        assert (
            out.metrics["messages_local"] + out.metrics["messages_remote"]
            == base.metrics["messages_local"] + base.metrics["messages_remote"]
        )
        last = max(t for t, *_ in out.agents)
        parts = [(ids, cols) for t, _, ids, cols in out.agents if t == last]
        ids = np.concatenate([p[0] for p in parts])
        order = np.argsort(ids)
        final[key] = {c: np.concatenate([p[1][c] for p in parts])[order] for c in ("state", "infected_at")}
        np.testing.assert_array_equal(ids[order], np.arange(2000))
    for key, cols in final.items():
        for c in cols:
            np.testing.assert_array_equal(cols[c], final[1, "round_robin"][c], err_msg=str((key, c)))


def test_reporters_and_summary_add_up():
    out = run(Epidemic(n_people=2000, initial_infected=5), shards=2)
    steps, m = out.steps, out.metrics
    for s in steps:
        assert s["S"] + s["E"] + s["I"] + s["R"] == 2000
    assert steps[0]["new_infections"] == 5
    assert sum(s["new_infections"] for s in steps) == 2000 - steps[-1]["S"]
    assert m["peak_infected"] == max(s["I"] for s in steps)
    assert m["peak_tick"] == next(s["tick"] for s in steps if s["I"] == m["peak_infected"])
    assert m["attack_rate"] == steps[-1]["R"] / 2000 and m["epidemic_over"]
    # fast-forward: the run stops as soon as nobody is infectious, well before the tick budget
    assert m["final_tick"] < 299 and steps[-1]["I"] == 0
    assert run(Epidemic(n_people=500, initial_infected=0)).metrics["ticks"] == 1


def test_latent_period_is_fast_forwarded():
    # one index case with no contacts that transmit: ticks 0..4 infectious, then done
    out = run(Epidemic(n_people=300, initial_infected=1, p_household=0, p_work=0, p_random=0))
    assert [s["tick"] for s in out.steps] == list(range(6)) and out.metrics["attack_rate"] == 1 / 300
    # SEIR: the exposed wake their shard up when they turn infectious, with no tick in between
    out = run(
        Epidemic(
            n_people=300,
            initial_infected=3,
            latent_ticks=10,
            p_household=1.0,
            p_work=0,
            p_random=0,
            work_fraction=0,
            random_contacts=0,
        ),
        shards=2,
    )
    # index cases infectious at 0..4 infect their households at tick 1 (exposed until tick 11);
    # ticks 6..10 hold only exposed people and are skipped
    assert [s["tick"] for s in out.steps] == [0, 1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16]
    assert out.steps[5]["E"] > 0 and out.steps[6]["E"] == 0 and out.steps[6]["I"] == out.steps[5]["E"]


@pytest.mark.parametrize("shards", [2, 4])
def test_community_placement_keeps_contacts_on_the_shard(shards):
    frac = {}
    for allocation in ("round_robin", "community"):
        out = run(Epidemic(n_people=5000), shards, allocation, ticks=60)
        frac[allocation] = out.metrics["cross_shard_fraction"]
        assert out.metrics["messages_remote"] + out.metrics["messages_local"] > 10000
    assert frac["round_robin"] > 0.5 * (shards - 1) / shards
    assert frac["community"] <= 0.5 * frac["round_robin"], frac


@pytest.mark.parametrize(
    "params, key",
    [
        ({"p_household": -0.1}, "p_household"),
        ({"p_work": 1.5}, "p_work"),
        ({"p_random": "high"}, "p_random"),
        ({"n_people": 10, "initial_infected": 11}, "initial_infected"),
        ({"n_people": 0}, "n_people"),
        ({"recovery_ticks": 0}, "recovery_ticks"),
        ({"gamma": 0.2}, "gamma"),  # with recovery_ticks still set
        ({"recovery_ticks": None}, "recovery_ticks"),  # neither
        ({"work_min": 10, "work_max": 5}, "work_max"),
        ({"work_degree": 5}, "work_degree"),
        ({"latent_ticks": -1}, "latent_ticks"),
        ({"commute": -3}, "commute"),
    ],
)
def test_bad_params_name_the_key(params, key):
    with pytest.raises(sim.SimulationError, match=rf"trial\.params\.{key}"):
        Epidemic(**params)


def test_bad_param_through_the_trial_function():
    with pytest.raises(sim.SimulationError, match=r"trial\.params\.p_work=-1"):
        sim.trial("daskbench.experiments.epidemic.Epidemic", {"p_work": -1}, local=True)


def test_model_pickles_without_its_network():
    m = Epidemic(n_people=1000)
    m.seed = 4
    indptr, nbr, _ = m.csr()
    m.graph()
    blob = pickle.dumps(m)
    assert len(blob) < 2000
    m2 = pickle.loads(blob)
    np.testing.assert_array_equal(m2.csr()[1], nbr)


def test_config_runs_as_a_trial():
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(CONF))
    trial = cfg["trial"]
    assert trial.pop("_target_") == "daskbench.sim.trial" and trial["allocation"] == "community"
    assert cfg["sweep"]["params"]["trial.allocation"] == "round_robin,community"
    trial.update(shards=2, local=True)
    trial["params"]["n_people"] = 1500
    result = sim.trial(seed=1, **trial)
    assert result["epidemic_over"] and 0 < result["attack_rate"] <= 1
    assert result["graph_cut_fraction"] < 0.2 and result["steps"].num_rows == result["ticks"]
