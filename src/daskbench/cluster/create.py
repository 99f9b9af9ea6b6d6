"""The one place that creates or connects to Dask clusters; everything else takes a Client.

``connect`` starts a LocalCluster, reaches a running scheduler, or creates a
DaskCluster through the Kubernetes operator, with TLS when asked; ``prepare``
readies any client for a sweep (scheduler plugins, the trial's code on remote
workers, workers with the experiment's resources).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any, Callable, Dict, Iterator, Optional, Set

import dask
from distributed import Client, LocalCluster

from ..config.dask_settings import flat_dask_config
from ..config.schema import AddressClusterConfig, KubernetesClusterConfig, LocalClusterConfig, SecurityConfig
from ..dask_compat import workers_now
from ..errors import ClusterError, ConfigError
from .sigint import IgnoreSigint, sigint_ignored
from .workers import dask_setting


def make_security(sec: SecurityConfig) -> Any:
    """A ``distributed.security.Security`` for ``cluster.security``, or None.

    ``sec`` is checked where the config entered (``SecurityConfig.problems``: a known
    mode, ``temporary`` only for a LocalCluster, the three PEM files present).
    """
    from distributed.security import Security

    if sec.mode == "none":
        return None
    if sec.mode == "temporary":
        try:
            return Security.temporary()
        except ImportError:
            raise ConfigError(
                "cluster.security.mode=temporary needs the `cryptography` package: pip install cryptography"
            ) from None
    ca, cert, key = (os.path.expanduser(str(p)) for p in (sec.ca_file, sec.cert_file, sec.key_file))
    return Security(
        tls_ca_file=ca,
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
        require_encryption=True,
    )


@contextlib.contextmanager
def connect(cfg: Any, quiet: bool = True) -> Iterator[Client]:
    """Start (``local``, ``kubernetes``) or reach (``address``) a cluster; close what we started."""
    level = logging.ERROR if quiet else logging.WARNING
    if isinstance(cfg, LocalClusterConfig):
        # -- a cluster kept by `python -m daskbench cluster start`, if one runs (cluster/keep.py)
        from .keep import kept_client

        kept = kept_client(cfg)
        if kept is not None:
            with kept as client:
                yield client
            return
        # --
        with _local(cfg, level) as client:
            yield client
    elif isinstance(cfg, AddressClusterConfig):
        with _quiet_loop_errors(quiet), _address(cfg) as client:
            yield client
    elif isinstance(cfg, KubernetesClusterConfig):
        with _kubernetes(cfg) as client:
            yield client
    else:  # pragma: no cover - the schema guarantees one of the above
        raise ClusterError(f"unknown cluster config {cfg!r}")


@contextlib.contextmanager
def _quiet_loop_errors(quiet: bool) -> Iterator[None]:
    """When a remote scheduler dies, the client's event loop logs each failed
    callback with a traceback (logger ``tornado.application``) before daskbench
    can report the loss in one line; keep those out of a user's terminal."""
    log = logging.getLogger("tornado.application")
    previous = log.level
    if quiet:
        log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(previous)


