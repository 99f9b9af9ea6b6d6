"""The launcher's shortcuts give what Hydra gives: a template plus value overrides equals
``load_sweep_config``; its ``run_job`` writes and returns what Hydra's does; ids are pinned."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hydra import initialize_config_module
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobRuntime, run_job
from hydra.types import HydraContext, RunMode
from omegaconf import OmegaConf, open_dict, read_write

from daskbench.sweep import identity
from daskbench.sweep.identity import flatten
from hydra_plugins.daskbench_launcher._plan import Planner, _task_content, finish_config
from hydra_plugins.daskbench_launcher._run_job import run_job as fast_run_job
from hydra_plugins.daskbench_launcher._yaml import to_yaml

CASES = [  # (config name, override lists of one sweep)
    ("compose", [["+a=0"], ["+a=1"], ["bar=200", "+a=x,y"], ["group1=file2", "bar=300"], ["++bar=5"]]),
    ("db_conf", [["db=mysql", "db.user=someone"], ["db=postgresql", "db.user=someone", "+db.extra=[1,2]"]]),
    ("db_conf", [["db=mysql", "+db.extra={a: 1}"], ["db=postgresql", "~db.timeout"]]),  # a delete: composed whole
]


@pytest.fixture
def loader(hydra_restore_singletons, tmp_path):
    with initialize_config_module(version_base="1.3", config_module="hydra.test_utils.configs"):
        JobRuntime.instance().set("name", "app")
        yield GlobalHydra.instance().config_loader()


def _master(loader, name, tmp_path):
    return loader.load_configuration(name, [f"hydra.sweep.dir={tmp_path}"], run_mode=RunMode.MULTIRUN)


def _fast(planner, job):
    if job.template is None:
        return pickle.loads(job.config)
    return finish_config(pickle.loads(planner.templates[job.template]), job)


@pytest.mark.parametrize("name, sweep", CASES)
def test_template_plus_values_is_hydras_compose(loader, tmp_path, name, sweep):
    master = _master(loader, name, tmp_path)
    planner = Planner(loader, master, "app")
    for num, overrides in enumerate(sweep):
        overrides = [o.replace("+a=x,y", "+a=xy") for o in overrides]  # one job, no sweep
        job = planner.plan(num, overrides)
        expected = loader.load_sweep_config(master, overrides)
        got = _fast(planner, job)
        assert OmegaConf.to_container(got, resolve=False) == OmegaConf.to_container(expected, resolve=False)
        assert got.hydra.job.override_dirname == expected.hydra.job.override_dirname
    assert sum(j is None for j in planner.templates) == 0


def test_bad_key_fails_like_hydra(loader, tmp_path):
    from hydra.errors import ConfigCompositionException

    planner = Planner(loader, _master(loader, "compose", tmp_path), "app")
    job = planner.plan(0, ["boo=bar"])
    with pytest.raises(ConfigCompositionException, match="Could not override 'boo'"):
        _fast(planner, job)


def test_run_job_matches_hydras(loader, tmp_path):
    master = _master(loader, "db_conf", tmp_path)
    planner = Planner(loader, master, "app")
    returns, files = [], []
    for kind in ("hydra", "fast"):
        cfg = _fast(planner, planner.plan(0, ["db=mysql", "db.user=someone"]))
        with open_dict(cfg):
            cfg.hydra.sweep.dir = str(tmp_path / f"out-{kind}")
            cfg.hydra.job.id, cfg.hydra.job.num = "app_0", 0
        task = lambda c: {"user": c.db.user}  # noqa: E731
        if kind == "hydra":
            ret = run_job(
                task_function=task,
                config=cfg,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
                hydra_context=HydraContext(loader, Callbacks()),
            )
        else:
            ret = fast_run_job(task, cfg, Callbacks())
        returns.append(ret)
        folder = Path(ret.hydra_cfg.hydra.runtime.output_dir) / ".hydra"
        files.append({p.name: p.read_text().replace(f"/out-{kind}", "/X") for p in folder.iterdir()})
    hydra_ret, fast_ret = returns
    assert files[0] == files[1] and set(files[0]) == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    assert fast_ret.cfg == hydra_ret.cfg and fast_ret.return_value == hydra_ret.return_value == {"user": "someone"}
    assert fast_ret.overrides == hydra_ret.overrides and fast_ret.task_name == hydra_ret.task_name
    for r in returns:
        with read_write(r.hydra_cfg.hydra), open_dict(r.hydra_cfg):
            r.hydra_cfg.hydra.sweep.dir = r.hydra_cfg.hydra.runtime.output_dir = "X"
    a, b = (flatten(OmegaConf.to_container(r.hydra_cfg, resolve=False)) for r in returns)
    assert {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)} == {}


def test_yaml_is_omegaconfs(loader, tmp_path):
    cfg = _master(loader, "db_conf", tmp_path)
    with open_dict(cfg):
        cfg.odd = {"t": "true", "n": "1.5", "i": "10", "u": "ünï", "nl": "a\nb", "e": "", "none": None}
    assert to_yaml(cfg) == OmegaConf.to_yaml(cfg)


def test_ids_come_from_daskbench_identity_and_are_pinned(loader, tmp_path):
    # a changed id silently re-runs every user's finished jobs on resume: change only on purpose
    master = _master(loader, "db_conf", tmp_path)
    planner = Planner(loader, master, "app")
    templated = planner.plan(0, ["db=mysql", "db.user=someone"])
    whole = planner.plan(1, ["db=mysql", "~db.password"])  # a delete: composed whole
    # the id is daskbench's trial id (sweep/identity.py) of the job's content, hashed as its sweeps hash it
    base = flatten(_task_content(loader.load_sweep_config(master, ["db=mysql"])))
    own = {"db.user": "someone"}
    assert templated.trial_id == identity.trial_id("app", (("db", "mysql"),), identity.base_items(base, own), own)
    content = flatten(_task_content(loader.load_sweep_config(master, whole.overrides)))
    assert whole.trial_id == identity.trial_id("app", (), [], content)
    assert (templated.trial_id, whole.trial_id) == PINNED
    # the same content is the same job, whatever the override's spelling; another value is another job
    assert planner.plan(2, ["db=mysql", "++db.user=someone"]).trial_id == templated.trial_id
    assert planner.plan(3, ["db=mysql", "db.user=other"]).trial_id != templated.trial_id
    assert Planner(loader, master, "other").plan(0, templated.overrides).trial_id != templated.trial_id


#: computed when the launcher took its ids from daskbench.sweep.identity
PINNED = ("154ba817af962024", "b1696b5426b82d16")


def test_the_sweepers_check_uses_the_fast_loader(loader, tmp_path):
    from hydra_plugins.daskbench_launcher._loader import FastSweepLoader, install

    master = _master(loader, "compose", tmp_path)
    ctx = HydraContext(loader, Callbacks())
    planner = install(ctx, master)
    assert isinstance(ctx.config_loader, FastSweepLoader) and install(ctx, master) is planner
    for overrides in (["+a=1"], ["group1=file2", "bar=300"]):
        got = ctx.config_loader.load_sweep_config(master, overrides)
        assert got == loader.load_sweep_config(master, overrides)
    assert len(planner.templates) == 2  # once per group choice, however many jobs
    with pytest.raises(Exception, match="Could not override 'boo'"):  # a bad job still fails the batch early
        ctx.config_loader.load_sweep_config(master, ["boo=bar"])
    assert ctx.config_loader.get_search_path() is loader.get_search_path()  # the rest is Hydra's loader
