"""The pure part of adaptive search (daskbench.sweep.search): settings, the search
space from the axis grammar, and the ask/tell book. No cluster, no files."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from daskbench.errors import SweepError
from daskbench.sweep.axes import axis_from_param
from daskbench.sweep.search import Book, Tell, objective_values, settings, space, space_changes, space_json


def _space(**params):
    return space([axis_from_param(k.replace("__", "."), v) for k, v in params.items()])


def test_the_axis_grammar_maps_to_optuna_distributions_as_hydras_sweeper_reads_it():
    got = _space(
        trial__a="interval(0.5,2)",
        trial__b="int(interval(1,10))",
        trial__c="tag(log, interval(0.01,1))",
        trial__d="tag(log, int(interval(1,100)))",
        trial__e="range(2,11,2)",
        trial__f="choice(x,y)",
        trial__g="1,2.5,3",
        trial__h="range(0,1,0.5)",
    )
    assert got == {
        "trial.a": FloatDistribution(0.5, 2.0),
        "trial.b": IntDistribution(1, 10),  # both bounds included
        "trial.c": FloatDistribution(0.01, 1.0, log=True),
        "trial.d": IntDistribution(1, 100, log=True),
        "trial.e": IntDistribution(2, 10, step=2),  # range's stop is exclusive
        "trial.f": CategoricalDistribution(["x", "y"]),
        "trial.g": CategoricalDistribution([1, 2.5, 3]),
        "trial.h": CategoricalDistribution([0.0, 0.5]),  # a float range: its values, as a choice
    }


def test_a_list_valued_choice_is_refused_with_the_way_out():
    with pytest.raises(SweepError, match="not list"):
        space([axis_from_param("trial.v", [[1, 2], [3]])])


def test_settings_expand_one_direction_over_several_objectives():
    s = settings("optuna", "nsga2", 10, ["a", "b"], "maximize", "none", 3, "grid")
    assert s is not None and s.directions == ("maximize", "maximize") and s.multi and s.seed == 3
    assert settings("none", "nope", None, None, None, "nope", 0, "grid") is None  # off: nothing else is read


@pytest.mark.parametrize(
    "args, needle",
    [
        (("optuna", "tpe", True, "f", "minimize", "none"), "sweep.budget=True"),
        (("optuna", "tpe", 3, ["f", "f"], "minimize", "none"), "names a metric twice"),
        (("optuna", "tpe", 3, "", "minimize", "none"), "give a metric name"),
        (("optuna", "tpe", 3, ["f", "g"], ["minimize", "maximize", "minimize"], "none"), "3 entries for 2"),
    ],
)
def test_bad_settings_name_the_key(args, needle):
    with pytest.raises(SweepError, match=needle.replace("(", r"\(")):
        settings(*args, 0, "grid")


def test_space_changes_say_what_changed():
    old = space_json(_space(trial__x="interval(0,1)", trial__n="1,2"))
    new = space_json(_space(trial__x="interval(0,2)", trial__k="1,2"))
    changes = space_changes(old, new)
    assert "trial.k was added" in changes and "trial.n was removed" in changes
    assert any(c.startswith("trial.x was Float(") and "high=1.0" in c and "high=2.0" in c for c in changes)
    assert space_changes(old, old) == []


def test_book_tells_the_mean_of_the_replicates_once_all_are_in():
    book = Book()
    run, tell = book.asked(0, ["a", "b"])
    assert run == ["a", "b"] and tell is None and book.number_of == {"a": 0, "b": 0}
    assert book.ended("a", (1.0, 10.0)) == []
    assert book.ended("b", (3.0, 20.0)) == [Tell(0, "complete", (2.0, 15.0))]
    assert book.in_flight() == 0


def test_book_a_point_asked_twice_runs_once_and_both_asks_are_told():
    book = Book()
    assert book.asked(0, ["a"])[0] == ["a"]
    assert book.asked(1, ["a"]) == ([], None)  # still running: wait for it
    assert book.ended("a", (5.0,)) == [Tell(0, "complete", (5.0,)), Tell(1, "complete", (5.0,))]
    assert book.asked(2, ["a"]) == ([], Tell(2, "complete", (5.0,)))  # known now: told at once, not run


def test_book_replicates_known_on_disk_are_not_run_again():
    book = Book(known={"a": (1.0,)})
    assert book.asked(7, ["a", "b"]) == (["b"], None)
    assert book.ended("b", (3.0,)) == [Tell(7, "complete", (2.0,))]


def test_book_a_failed_replicate_fails_the_point_and_a_pruned_one_prunes_it():
    book = Book()
    book.asked(0, ["a", "b"])
    assert book.ended("a", None) == []
    assert book.ended("b", (1.0,)) == [Tell(0, "fail")]
    book.asked(1, ["c"])
    assert book.ended("c", None, pruned_step=4) == [Tell(1, "pruned", step=4)]
    assert book.ended("zzz", (1.0,)) == []  # not asked by this run: nothing to tell
    book.asked(2, ["d"])
    assert book.abandon() == [2] and book.in_flight() == 0


def test_objective_values_name_the_missing_or_bad_metric():
    assert objective_values({"f": 2, "g": 1.5}, ["g", "f"]) == (1.5, 2.0)
    with pytest.raises(SweepError, match=r"no metric 'loss' \(it returned: f\)"):
        objective_values({"f": 1.0}, ["loss"])
    with pytest.raises(SweepError, match="not a finite number"):
        objective_values({"f": float("nan")}, ["f"])


def test_gp_sampler_without_pytorch_says_how_to_get_it():
    import importlib.util

    from daskbench.sweep.search import from_config

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("PyTorch is installed here: sweep.sampler=gp works")

    from daskbench.config.schema import SweepConfig

    sweep = SweepConfig(search="optuna", sampler="gp", budget=3, objective="f")

    with pytest.raises(SweepError, match="needs PyTorch"):
        from_config(sweep, [axis_from_param("trial.x", "interval(0,1)")], 0)