@contextlib.contextmanager
def _local(cfg: LocalClusterConfig, level: int) -> Iterator[Client]:
    security = make_security(cfg.security)
    adaptive = cfg.adapt.maximum > 0
    kwargs: Dict[str, Any] = dict(
        n_workers=cfg.adapt.minimum if adaptive else cfg.n_workers,
        threads_per_worker=cfg.threads_per_worker,
        processes=cfg.processes,
        memory_limit=cfg.memory_limit,
        resources=dict(cfg.resources) or None,
        dashboard_address=cfg.dashboard_address,
        silence_logs=level,
        plugins=(IgnoreSigint(),),  # each worker sets it up as it starts: restarted and adaptive ones too
    )
    if cfg.processes:
        kwargs["host"] = cfg.host
    if cfg.dashboard_address is None:
        # no dashboard, but the scheduler still serves /metrics and /health: on
        # the cluster's host and a free port, not on every interface or 8787
        kwargs["scheduler_kwargs"] = {"dashboard_address": f"{cfg.host if cfg.processes else '127.0.0.1'}:0"}
    if security is not None:
        kwargs.update(security=security, protocol="tls://")
    # distributed keeps each connection's last messages for debugging; with big
    # sweeps that log alone holds hundreds of MB of task arguments. Scoped to
    # the cluster's lifetime: connections made later (adaptive) read it too.
    # allowed-failures 0: a task whose worker dies comes straight back to the
    # driver (KilledWorker), which reruns it and, for a chunk, finds the trial
    # that crashed (runner.crash_retries), instead of Dask running a crashing
    # chunk on four workers in turn.
    # The workers start as cluster.start_method says (cluster.workers: forkserver by default).
    # cluster.dask_config first (the quieter profiler and event-loop check, schema.QUIET_DASK):
    # what the recovery of crashed chunks relies on is set over it.
    settings = {"distributed.admin.low-level-log-length": 0, "distributed.scheduler.allowed-failures": 0}
    with dask.config.set({**flat_dask_config(cfg.dask_config), **settings, **dask_setting(cfg.start_method)}):
        try:
            with sigint_ignored():  # spawned and forked workers inherit the ignore
                cluster = _cluster_class(cfg)(**kwargs)
        except Exception as exc:
            raise ClusterError(
                f"cannot start a LocalCluster ({type(exc).__name__}: {exc}); check cluster.* settings"
            ) from None
        if adaptive:
            cluster.adapt(minimum=cfg.adapt.minimum, maximum=cfg.adapt.maximum)
        client = Client(cluster, security=security)
        try:
            yield client
        finally:
            _quietly_close(client, cluster)


def _cluster_class(cfg: LocalClusterConfig) -> Any:
    """LocalCluster, or with workers from the fork server one whose scheduler is
    forked by that server too: off the driver's GIL (:mod:`.scheduler_process`)."""
    if cfg.processes and cfg.start_method == "forkserver":
        from .scheduler_process import ForkedSchedulerCluster

        return ForkedSchedulerCluster
    return LocalCluster


@contextlib.contextmanager
def _address(cfg: AddressClusterConfig) -> Iterator[Client]:
    security = make_security(cfg.security)  # matches the address's scheme: checked with the config
    started = time.monotonic()
    try:
        client = Client(cfg.address, timeout=f"{cfg.timeout_s}s", security=security)
    except (OSError, TimeoutError, ValueError) as exc:
        waited = time.monotonic() - started
        hint = " (check that cluster.security's CA and certificate match the scheduler's)" if security else ""
        raise ClusterError(
            f"cannot reach the Dask scheduler at {cfg.address} (waited {waited:.0f}s of "
            f"cluster.timeout_s={cfg.timeout_s:g}): {str(exc).splitlines()[0]}{hint}. Start one with "
            "`dask scheduler` or fix cluster.address"
        ) from None
    try:
        yield client
    finally:
        _quietly_close(client, None)


@contextlib.contextmanager
def _kubernetes(cfg: KubernetesClusterConfig) -> Iterator[Client]:
    from . import kube  # the optional extra: a missing one is a ConfigError naming it

    cluster = kube.make_cluster(cfg, quiet=False)  # ConfigError / ClusterError, one line each
    try:
        if cfg.adapt.maximum > 0:
            cluster.adapt(minimum=cfg.adapt.minimum, maximum=cfg.adapt.maximum)
        client = Client(cluster)
    except Exception as exc:
        with contextlib.suppress(Exception):
            cluster.close(timeout=30)
        raise ClusterError(
            f"DaskCluster {cfg.name!r} started but cannot be used ({type(exc).__name__}: {exc})"
        ) from None
    try:
        yield client
    finally:
        _quietly_close(client, cluster if cfg.shutdown_on_close else None)


def _quietly_close(client: Client, cluster: Any) -> None:
    # Shutting down after Ctrl-C makes distributed log connection errors that say
    # nothing useful to a user; the run's outcome has been reported already.
    # Futures still tracked by the driver's as_completed (a run stopped by an
    # error) fail their result fetch as the client's connections close, and the
    # event loop logs each with a traceback (logger ``tornado.application``).
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    logging.getLogger("tornado.application").setLevel(logging.CRITICAL)
    with contextlib.suppress(Exception):
        client.close(timeout=10)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)


# -- readying a client for a sweep ---------------------------------------------


