"""The kept local cluster's state, without I/O: where its file lives, what it holds,
whether a run's ``cluster.*`` settings fit it, and how its status reads.

``python -m daskbench cluster start`` keeps a LocalCluster running in a background
process (:mod:`.keep`) and writes a :class:`Kept` record as JSON to
:func:`state_file`; the next run with the default local cluster reads it and
connects instead of starting a cluster of its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

# the names of the state folder's files and variables are :mod:`.keep_paths`'s, told here too
from .keep_paths import LOG_NAME as LOG_NAME
from .keep_paths import STATE_ENV as STATE_ENV
from .keep_paths import STATE_NAME as STATE_NAME
from .keep_paths import TOKEN_ENV as TOKEN_ENV
from .keep_paths import state_folder

VERSION = 1

#: the ``cluster.*`` keys a run may set that the kept cluster must match; the
#: dashboard address and ``resource_wait_s`` are not among them (the run uses
#: the kept cluster's dashboard, whatever it is)
MATCHED = (
    "n_workers",
    "threads_per_worker",
    "processes",
    "memory_limit",
    "resources",
    "host",
    "adapt",
    "security",
    "dask_config",
)

LOOPBACK = ("127.0.0.1", "localhost")


class StateCorrupt(ValueError):
    """The state file is not a record this version of daskbench wrote."""


def state_dir(environ: Mapping[str, str], home: Path) -> Path:
    """``$DASKBENCH_STATE_DIR``, else ``$XDG_STATE_HOME/daskbench``, else
    ``~/.local/state/daskbench``: per user, never shared between users."""
    return Path(state_folder(environ, str(home)))


@dataclass
class Kept:
    """What the next command needs to find, check and use a kept cluster."""

    address: str
    pid: int  # the background process that holds the scheduler and the nannies
    token: str  # TOKEN_ENV in its processes: finds them all, orphans included
    started_at: float  # time.time()
    dashboard: Optional[str]
    settings: Dict[str, Any]  # settings_of(the LocalClusterConfig it was started with)
    log: str = ""
    version: int = VERSION
    worker_pids: List[int] = field(default_factory=list)
    driver: Dict[str, Any] = field(default_factory=dict)  # the driver zygote's socket and versions (.keep_driver)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def parse(text: str) -> Kept:
    """The record in a state file's text; :class:`StateCorrupt` says what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateCorrupt(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise StateCorrupt("not a JSON object")
    if data.get("version") != VERSION:
        raise StateCorrupt(f"version {data.get('version')!r}, expected {VERSION}")
    try:
        kept = Kept(**data)
    except TypeError as exc:
        raise StateCorrupt(str(exc)) from None
    ok = (
        isinstance(kept.address, str)
        and kept.address.startswith(("tcp://", "tls://"))
        and isinstance(kept.pid, int)
        and kept.pid > 0
        and isinstance(kept.token, str)
        and isinstance(kept.settings, dict)
        and isinstance(kept.started_at, (int, float))
    )
    if not ok:
        raise StateCorrupt("missing or malformed address, pid, token, settings or started_at")
    return kept


def settings_of(cfg: Any) -> Dict[str, Any]:
    """The matched settings of a ``LocalClusterConfig``, as plain JSON values."""
    from ..config.dask_settings import flat_dask_config

    return {
        "n_workers": cfg.n_workers,
        "threads_per_worker": int(cfg.threads_per_worker),
        "processes": bool(cfg.processes),
        "memory_limit": str(cfg.memory_limit),
        "resources": {str(k): float(v) for k, v in dict(cfg.resources).items()},
        "host": str(cfg.host),
        "adapt": {"minimum": int(cfg.adapt.minimum), "maximum": int(cfg.adapt.maximum)},
        "security": {
            "mode": str(cfg.security.mode),
            **{k: getattr(cfg.security, k) for k in ("ca_file", "cert_file", "key_file")},
        },
        "dashboard_address": cfg.dashboard_address,
        "dask_config": None if cfg.dask_config is None else flat_dask_config(cfg.dask_config),
    }


def _show(key: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = ",".join(f"{k}:{v:g}" if isinstance(v, float) else f"{k}:{v}" for k, v in value.items())
        return f"cluster.{key}={{{inner}}}"
    return f"cluster.{key}={'null' if value is None else value}"


def mismatch(run: Dict[str, Any], kept: Dict[str, Any], defaults: Dict[str, Any]) -> Optional[str]:
    """Why a run with settings ``run`` cannot use a cluster kept with ``kept``, or None.

    A key the run leaves at its shipped default (``defaults``) takes the kept
    cluster's value; a key the run sets to something else must equal it.
    """
    for key in MATCHED:
        asked, have = run.get(key), kept.get(key)
        if asked == defaults.get(key) or asked == have:
            continue
        return f"this run asks for {_show(key, asked)}, the kept cluster has {_show(key, have)}"
    return None


def start_problems(settings: Dict[str, Any]) -> List[str]:
    """What ``cluster start`` refuses: anything reachable from other hosts, and
    certificates no later command could read."""
    bad = []
    if settings["host"] not in LOOPBACK:
        bad.append(f"cluster.host={settings['host']}: a kept cluster binds to 127.0.0.1 only")
    dash = settings.get("dashboard_address")
    if dash is not None and dash.rpartition(":")[0] not in LOOPBACK:
        bad.append(f"cluster.dashboard_address={dash}: a kept cluster serves its dashboard on 127.0.0.1:PORT only")
    if settings["security"]["mode"] != "none":
        bad.append(
            f"cluster.security.mode={settings['security']['mode']}: a kept cluster runs without TLS, on "
            "127.0.0.1 only; for TLS run without a kept cluster (each run starts its own)"
        )
    return bad


def uptime(seconds: float) -> str:
    """``1 day 2:03:04`` or ``0:00:05``."""
    s = max(int(seconds), 0)
    days, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    clock = f"{h}:{m:02d}:{s:02d}"
    return f"{days} day{'s' if days > 1 else ''} {clock}" if days else clock


def status_lines(kept: Kept, workers: Mapping[str, Mapping[str, Any]], now: float, state: Path) -> List[str]:
    """What ``cluster status`` prints for a cluster that answers; ``workers`` as
    in ``scheduler_info()["workers"]``."""
    threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
    pools: Dict[str, float] = {}
    for w in workers.values():
        for k, v in (w.get("resources") or {}).items():
            pools[k] = pools.get(k, 0.0) + float(v)
    res = ", ".join(f"{k}={v:g}" for k, v in sorted(pools.items())) or "none"
    return [
        f"kept cluster: {kept.address} (process {kept.pid})",
        f"workers: {len(workers)} ({threads} threads; resources: {res})",
        f"dashboard: {kept.dashboard or 'none'}",
        f"uptime: {uptime(now - kept.started_at)}",
        f"state: {state}",
    ]
