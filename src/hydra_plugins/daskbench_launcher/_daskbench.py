"""The launcher's doorway into daskbench's cluster, store and code versions (kept here, and few, on purpose).

Used here: ``daskbench.cluster.create`` (``connect``, ``check_local_resources``,
``wait_for_resources``), ``daskbench.config.schema`` (the cluster dataclasses),
``daskbench.results.store.ResultStore``, ``daskbench.results.codeversion`` and
``daskbench.errors``. The pure modules a job's id and row come from are
imported where they are used, without Dask: ``daskbench.sweep.identity``
(:mod:`._plan`), ``daskbench.results.row`` (:mod:`._rows`, :mod:`._attempt`) and
``daskbench.runner.isolate``'s child-process protocol (:mod:`._child`).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import inspect
import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from daskbench.cluster.create import check_local_resources, connect, wait_for_resources
from daskbench.config.dask_settings import flat_dask_config
from daskbench.config.schema import CLUSTER_SCHEMAS, LocalClusterConfig
from daskbench.errors import ClusterError, ConfigError, DaskbenchError
from daskbench.results import codeversion
from daskbench.results.store import ResultStore

from .config import ClusterConf

__all__ = [
    "ClusterError",
    "ConfigError",
    "DaskbenchError",
    "ResultStore",
    "cluster_config",
    "client_for",
    "check_resources",
    "close_cluster",
    "code_version",
]

_KEY = "hydra.launcher.cluster"


def _kinds_with(key: str) -> str:
    return ", ".join(k for k, schema in CLUSTER_SCHEMAS.items() if key in {f.name for f in dataclasses.fields(schema)})


def cluster_config(conf: Mapping[str, Any]) -> Any:
    """``hydra.launcher.cluster`` (null = daskbench's default) -> daskbench's typed cluster config."""
    kind = str(conf.get("kind"))
    schema = CLUSTER_SCHEMAS.get(kind)
    if schema is None:
        raise ConfigError(f"{_KEY}.kind={kind}: use {', '.join(CLUSTER_SCHEMAS)}")
    names = {f.name: f for f in dataclasses.fields(schema)}
    unset = dataclasses.asdict(ClusterConf())
    values: Dict[str, Any] = {}
    for key, value in conf.items():
        if key == "kind" or value == unset.get(key) or (isinstance(value, Mapping) and not _set(value)):
            continue
        if key not in names:
            raise ConfigError(
                f"{_KEY}.{key} is a setting of cluster kind {_kinds_with(key)}, not {kind}; "
                f"set {_KEY}.kind or drop {_KEY}.{key}"
            )
        if key in ("adapt", "security"):
            base = names[key].default_factory()  # type: ignore[misc]
            value = dataclasses.replace(base, **_set(value))
        if key == "dask_config":  # the keys given, over daskbench's own (the quieter profiler...)
            value = dict(flat_dask_config(names[key].default_factory()), **flat_dask_config(value))  # type: ignore[misc]
        values[key] = value
    if kind == "address" and "address" not in values:
        raise ConfigError(f"{_KEY}.kind=address needs {_KEY}.address=tcp://HOST:8786")
    try:
        cfg = schema(**values)
    except TypeError as exc:  # pragma: no cover - the keys were checked above
        raise ConfigError(f"{_KEY}: {exc}") from None
    problems = cfg.problems()  # daskbench's own rules, named as the launcher's keys
    if problems:
        raise ConfigError("; ".join(p.replace("cluster.", f"{_KEY}.", 1) for p in problems))
    return cfg


def _set(section: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in section.items() if v is not None}


def code_version(task_function: Any) -> Any:
    """daskbench's code version of the app's task function (its file: often a ``__main__`` script)."""
    fn = inspect.unwrap(task_function)
    module = str(getattr(fn, "__module__", None) or "__main__")
    try:
        source: Optional[Path] = Path(inspect.getsourcefile(fn) or "").resolve()
    except TypeError:  # a built-in or a callable object without a file
        source = None
    if source is not None and not source.is_file():
        source = None
    if module == "__main__" and source is not None:
        module = source.stem
    return codeversion.of_file(module, source)


# -- one cluster per multirun, kept across its batches -------------------------------
# A sweeper calls launch() once per batch (Optuna: every n_jobs trials), and
# starting a LocalCluster costs a second or more; the cluster stays up until the
# multirun ends (see _core.closes_after), a launch asks for a different one, or
# the process exits.
_CURRENT: Dict[str, Any] = {"key": None, "stack": None, "client": None}


def client_for(cfg: Any) -> Tuple[Any, bool]:
    """A client for ``cfg``: (client, started now)."""
    key = repr(cfg)
    client = _CURRENT["client"]
    if client is not None and _CURRENT["key"] == key and client.status == "running":
        return client, False
    close_cluster()
    # Hydra's logging sends INFO to the terminal; the scheduler that a LocalCluster
    # runs in this process would fill it with its own start-up lines
    dask_log = logging.getLogger("distributed")
    stack = contextlib.ExitStack()
    if dask_log.getEffectiveLevel() < logging.WARNING:
        stack.callback(dask_log.setLevel, dask_log.level)  # put back when the cluster closes
        dask_log.setLevel(logging.WARNING)
    try:
        client = stack.enter_context(connect(cfg))  # ClusterError / ConfigError, one line each
    except BaseException:
        stack.close()
        raise
    _CURRENT.update(key=key, stack=stack, client=client)
    return client, True


def close_cluster() -> None:
    """Close the client and the cluster the launcher started (an address cluster's
    scheduler and workers are not ours: only the connection closes)."""
    stack: Optional[contextlib.ExitStack] = _CURRENT["stack"]
    _CURRENT.update(key=None, stack=None, client=None)
    if stack is not None:
        with contextlib.suppress(Exception):
            stack.close()


atexit.register(close_cluster)


def check_resources(client: Any, cfg: Any, resources: Mapping[str, float], echo: Any) -> None:
    """Refuse, before any job is submitted, resources no worker has (Dask would wait for ever)."""
    wanted = {str(k): float(v) for k, v in resources.items()}
    if isinstance(cfg, LocalClusterConfig):
        check_local_resources(cfg, wanted)
        if cfg.adapt.maximum <= 0:
            return
    wait_for_resources(client, wanted, float(getattr(cfg, "resource_wait_s", 0.0) or 0.0), echo)
