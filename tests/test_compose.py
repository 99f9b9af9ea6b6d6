"""Composition and validation of experiment configs (Hydra, no cluster)."""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
import subprocess
import sys

import pytest

import daskbench
from daskbench.config import schema
from daskbench.errors import ConfigError, ExperimentNotFound, SweepError, TrialImportError
from tests.conftest import write_experiment


def test_shipped_sweep_experiment_plan(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    rp = daskbench.plan("sweep")
    assert rp.name == "sweep"
    assert [a.key for a in rp.plan.axes] == ["trial.rho", "trial.servers", "trial.customers"]
    assert len(rp.plan) == 3 * 3 * 4 * 4
    assert str(rp.results_dir) == "results/sweep"


def test_command_line_axis_wins_over_config(user_dir):
    write_experiment(
        user_dir / "conf",
        "q",
        """
        name: q
        trial: {_target_: usertrials.quad, x: 0.0, y: 0.0}
        sweep: {params: {trial.x: '1,2,3', trial.y: '0,1'}}
    """,
    )
    rp = daskbench.plan("q", ["trial.x=5,6"], config_dir="conf")
    xs = sorted({t.params["trial.x"] for t in rp.plan})
    assert xs == [5, 6] and len(rp.plan) == 4
    rp = daskbench.plan("q", ["trial.x=7"], config_dir="conf")  # a plain value removes the axis
    assert [a.key for a in rp.plan.axes] == ["trial.y"]


def test_group_sweep(user_dir):
    conf = user_dir / "conf"
    (conf / "model").mkdir()
    (conf / "model" / "small.yaml").write_text("size: 1\n")
    (conf / "model" / "large.yaml").write_text("size: 100\n")
    write_experiment(
        conf,
        "g",
        """
        defaults:
          - /model: small
        name: g
        trial: {_target_: usertrials.quad, x: '${model.size}'}
        sweep: {params: {trial.y: '0,1'}}
    """,
    )
    with pytest.raises(ConfigError, match=re.escape("cannot sweep the config group 'model' over interval(0.0,1.0)")):
        daskbench.plan("g", ["model=interval(0,1)"], config_dir="conf")
    rp = daskbench.plan("g", ["model=small,large"], config_dir="conf")
    trials = list(rp.plan)
    assert len(trials) == 4
    assert {dict(t.groups)["model"] for t in trials} == {"small", "large"}
    assert {g: b["model"]["size"] for g, b in rp.trial_bases.items()} == {
        (("model", "large"),): 100,
        (("model", "small"),): 1,
    }


def test_unknown_experiment_lists_available(user_dir):
    write_experiment(user_dir / "conf", "mine", "name: mine\ntrial: {_target_: usertrials.quad}\n")
    with pytest.raises(ExperimentNotFound) as e:
        daskbench.plan("swep", config_dir="conf")
    msg = str(e.value)
    assert "unknown experiment 'swep'" in msg and "did you mean 'sweep'" in msg
    assert "mine" in msg and "sweep" in msg


def test_misspelled_keys(user_dir):
    write_experiment(
        user_dir / "conf",
        "m",
        """
        name: m
        trial: {_target_: usertrials.quad}
        sweep: {parms: {trial.x: '1,2'}}
    """,
    )
    with pytest.raises(ConfigError, match="unknown key sweep.parms.*did you mean 'params'"):
        daskbench.plan("m", config_dir="conf")
    write_experiment(user_dir / "conf", "m2", "name: m2\nretires: 2\ntrial: {_target_: usertrials.quad}\n")
    with pytest.raises(ConfigError, match="unknown top-level key 'retires'.*did you mean 'retries'"):
        daskbench.plan("m2", config_dir="conf")
    write_experiment(user_dir / "conf", "m3", "name: m3\ntrial: {_target_: usertrials.quad, xx: 1}\n")
    with pytest.raises(ConfigError, match="trial.xx: usertrials.quad has no argument 'xx'.*arguments: x, y, seed"):
        daskbench.plan("m3", config_dir="conf")
    with pytest.raises(ConfigError, match="swept key 'trial.z'"):
        daskbench.plan("m3", ["trial.xx=1", "trial.z=1,2"], config_dir="conf")


def test_bad_values(user_dir):
    write_experiment(user_dir / "conf", "b", "name: b\ntrial: {_target_: usertrials.quad}\n")
    with pytest.raises(ConfigError, match="runner"):
        daskbench.plan("b", ["runner.max_chunk_size=lots"], config_dir="conf")
    with pytest.raises(SweepError, match="cannot parse"):
        daskbench.plan("b", ["trial.x=range(1,"], config_dir="conf")
    with pytest.raises(SweepError, match="'trial.x' is an interval"):
        daskbench.plan("b", ["trial.x=interval(0,1)"], config_dir="conf")
    with pytest.raises(ConfigError, match="cluster=address needs the scheduler's address"):
        daskbench.plan("b", ["cluster=address"], config_dir="conf")


def test_target_that_cannot_be_imported(user_dir):
    write_experiment(user_dir / "conf", "i", "name: i\ntrial: {_target_: nosuchmod.run}\n")
    with pytest.raises(TrialImportError, match="cannot import module 'nosuchmod'.*working directory"):
        daskbench.plan("i", config_dir="conf")
    write_experiment(user_dir / "conf", "i2", "name: i2\ntrial: {_target_: usertrials.quadd}\n")
    with pytest.raises(TrialImportError, match="has no 'quadd'.*did you mean 'quad'"):
        daskbench.plan("i2", config_dir="conf")
    write_experiment(user_dir / "conf", "i3", "name: i3\ntrial: {x: 1}\n")
    with pytest.raises(ConfigError, match="no trial._target_"):
        daskbench.plan("i3", config_dir="conf")


def test_replicates_need_a_seed_argument(user_dir):
    write_experiment(
        user_dir / "conf",
        "r",
        """
        name: r
        trial: {_target_: usertrials.no_seed}
        sweep: {params: {trial.x: '1,2'}, replicates: 3}
    """,
    )
    with pytest.raises(ConfigError, match="needs usertrials.no_seed to take a `seed` argument"):
        daskbench.plan("r", config_dir="conf")
    rp = daskbench.plan("r", ["sweep.replicates=1"], config_dir="conf")
    assert not rp.plan.inject_seed and len(rp.plan) == 2


def test_results_dir_default_and_override(user_dir):
    write_experiment(user_dir / "conf", "d", "name: d\ntrial: {_target_: usertrials.quad}\n")
    assert str(daskbench.plan("d", config_dir="conf").results_dir) == "results/d"
    assert str(daskbench.plan("d", ["results.dir=/tmp/x/y"], config_dir="conf").results_dir) == "/tmp/x/y"


def test_flow_style_comma_gets_a_hint(user_dir):
    write_experiment(
        user_dir / "conf",
        "fs",
        """
        name: fs
        trial: {_target_: usertrials.quad}
        sweep: {params: {trial.x: 1,2}}
    """,
    )
    with pytest.raises(ConfigError, match="flow style.*quote"):
        daskbench.plan("fs", config_dir="conf")


@pytest.mark.parametrize(
    "override, message",
    [
        ("runner.chunk_size=0", "runner.chunk_size=0: use auto or a whole number"),
        ("retries=-1", "retries=-1: must be >= 0"),
        ("timeout_s=0", "timeout_s=0.0: must be > 0"),
        ("runner.progress=fancy", "runner.progress='fancy'"),
    ],
)
def test_range_checks(user_dir, override, message):
    write_experiment(user_dir / "conf", "v", "name: v\ntrial: {_target_: usertrials.quad}\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        daskbench.plan("v", [override], config_dir="conf")


# -- each section's rules live with its dataclass ------------------------------------


def _float_fields(cls, prefix=""):
    """(dotted key, field name, owner instance factory) of every float setting, nested sections too."""
    from dataclasses import fields, is_dataclass

    out = []
    for f in fields(cls):
        if f.type in ("float", "Optional[float]"):
            out.append((f"{prefix}{f.name}", cls, f.name))
        elif f.default_factory is not dataclasses.MISSING and is_dataclass(f.default_factory()):
            out += _float_fields(type(f.default_factory()), f"{prefix}{f.name}.")
    return out


FLOAT_SETTINGS = _float_fields(schema.ExperimentConfig) + [
    (f"cluster.{k}", c, n) for cls in schema.CLUSTER_SCHEMAS.values() for k, c, n in _float_fields(cls)
]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("key, cls, name", FLOAT_SETTINGS, ids=[k for k, _, _ in FLOAT_SETTINGS])
def test_every_float_setting_rejects_nan_and_inf(key, cls, name, bad):
    """nan compares false with every bound: without a check, `timeout_s=nan` meant no timeout."""
    cluster = cls in schema.CLUSTER_SCHEMAS.values()
    top = (
        (cls(address="tcp://127.0.0.1:8786") if cls is schema.AddressClusterConfig else cls())
        if cluster
        else schema.ExperimentConfig()
    )
    owner = top
    for part in key.split(".")[1 if cluster else 0 : -1]:
        owner = getattr(owner, part)
    setattr(owner, name, bad)
    problems = top.problems()
    assert len(problems) == 1 and problems[0].startswith(f"{key}={bad}: must be"), problems


def test_float_settings_found():
    keys = {k for k, _, _ in FLOAT_SETTINGS}
    assert {
        "timeout_s",
        "runner.target_chunk_seconds",
        "results.flush_seconds",
        "cluster.timeout_s",
        "cluster.resource_wait_s",
    } <= keys


def test_shipped_defaults_have_no_problems():
    assert schema.ExperimentConfig(name="x").problems() == []
    for cls in schema.CLUSTER_SCHEMAS.values():
        c = cls(address="tcp://127.0.0.1:8786") if cls is schema.AddressClusterConfig else cls()
        assert c.problems() == [], cls


@pytest.mark.parametrize(
    "section, message",
    [
        (schema.RunnerConfig(chunk_size=0, isolation="fork"), ["runner.chunk_size=0", "runner.isolation='fork'"]),
        (schema.ResultsConfig(dir=" ", flush_rows=0), ["results.dir is empty", "results.flush_rows=0: must be >= 1"]),
        (
            schema.SecurityConfig(mode="files", ca_file="nosuch.pem"),
            [
                "cluster.security.ca_file=nosuch.pem: no such file",
                "needs cluster.security.cert_file=PATH",
                "needs cluster.security.key_file=PATH",
            ],
        ),
        (schema.AddressClusterConfig(address="tls://h:1"), ["uses TLS but cluster.security.mode is none"]),
        (
            schema.AddressClusterConfig(address="tcp://h:1", security=schema.SecurityConfig(mode="temporary")),
            ["mode=temporary makes self-signed certificates for a LocalCluster only"],
        ),
        (
            schema.LocalClusterConfig(adapt=schema.AdaptConfig(minimum=3, maximum=2), resources={"GPU": 0}),
            ["cluster.resources.GPU=0", "cluster.adapt.minimum=3"],
        ),
    ],
)
def test_section_problems(section, message):
    problems = section.problems(local=False) if isinstance(section, schema.SecurityConfig) else section.problems()
    assert len(problems) == len(message)
    for p, m in zip(sorted(problems), sorted(message)):
        assert m in p, (m, p)


# -- what may be swept ----------------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("runner=1,2", "cannot sweep 'runner': `runner` is a run setting"),
        ("runner.chunk_size=1,2", "cannot sweep 'runner.chunk_size'"),
        ("timeout_s=1,2", "cannot sweep 'timeout_s'"),
        ("cluster=local,address", "cannot sweep 'cluster'"),
        ("name=a,b", "cannot sweep 'name'"),
        ("trial=1,2", "cannot sweep 'trial' over 1,2: `trial` is a section"),
        ("vars=1,2", "cannot sweep 'vars'"),
        ("runner=process", "runner='process': `runner` is a section of keys, not a single value"),
        ("trial=1", "trial=1: `trial` is a section"),
        ("sweep=grid", "sweep='grid': `sweep` is a section"),
    ],
)
def test_run_settings_and_sections_are_not_swept(user_dir, override, message):
    write_experiment(user_dir / "conf", "s", "name: s\ntrial: {_target_: usertrials.quad, x: 0.0}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        daskbench.plan("s", [override], config_dir="conf")


def test_run_setting_in_sweep_params_is_refused(user_dir):
    write_experiment(
        user_dir / "conf",
        "s",
        """
        name: s
        trial: {_target_: usertrials.quad}
        sweep: {params: {trial.x: '1,2', retries: '0,1'}}
    """,
    )
    with pytest.raises(ConfigError, match="cannot sweep 'retries'"):
        daskbench.plan("s", config_dir="conf")


def test_a_nested_mapping_under_trial_may_take_values(monkeypatch, tmp_path):
    """The market model's `trial.params.strategies` is a mapping in the file and swept over names."""
    monkeypatch.chdir(tmp_path)
    rp = daskbench.plan("market")
    assert {t.params["trial.params.strategies"] for t in rp.plan} == {"cost", "markup", "learning"}


# -- the trial function ---------------------------------------------------------------

HOLDER = """
class Holder:
    value = 3

    @staticmethod
    def run(x=0, seed=0):
        return {"y": x}
"""


def test_target_path_through_a_class(user_dir):
    (user_dir / "holders.py").write_text(HOLDER)
    write_experiment(user_dir / "conf", "h", "name: h\ntrial: {_target_: holders.Holder.run, x: 1}\n")
    assert len(daskbench.plan("h", config_dir="conf").plan) == 1
    write_experiment(user_dir / "conf", "h2", "name: h2\ntrial: {_target_: holders.Holder.value}\n")
    with pytest.raises(TrialImportError, match="'value' exists in 'holders.Holder' but is a int, not callable"):
        daskbench.plan("h2", config_dir="conf")
    write_experiment(user_dir / "conf", "h3", "name: h3\ntrial: {_target_: holders.Holder.walk}\n")
    with pytest.raises(TrialImportError, match="class 'holders.Holder' has no 'walk'"):
        daskbench.plan("h3", config_dir="conf")


def test_target_whose_module_imports_a_missing_module(user_dir):
    (user_dir / "needsdep.py").write_text("import nosuchdependency\n\ndef run(seed=0):\n    return {}\n")
    write_experiment(user_dir / "conf", "n", "name: n\ntrial: {_target_: needsdep.run}\n")
    with pytest.raises(TrialImportError, match="cannot import module 'nosuchdependency'"):
        daskbench.plan("n", config_dir="conf")
    write_experiment(user_dir / "conf", "n2", "name: n2\ntrial: {_target_: daskbench.experiments.nosuch.trial}\n")
    with pytest.raises(TrialImportError, match="cannot import module 'daskbench.experiments.nosuch'"):
        daskbench.plan("n2", config_dir="conf")


# -- simulation settings, at plan time ------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("trial.shards=0", "trial.shards=0: give a whole number >= 1"),
        ("trial.allocation=nearest", "trial.allocation='nearest' is not known; use one of round_robin, community"),
        ("trial.allocation=round_robin,nearest", "(a value of the swept key trial.allocation)"),
        ("trial.ticks=0", "trial.ticks=0: give a whole number of ticks >= 1"),
        ("trial.clock.tick_seconds=0", "trial.clock.tick_seconds=0"),
        ("trial.clock.realtime_factor=fast", "trial.clock.realtime_factor='fast'"),
        ("+trial.clock.speed=2", "trial.clock.speed is not a clock setting"),
        ("trial.checkpoint_every=-1", "trial.checkpoint_every=-1"),
        (
            "trial.model=daskbench.experiments.boltzmann.Boltzmann,daskbench.experiments.mmc_queue.trial",
            "trial.model='daskbench.experiments.mmc_queue.trial' is not a subclass of daskbench.sim.Model",
        ),
        ("+trial.params.n_agnets=5", "Boltzmann: got an unexpected keyword argument 'n_agnets'"),
    ],
)
def test_simulation_settings_checked_at_plan_time(monkeypatch, tmp_path, override, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(message)):
        daskbench.plan("boltzmann", [override])