def warm_for_prepare() -> None:
    """What a new client's handshake and :func:`prepare` need first, made ready ahead
    (the caller waits for its cluster meanwhile): the package versions the handshake
    sends (``importlib.metadata`` look-ups, cached per process) and the plugins' modules."""
    from distributed.versions import get_versions

    from ..observe import plugin, scheduler_plugins  # noqa: F401

    get_versions()


#: schedulers (by id) this process has given daskbench's plugins: both are idempotent, so a
#: process that runs sweep after sweep on one scheduler sends them once, not every run
_plugged: Set[str] = set()


def prepare(
    client: Client,
    cfg: Any,
    target: str,
    resources: Dict[str, float],
    echo: Callable[[str], None] = print,
    scheduler_id: Optional[str] = None,
) -> None:
    """Install daskbench's scheduler plugins (once per ``scheduler_id``, when given), ship
    the trial's code to remote workers, and make sure some worker can run a trial that
    needs ``resources``."""
    from ..observe.plugin import ObservePlugin
    from ..observe.scheduler_plugins import KeepActorWorkers

    if not scheduler_id or scheduler_id not in _plugged:
        client.register_plugin(KeepActorWorkers(), name=KeepActorWorkers.name)
        # Prometheus counters and the /daskbench/status page, served by the scheduler
        client.register_plugin(ObservePlugin(), name=ObservePlugin.name)
        if scheduler_id:
            _plugged.add(scheduler_id)
    if isinstance(cfg, (AddressClusterConfig, KubernetesClusterConfig)) and getattr(cfg, "upload_code", True):
        from .shipping import ship_code

        shipped = ship_code(client, target)
        if shipped:
            echo(f"sent {shipped} to the workers")
    if isinstance(cfg, LocalClusterConfig):
        check_local_resources(cfg, resources)
        wait = 0.0
    else:
        wait = float(getattr(cfg, "resource_wait_s", 0.0))
    wait_for_resources(client, resources, wait, echo)


def worker_resources(client: Client) -> Dict[str, Dict[str, float]]:
    """Resources each worker advertises, by worker address."""
    return {addr: dict(w.get("resources") or {}) for addr, w in workers_now(client).items()}


def _matching(client: Client, wanted: Dict[str, float]) -> bool:
    return any(all(res.get(k, 0) >= v for k, v in wanted.items()) for res in worker_resources(client).values())


def _no_match(
    client: Optional[Client],
    wanted: Dict[str, float],
    have: Optional[Dict[str, float]] = None,
    waited: Optional[float] = None,
) -> ClusterError:
    if have is None and client is not None:
        pools = sorted({f"{k}={v:g}" for res in worker_resources(client).values() for k, v in res.items()})
    else:
        pools = sorted(f"{k}={v:g}" for k, v in (have or {}).items())
    asked = ", ".join(f"{k}={v:g}" for k, v in wanted.items())
    when = f" joined within {waited:g}s" if waited else ""
    return ClusterError(
        f"no worker has the resources this experiment asks for ({asked}){when}; the workers have: "
        f"{', '.join(pools) or 'no resources'}. Start a worker with `dask worker ADDRESS --resources "
        f'"{asked.replace(", ", " ")}"`, set cluster.resources for a local cluster, or change `resources`'
    )


def check_local_resources(cfg: LocalClusterConfig, wanted: Dict[str, float]) -> None:
    """A LocalCluster's workers all have ``cluster.resources``, adaptive or not."""
    if wanted and not all(cfg.resources.get(k, 0) >= v for k, v in wanted.items()):
        raise _no_match(None, wanted, have=dict(cfg.resources))


def wait_for_resources(
    client: Client, wanted: Dict[str, float], timeout_s: float, echo: Callable[[str], None] = print
) -> None:
    """Return once a worker has ``wanted``; fail at once (fixed cluster) or after
    ``timeout_s`` (a cluster whose workers come and go).

    Dask would otherwise leave such tasks waiting in ``no-worker`` for ever.
    """
    if not wanted or _matching(client, wanted):
        return
    if timeout_s <= 0:
        raise _no_match(client, wanted)
    asked = ", ".join(f"{k}={v:g}" for k, v in wanted.items())
    echo(f"waiting up to {timeout_s:g}s for a worker with {asked} ...")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
        if _matching(client, wanted):
            return
    raise _no_match(client, wanted, waited=timeout_s)
