"""Driver side of ``launch()``: check the settings, plan the batch, resume, run, write."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from omegaconf import OmegaConf

from ._daskbench import (
    ConfigError,
    DaskbenchError,
    ResultStore,
    check_resources,
    client_for,
    close_cluster,
    cluster_config,
    code_version,
)
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
    timeout_s: Optional[float]
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
    if p.get("timeout_s") is not None and not float(p["timeout_s"]) > 0:
        bad.append(f"hydra.launcher.timeout_s={float(p['timeout_s']):g}: must be > 0 seconds, or null for no timeout")
    if bad:
        raise ConfigError("; ".join(bad))
    return Settings(
        cluster=cluster_config(p.get("cluster") or {"kind": "local"}),
        resources={str(k): float(v) for k, v in (p.get("resources") or {}).items()},
        priority=int(p.get("priority") or 0),
        retries=int(p.get("retries") or 0),
        timeout_s=None if p.get("timeout_s") is None else float(p["timeout_s"]),
        max_in_flight=p.get("max_in_flight"),
        chunk_size=p.get("chunk_size"),
        resume=bool(p.get("resume")),
        results_dir=Path(str(p.get("results_dir"))).absolute(),
        name=str(p.get("name") or job_name),
    )


class Interrupted(Exception):
    """Ctrl-C during a batch: the rows of the jobs that finished are written."""

    def __init__(self, results_dir: Path):
        super().__init__(str(results_dir))
        self.results_dir = results_dir


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    """Hydra's ``Launcher.launch``; a daskbench error is one line on stderr and its exit status,
    and so is Ctrl-C (status 130). The cluster is closed when this is the multirun's last batch."""
    try:
        returns = _launch(launcher, job_overrides, initial_job_idx)
    except DaskbenchError as exc:
        close_cluster()
        sys.stderr.write(f"daskbench launcher: error: {exc}\n")
        raise SystemExit(exc.exit_code) from None
    except Interrupted as exc:
        close_cluster()
        sys.stderr.write(
            f"daskbench launcher: interrupted; the rows of the jobs that finished are in {exc.results_dir}; "
            "run the same command with hydra.launcher.resume=true to run only the rest\n"
        )
        raise SystemExit(130) from None
    except KeyboardInterrupt:  # before any job was submitted
        close_cluster()
        sys.stderr.write("daskbench launcher: interrupted before any job of this batch ran\n")
        raise SystemExit(130) from None
    except BaseException:
        close_cluster()  # the sweeper stops here: no batch follows
        raise
    if closes_after(launcher.config, returns):
        close_cluster()
    return returns


def closes_after(config: Any, returns: Sequence[JobReturn]) -> bool:
    """Whether no batch follows this one, so the cluster can close now rather than at exit.

    Hydra's basic sweeper launches once (no ``max_batch_size``) and stops at the first
    batch with a failed job; other sweepers' last batch is known only to them: their
    cluster closes at the multirun's end (:class:`.launcher.CloseAtMultirunEnd`) or at exit.
    """
    sweeper = config.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return False
    return sweeper.get("max_batch_size") is None or any(r.status != JobStatus.COMPLETED for r in returns)


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
    if launcher.code is None:  # once per multirun: a hash of the app's file and its git state
        launcher.code = code_version(launcher.task_function)
    store = ResultStore(s.results_dir, code_version=launcher.code.label)
    done = store.open_for_resume(s.name)
    returns = _resumed(store, planner, jobs, done, str(config.hydra.job.name)) if s.resume else {}
    _drop_rows_to_rerun(store, jobs, done, returns)
    todo = [j for j in jobs if j.num not in returns]
    if returns:
        log.info(f"daskbench launcher: {len(returns)} jobs already ok in {s.results_dir}, {len(todo)} to run")
    started = time.time()
    try:
        if todo:
            returns.update(_run(launcher, s, planner, store, todo))
    except KeyboardInterrupt:
        raise Interrupted(s.results_dir) from None
    finally:
        store.close()
        _record(store, s, config, started, len(jobs), len(jobs) - len(todo), launcher.code)
    return [returns[j.num] for j in jobs]


def _run(launcher: Any, s: Settings, planner: Planner, store: Any, todo: List[Any]) -> Dict[int, JobReturn]:
    t0 = time.perf_counter()
    client, new = client_for(s.cluster)
    if new:
        log.info(f"daskbench launcher: Dask cluster ready in {time.perf_counter() - t0:.2f}s")
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
        timeout_s=s.timeout_s,
    )
    configs = lambda job: job_configs(planner, job)  # noqa: E731
    return BatchRun(client, ctx, s, lambda rows: store.add(rows, {}), configs).run(todo)


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


def _record(store: Any, s: Settings, config: Any, started: float, n: int, skipped: int, code: Any) -> None:
    run = {
        "id": f"hydra-{started:.0f}",
        "started": started,
        "ended": time.time(),
        "jobs": n,
        "skipped": skipped,
        "command": " ".join(sys.argv),
        "launcher": "hydra_plugins.daskbench_launcher",
        "code": code.as_dict(),
    }
    task = OmegaConf.to_container(config, resolve=False)
    assert isinstance(task, dict)
    task.pop("hydra", None)
    try:
        store.record_run(run, OmegaConf.to_yaml(task), s.name)
    except DaskbenchError:  # the run's own outcome matters more than its history
        log.warning("daskbench launcher: could not update manifest.json in %s", s.results_dir)