def test_simulation_check_imports_no_dask(tmp_path):
    """Planning a simulation experiment (its checks included) imports no Dask."""
    code = (
        "import sys; from daskbench.config.compose import build_plan; "
        "rp = build_plan('epidemic', ['trial.shards=2']); assert len(rp.plan) == 4; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# -- --help ---------------------------------------------------------------------------


def test_every_help_example_plans(monkeypatch, tmp_path, capsys):
    from daskbench.__main__ import EPILOG, main

    monkeypatch.chdir(tmp_path)
    write_experiment(
        tmp_path / "my_conf", "mine", "name: mine\ntrial: {_target_: daskbench.experiments.mmc_queue.trial}\n"
    )
    lines = [line for line in EPILOG.splitlines() if line.strip().startswith("python -m daskbench")]
    examples = [shlex.split(line, comments=True)[3:] for line in lines]
    kept = [words for words in examples if words[:1] == ["cluster"]]
    examples = [words for words in examples if words[:1] != ["cluster"]]
    assert len(examples) == 4 and len(kept) == 1
    for words in kept:  # `cluster start OVERRIDES`: its overrides compose into a local cluster's settings
        from daskbench.cluster.keep import _cluster_config
        from daskbench.config.schema import LocalClusterConfig

        assert isinstance(_cluster_config(words[2:], None), LocalClusterConfig), words
    for words in examples:
        words = [w.replace("HOST", "127.0.0.1") for w in words]
        code = main([*words, "--dry-run"])
        assert code == 0, (words, capsys.readouterr().err)
        assert "trials ->" in capsys.readouterr().out


def _composed(name, overrides=(), config_dir=None):
    """The base composition build_plan starts from, and its plain tree."""
    from omegaconf import OmegaConf

    from daskbench.config import compose

    dirs = compose.search_dirs(config_dir)
    plain, _ = compose._words(name, list(overrides), config_dir, dirs)
    cfg0 = compose._compose_base(dirs, plain, config_dir)
    return cfg0, OmegaConf.to_container(cfg0, resolve=False)


SHIPPED = ["sweep", "boltzmann", "epidemic", "market", "iobench", "staffing"]


@pytest.mark.parametrize("name", SHIPPED)
def test_typing_from_memory_gives_what_typing_the_whole_config_gives(monkeypatch, tmp_path, name):
    """Sections typed one at a time by content (config/typed_memo.py) against the
    whole-config OmegaConf merge, on every shipped experiment; the YAML of the manifest
    against OmegaConf.to_yaml; a trial resolved without OmegaConf against OmegaConf."""
    from omegaconf import OmegaConf

    from daskbench.config import checks, compose, sections, typed_memo

    shipped = {p.stem for p in (compose.search_dirs(None)[0] / "experiment").glob("*.yaml")}
    assert shipped == set(SHIPPED)  # every shipped experiment is checked here
    monkeypatch.chdir(tmp_path)
    cfg0, raw = _composed(name, ["results.dir=out"])
    whole = sections.type_sections(cfg0)  # no plain tree given: the whole config merged, as ever
    typed_memo.clear()
    assert sections.type_sections(cfg0, raw) == whole  # typed a section at a time, each stored
    again = sections.type_sections(cfg0, raw)  # from memory
    assert again == whole and again is not whole
    again.runner.max_chunk_size = -1  # a caller's change stays its own
    assert sections.type_sections(cfg0, raw).runner.max_chunk_size == whole.runner.max_chunk_size
    assert sections.cluster(cfg0, raw) == sections.cluster(cfg0)
    shown = {k: v for k, v in raw.items() if k != "hydra"}
    assert compose._config_yaml(raw) == OmegaConf.to_yaml(shown)
    rp = daskbench.plan(name, ["results.dir=out"])
    assert checks.resolved_trials(rp.trial_bases, rp.plan.axes) == {
        g: OmegaConf.to_container(_with_first_values(OmegaConf.create(tree), rp.plan.axes).trial, resolve=True)
        for g, tree in rp.trial_bases.items()
    }


def _with_first_values(cfg, axes):
    from omegaconf import OmegaConf

    for a in axes:
        if not a.is_group:
            OmegaConf.update(cfg, a.key, a.values[0] if a.values is not None else a.interval[0], force_add=True)
    return cfg


def test_typing_remembers_no_mistake_and_no_interpolation(user_dir):
    from daskbench.config import typed_memo

    body = """
        name: m
        trial: {_target_: usertrials.quad, x: 0.0}
        vars: {n: 7}
        runner: {max_chunk_size: '${vars.n}'}
    """
    write_experiment(user_dir / "conf", "m", body)
    typed_memo.clear()
    rp = daskbench.plan("m", [], config_dir="conf")
    assert rp.cfg.runner.max_chunk_size == 7  # the interpolation resolved: typed the old way
    assert not [k for k in typed_memo._entries if k[0] == "runner"]  # ...and not remembered
    with pytest.raises(ConfigError, match="runner.max_chunk_size"):
        daskbench.plan("m", ["runner.max_chunk_size=lots"], config_dir="conf")
    with pytest.raises(ConfigError, match="runner.max_chunk_size"):  # said again: nothing stored
        daskbench.plan("m", ["runner.max_chunk_size=lots"], config_dir="conf")
    with pytest.raises(ConfigError, match="unknown key runner.max_chunk"):
        daskbench.plan("m", ["+runner.max_chunk=3"], config_dir="conf")


def test_an_experiment_file_checked_before_is_checked_again_once_it_changes(user_dir):
    path = write_experiment(user_dir / "conf", "e", "name: e\ntrial: {_target_: usertrials.quad}\n")
    assert len(daskbench.plan("e", [], config_dir="conf").plan) == 1
    assert len(daskbench.plan("e", [], config_dir="conf").plan) == 1  # the same text: passed before
    path.write_text("name: e\ntrial: usertrials.quad\n")
    with pytest.raises(ConfigError, match="`trial` must be a mapping"):
        daskbench.plan("e", [], config_dir="conf")
