"""Hydra's ``run_job`` (``hydra.core.utils.run_job``, hydra-core 1.3), step for step,
with its four deep copies of the config replaced by pickle round trips.

Measured on this 2-core machine, ``run_job`` spends most of a no-op job copying
configs: ``HydraConfig.set_config`` twice (each a deep copy of the ``hydra``
node), ``copy.deepcopy`` of the whole config for the task, and again of the
``hydra`` node for the ``JobReturn``. An OmegaConf config unpickles ~4x faster
than it deep-copies, and a config the launcher has just unpickled for this job
is its own to cut up. Everything a job sees is as ``run_job`` makes it: its
folder, ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml``, the job
log, ``HydraConfig`` (with the hydra node's parent set to the whole config, as
``set_config`` does), ``hydra.job.env_set``, ``hydra.job.chdir``, the callbacks,
and a ``JobReturn``. ``tests/test_launcher_compose.py`` compares the two.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any, Callable

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, _flush_loggers, configure_log, env_override
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ._yaml import save_config as _save_config


def _copy(cfg: DictConfig) -> DictConfig:
    return pickle.loads(pickle.dumps(cfg, protocol=pickle.HIGHEST_PROTOCOL))


def _hydra_only(config: DictConfig) -> DictConfig:
    """What ``HydraConfig.set_config`` keeps: a copy holding the ``hydra`` node alone."""
    masked = _copy(config)
    with read_write(masked), open_dict(masked):
        for key in [k for k in masked if k != "hydra"]:
            del masked[key]
    OmegaConf.set_readonly(masked.hydra, True)
    return masked


def _output_dir(config: DictConfig) -> str:
    # evaluated lazily, as run_job does: the subdir may use hydra.job.num or ${hydra:...}
    output_dir = str(OmegaConf.select(config, "hydra.sweep.dir"))
    return os.path.join(output_dir, str(OmegaConf.select(config, "hydra.sweep.subdir")))


def _chdir(hydra_node: Any) -> bool:
    from hydra import version

    chdir = hydra_node.job.chdir
    if chdir is None and version.base_at_least("1.2"):
        return False
    if chdir is None:
        warnings.warn(
            "Future Hydra versions will no longer change working directory at job runtime by default.\n"
            "See https://hydra.cc/docs/1.2/upgrades/1.1_to_1.2/changes_to_job_working_dir/ for more "
            "information.",
            UserWarning,
            stacklevel=3,
        )
        return True
    return bool(chdir)


def run_job(task_function: Callable[[DictConfig], Any], config: DictConfig, callbacks: Any) -> JobReturn:
    """Run one job whose ``config`` (composed, with ``hydra.job.id/num`` set) is ours to modify."""
    old_cwd = os.getcwd()
    instance = HydraConfig.instance()
    orig_hydra_cfg = instance.cfg
    masked = _hydra_only(config)
    instance.cfg = masked
    masked.hydra._set_parent(config)  # interpolations from the hydra node into the job's config
    output_dir = _output_dir(config)
    for node in (config.hydra.runtime, masked.hydra.runtime):
        with read_write(node), open_dict(node):
            node.output_dir = os.path.abspath(output_dir)
    OmegaConf.set_readonly(config.hydra, True)
    chdir = False
    try:
        ret = JobReturn()
        # the job's own config: a copy minus hydra (the whole config stays whole: the
        # hydra node's interpolations resolve against it, and callbacks get it)
        task_cfg = _copy(config)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        ret.cfg = task_cfg
        ret.overrides = OmegaConf.to_container(masked.hydra.overrides.task)  # type: ignore[assignment]
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        chdir = _chdir(masked.hydra)
        if chdir:
            os.chdir(output_dir)
            ret.working_dir = output_dir
        else:
            ret.working_dir = os.getcwd()
        hydra = masked.hydra
        configure_log(hydra.job_logging, hydra.verbose)
        if hydra.output_subdir is not None:
            hydra_output = Path(hydra.runtime.output_dir) / Path(hydra.output_subdir)
            _save_config(task_cfg, "config.yaml", hydra_output)
            _save_config(masked, "hydra.yaml", hydra_output)
            _save_config(hydra.overrides.task, "overrides.yaml", hydra_output)
        with env_override(hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as e:
                ret.return_value = e
                ret.status = JobStatus.FAILED
        ret.task_name = JobRuntime.instance().get("name")
        _flush_loggers()
        callbacks.on_job_end(config=config, job_return=ret)
        masked.hydra._set_parent(masked)  # the JobReturn's copy stands alone, as run_job's deep copy does
        ret.hydra_cfg = masked
        return ret
    finally:
        instance.cfg = orig_hydra_cfg
        if chdir:
            os.chdir(old_cwd)
