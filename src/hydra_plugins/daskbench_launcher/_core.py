"""Driver side of ``launch()``: check the settings, plan the batch, resume, run, write."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Set

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from omegaconf import OmegaConf

from ._daskbench import ConfigError, DaskbenchError, ResultStore, check_resources, client_for, cluster_config
from ._plan import Planner, job_configs
from ._rows import stored_return
from ._submit import BatchRun
from ._worker import RunContext

log = logging.getLogger(__name__)


@dataclass
class Settings:
    """``hydra.launcher.*``, checked (see :mod:`.config` for what each key means)."""

    cluster: Any
    resources: Dict[str, float]
    priority: int
    retries: int
    max_in_flight: Any
    chunk_size: Any
    resume: bool
    results_dir: Path
    name: str


def settings(params: Mapping[str, Any], job_name: str) -> Settings:
    p = OmegaConf.to_container(OmegaConf.create(dict(params)), resolve=True)
    assert isinstance(p, dict)
    bad: List[str] = []
    for key, low in (("retries", 0), ("max_in_flight", 1), ("chunk_size", 1)):
        if p.get(key) is not None and int(p[key]) < low:
            bad.append(f"hydra.launcher.{key}={p[key]}: must be >= {low}")
    bad += [f"hydra.launcher.resources.{k}={v}: must be > 0" for k, v in (p.get("resources") or {}).items() if v <= 0]
    if bad:
        raise ConfigError("; ".join(bad))
    return Settings(
        cluster=cluster_config(p.get("cluster") or {"kind": "local"}),
        resources={str(k): float(v) for k, v in (p.get("resources") or {}).items()},
        priority=int(p.get("priority") or 0),
        retries=int(p.get("retries") or 0),
        max_in_flight=p.get("max_in_flight"),
        chunk_size=p.get("chunk_size"),
        resume=bool(p.get("resume")),
        results_dir=Path(str(p.get("results_dir"))).absolute(),
        name=str(p.get("name") or job_name),
    )


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    """Hydra's ``Launcher.launch``; a daskbench error is one line on stderr and its exit status."""
    try:
        return _launch(launcher, job_overrides, initial_job_idx)
    except DaskbenchError as exc:
        sys.stderr.write(f"daskbench launcher: error: {exc}\n")
        raise SystemExit(exc.exit_code) from None


def _launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    s = settings(launcher.params, str(config.hydra.job.name))
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    log.info(f"daskbench launcher: {len(job_overrides)} jobs, sweep output dir : {sweep_dir}")
    for idx, overrides in enumerate(job_overrides):
        log.info(f"\t#{initial_job_idx + idx} : {' '.join(filter_overrides(overrides))}")
    planner = launcher.planner  # made in setup(), kept across batches: templates composed once per multirun
    planner.name = s.name
    jobs = [planner.plan(initial_job_idx + i, o) for i, o in enumerate(job_overrides)]
    store = ResultStore(s.results_dir)
    done = store.open_for_resume(s.name)
    returns = _resumed(store, planner, jobs, done, str(config.hydra.job.name)) if s.resume else {}
    _drop_rows_to_rerun(store, jobs, done, returns)
    todo = [j for j in jobs if j.num not in returns]
    if returns:
        log.info(f"daskbench launcher: {len(returns)} jobs already ok in {s.results_dir}, {len(todo)} to run")
    started = time.time()
    try:
        if todo:
            client, new = client_for(s.cluster)
            if new and client.dashboard_link and getattr(s.cluster, "dashboard_address", "") is not None:
                log.info(f"Dask dashboard: {client.dashboard_link}")
            check_resources(client, s.cluster, s.resources, log.info)
            ctx = RunContext(
                token=uuid.uuid4().hex,
                singleton_state=_singletons(),
                callbacks=launcher.hydra_context.callbacks,
                task_function=launcher.task_function,
                templates=planner.templates,
                retries=s.retries,
            )
            returns.update(BatchRun(client, ctx, s, lambda rows: store.add(rows, {})).run(todo))
    finally:
        store.close()
        _record(store, s, config, started, len(jobs), len(jobs) - len(todo))
    return [returns[j.num] for j in jobs]


def _singletons() -> Any:
    """Hydra's global state for the workers, as its joblib launcher sends it, minus
    ``GlobalHydra``: its config loader is the driver's (jobs arrive composed), and
    its config sources do not pickle once Hydra's plugin scan has re-imported them."""
    from hydra.core.global_hydra import GlobalHydra

    state = Singleton.get_state()
    state["instances"].pop(GlobalHydra, None)
    return state


def _resumed(store: Any, planner: Planner, jobs: List[Any], done: Set[str], task_name: str) -> Dict[int, JobReturn]:
    """Jobs whose row is ok with a return value to hand back: not run again."""
    wanted = {j.trial_id for j in jobs} & done
    if not wanted:
        return {}
    table = store.trials.read(columns=["trial_id", "return_value", "hydra.runtime.output_dir"])
    stored = {r["trial_id"]: r for r in table.to_pylist() if r["trial_id"] in wanted}
    out: Dict[int, JobReturn] = {}
    for job in jobs:
        r = stored.get(job.trial_id)
        if r is not None and r.get("return_value") is not None:  # None: no JSON form, so run it again
            out[job.num] = stored_return(job, r, task_name, lambda job=job: job_configs(planner, job))
    return out


def _drop_rows_to_rerun(store: Any, jobs: List[Any], done: Set[str], returns: Dict[int, JobReturn]) -> None:
    """An ok row of a job that runs again is replaced by the new one (a job cancelled
    before it ran keeps its old row): no id is ever there twice."""
    rerun = {j.trial_id for j in jobs if j.num not in returns} & done
    if rerun:
        store.redo(rerun)


def _record(store: Any, s: Settings, config: Any, started: float, n: int, skipped: int) -> None:
    run = {
        "id": f"hydra-{started:.0f}",
        "started": started,
        "ended": time.time(),
        "jobs": n,
        "skipped": skipped,
        "command": " ".join(sys.argv),
        "launcher": "hydra_plugins.daskbench_launcher",
    }
    task = OmegaConf.to_container(config, resolve=False)
    assert isinstance(task, dict)
    task.pop("hydra", None)
    try:
        store.record_run(run, OmegaConf.to_yaml(task), s.name)
    except DaskbenchError:  # the run's own outcome matters more than its history
        log.warning("daskbench launcher: could not update manifest.json in %s", s.results_dir)
