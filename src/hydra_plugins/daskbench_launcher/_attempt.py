"""One run of one Hydra job, with Hydra's own ``run_job`` steps (:mod:`._run_job`):
in the worker's own process, or in a child process of its own when
``hydra.launcher.timeout_s`` is set (:mod:`._child`)."""

from __future__ import annotations

import contextlib
import os
import pickle
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Iterator, Optional, Tuple

from daskbench.results.row import FailureKind, kind_of_exception

_STATE: Dict[str, Any] = {"token": None}


@dataclass
class RunContext:
    """What every job of a multirun shares; scattered to the workers once per batch."""

    token: str  # identifies the multirun: Hydra's global state is set once per process and token
    singleton_state: Any  # hydra.core.singleton.Singleton.get_state() (JobRuntime, resolvers, ConfigStore)
    callbacks: Any  # hydra_context.callbacks: on_job_start / on_job_end run with the job, as in Hydra
    task_function: Any
    templates: Dict[Tuple[str, ...], bytes] = field(default_factory=dict)
    retries: int = 0
    timeout_s: Optional[float] = None  # set: each run of a job in a child process, killed at the deadline


@dataclass
class Outcome:
    """What comes back per job; the configs stay pickled until the driver asks for them."""

    num: int
    status: str  # ok | failed | timeout
    value: Any  # the return value, or the exception
    error: Optional[str]
    traceback: Optional[str]
    working_dir: Optional[str]
    task_name: Optional[str]
    output_dir: Optional[str]
    configs: Optional[bytes]  # pickle of (task cfg, hydra cfg)
    kind: Optional[str] = None  # a daskbench FailureKind when the job did not end ok
    worker: Optional[str] = None
    started_at: Optional[datetime] = None
    duration_s: float = 0.0
    attempts: int = 1


@dataclass
class Packed:
    """A :class:`RunContext` pickled in the driver's main thread.

    Handing Dask the live objects would pickle them on its event loop's thread,
    racing the main thread over shared dicts (``sys.modules``, the app's
    globals): "dictionary changed size during iteration", seen here.
    """

    token: str
    blob: bytes
    retries: int = 0  # the context's, readable without unpickling it
    timeout_s: Optional[float] = None

    @classmethod
    def of(cls, ctx: RunContext) -> Packed:
        import cloudpickle

        return cls(ctx.token, cloudpickle.dumps(ctx), ctx.retries, ctx.timeout_s)


def enter(packed: Packed) -> RunContext:
    """Hydra's global state for this multirun, set once per process and batch."""
    if _STATE["token"] == packed.token:
        return _STATE["ctx"]
    from hydra.core.singleton import Singleton
    from hydra.core.utils import setup_globals

    ctx = pickle.loads(packed.blob)
    setup_globals()
    Singleton.set_state(ctx.singleton_state)
    _STATE.update(token=packed.token, ctx=ctx)
    return ctx


def _config(ctx: RunContext, job: Any) -> Any:
    from omegaconf import open_dict

    from ._plan import finish_config

    if job.template is None:
        cfg = pickle.loads(job.config)
    else:  # unpickling the template's bytes is the cheapest deep copy
        cfg = finish_config(pickle.loads(ctx.templates[job.template]), job)
    with open_dict(cfg):
        cfg.hydra.job.id = f"{cfg.hydra.job.name}_{job.num}"
        cfg.hydra.job.num = job.num
    return cfg


def attempt(ctx: RunContext, job: Any) -> Outcome:
    """Run the job once. A job whose config is refused raises (as Hydra's launchers do);
    the task function's own exception is a failed outcome."""
    from hydra.core.utils import JobStatus

    from ._run_job import run_job

    cfg = _config(ctx, job)
    with _driver_cwd(str(cfg.hydra.runtime.cwd)):
        ret = run_job(ctx.task_function, cfg, ctx.callbacks)
    ok = ret.status == JobStatus.COMPLETED
    value, unpicklable = _picklable(ret._return_value)
    kind: Optional[str] = None
    if unpicklable is not None:  # a value that cannot travel back fails the job here, not the chunk
        ok, value, kind = False, unpicklable, FailureKind.BAD_RESULT
        ret.status = JobStatus.FAILED
    error = tb = None
    if not ok:
        kind = kind or kind_of_exception(value)
        error = f"{type(value).__name__}: {value}"
        tb = "".join(traceback.format_exception(type(value), value, value.__traceback__))
    return Outcome(
        num=job.num,
        status="ok" if ok else "failed",
        value=value,
        error=error,
        traceback=tb,
        working_dir=ret.working_dir,
        task_name=ret.task_name,
        output_dir=str(ret.hydra_cfg.hydra.runtime.output_dir),
        configs=pickle.dumps((ret.cfg, ret.hydra_cfg)),
        kind=None if kind is None else str(kind),
    )


@contextlib.contextmanager
def _driver_cwd(cwd: str) -> Iterator[None]:
    """Run the job from the driver's working directory, where its relative paths
    (``hydra.sweep.dir=multirun/...``) point, when this machine has it."""
    before = os.getcwd()
    moved = os.path.isdir(cwd) and cwd != before
    if moved:
        os.chdir(cwd)
    try:
        yield
    finally:
        if moved:
            os.chdir(before)


def _picklable(value: Any) -> Tuple[Any, Optional[Exception]]:
    """(value, None), or (None, an error saying so) for a value that cannot travel back."""
    import cloudpickle

    try:
        cloudpickle.dumps(value)
        return value, None
    except Exception as exc:
        return None, TypeError(
            f"the job's return value ({type(value).__name__}) cannot be pickled to send it back to the driver: {exc}"
        )
