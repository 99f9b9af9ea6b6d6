"""What the launcher writes (a trials row per job) and hands back (a ``JobReturn``).

A row: ``trial_id``; one column per override, named as its key (``x``, ``db``,
``db.user``; ``+a=1`` fills ``a``); the scalars of the return value as metrics
(a mapping's scalar entries by name, a scalar as ``value``, a sequence of
scalars as ``value.0``, ``value.1``, ...); ``return_value`` (the value as
JSON, what resume hands back to the sweeper); ``hydra.job.num`` and
``hydra.runtime.output_dir``; then daskbench's own tail of columns, built
with :mod:`daskbench.results.row` (``status``, ``error``, ``failure_kind``,
``attempts``, ``worker``, ``started_at``, ``duration_s``, ``code_version``,
``traceback``).
"""

from __future__ import annotations

import json
import numbers
import pickle
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, ListConfig, OmegaConf

from daskbench.results import row as trow
from daskbench.results.row import FailureKind, Status

#: the columns daskbench writes (results/row.py) and the launcher's own: no metric may take them
RESERVED = trow.RESERVED | {"return_value", "hydra.job.num", "hydra.runtime.output_dir"}


def _scalar(v: Any) -> Tuple[bool, Any]:
    if v is None or isinstance(v, (bool, str)):
        return True, v
    if isinstance(v, numbers.Number) and not isinstance(v, complex):
        return True, v.item() if hasattr(v, "item") else v  # numpy scalars -> Python
    return False, None


def plain(value: Any) -> Any:
    """OmegaConf containers returned by a job as plain Python."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def metrics(value: Any, taken: set) -> Dict[str, Any]:
    """The scalar metrics of a return value; names already taken are left to ``return_value``."""
    value = plain(value)
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(f"value.{i}", v) for i, v in enumerate(value)]
    else:
        items = [("value", value)]
    out = {}
    for k, v in items:
        ok, v = _scalar(v)
        if ok and k not in taken and k not in RESERVED:
            out[k] = v
    return out


def to_json(value: Any) -> Optional[str]:
    """The return value as JSON, or None when it has no JSON form (resume then re-runs the job)."""
    try:
        return json.dumps(plain(value), default=lambda o: o.item() if hasattr(o, "item") else _no(o))
    except (TypeError, ValueError):
        return None


def _no(o: Any) -> Any:
    raise TypeError(type(o).__name__)


def row(job: Any, out: Any) -> Dict[str, Any]:
    """The row of a job that ran (ok, failed or timed out), with daskbench's row builders."""
    r: Dict[str, Any] = {"trial_id": job.trial_id}
    r.update((k, v) for k, v in job.columns.items() if k not in RESERVED)
    if out.status == "ok":
        found = metrics(out.value, set(r))
        found["return_value"] = to_json(out.value)
        trow.set_ok(r, found)
    else:
        trow.set_failed(r, Status(out.status), FailureKind(out.kind or FailureKind.RAISED), out.error, out.traceback)
    r.update(
        {
            "hydra.job.num": job.num,
            "hydra.runtime.output_dir": out.output_dir,
            "attempts": out.attempts,
            "worker": out.worker,
            "started_at": out.started_at,
            "duration_s": out.duration_s,
        }
    )
    return r


def failed_row(job: Any, status: Status, kind: FailureKind, error: str) -> Dict[str, Any]:
    """A job that never ran to its end (cancelled, its worker lost, its task failed)."""
    r: Dict[str, Any] = {"trial_id": job.trial_id}
    r.update((k, v) for k, v in job.columns.items() if k not in RESERVED)
    trow.set_failed(r, status, kind, error)
    r.update({"hydra.job.num": job.num, "attempts": 1})
    return r


class DaskbenchJobReturn(JobReturn):
    """A ``JobReturn`` whose configs are unpickled (or composed) only when read.

    Sweepers read ``return_value``; loading two configs per job in the driver
    would cost more than the job itself for short jobs.
    """

    def __init__(self, configs: Optional[Callable[[], Tuple[DictConfig, DictConfig]]] = None, **fields: Any):
        self._configs = configs
        self._cfg = self._hydra_cfg = None
        super().__init__(**fields)

    def _load(self) -> None:
        if self._configs is not None:
            loader, self._configs = self._configs, None
            self._cfg, self._hydra_cfg = loader()

    @property  # type: ignore[override]
    def cfg(self) -> Optional[DictConfig]:
        self._load()
        return self._cfg

    @cfg.setter
    def cfg(self, value: Optional[DictConfig]) -> None:
        if value is not None:
            self._load()  # keep the other config of the pair
            self._cfg = value
        elif self._configs is None:  # JobReturn.__init__ sets None: keep the lazy pair
            self._cfg = None

    @property  # type: ignore[override]
    def hydra_cfg(self) -> Optional[DictConfig]:
        self._load()
        return self._hydra_cfg

    @hydra_cfg.setter
    def hydra_cfg(self, value: Optional[DictConfig]) -> None:
        if value is not None:
            self._load()  # keep the other config of the pair
            self._hydra_cfg = value
        elif self._configs is None:  # JobReturn.__init__ sets None: keep the lazy pair
            self._hydra_cfg = None


def job_return(
    job: Any, out: Any, composed: Optional[Callable[[], Tuple[DictConfig, DictConfig]]] = None
) -> DaskbenchJobReturn:
    """The job's ``JobReturn``; ``composed`` gives its configs when none came back (a timeout)."""
    configs = out.configs
    return DaskbenchJobReturn(
        configs=(lambda: pickle.loads(configs)) if configs else composed,
        overrides=list(job.overrides),
        working_dir=out.working_dir,
        task_name=out.task_name,
        status=JobStatus.COMPLETED if out.status == "ok" else JobStatus.FAILED,
        _return_value=out.value,
    )


def stored_return(
    job: Any, stored: Mapping[str, Any], task_name: str, configs: Callable[[], Tuple[DictConfig, DictConfig]]
) -> DaskbenchJobReturn:
    """A job skipped on resume: its stored return value, configs composed on demand."""
    return DaskbenchJobReturn(
        configs=configs,
        overrides=list(job.overrides),
        working_dir=stored.get("hydra.runtime.output_dir"),
        task_name=task_name,
        status=JobStatus.COMPLETED,
        _return_value=json.loads(stored["return_value"]),
    )
