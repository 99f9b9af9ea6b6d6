"""The one place that creates or connects to Dask clusters; everything else takes a Client."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Any, Dict, Iterator

import dask
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from .errors import ClusterError
from .schema import AddressClusterConfig, LocalClusterConfig


@contextlib.contextmanager
def connect(cfg: Any, quiet: bool = True) -> Iterator[Client]:
    """Start (``local``) or reach (``address``) a cluster, and close what we started."""
    level = logging.ERROR if quiet else logging.WARNING
    if isinstance(cfg, LocalClusterConfig):
        kwargs: Dict[str, Any] = dict(
            n_workers=cfg.n_workers, threads_per_worker=cfg.threads_per_worker,
            processes=cfg.processes, memory_limit=cfg.memory_limit,
            resources=dict(cfg.resources) or None, dashboard_address=cfg.dashboard_address,
            silence_logs=level,
        )
        if cfg.processes:
            kwargs["host"] = cfg.host
        # distributed keeps each connection's last messages for debugging; with
        # big sweeps that log alone holds hundreds of MB of task arguments.
        dask.config.set({"distributed.admin.low-level-log-length": 0})
        try:
            with _sigint_ignored():  # spawned workers inherit the ignore
                cluster = LocalCluster(**kwargs)
        except Exception as exc:
            raise ClusterError(f"cannot start a LocalCluster ({type(exc).__name__}: {exc}); check cluster.* settings") from None
        client = Client(cluster)
        client.register_plugin(IgnoreSigint(), name="daskbench-ignore-sigint")  # and restarted ones
        try:
            yield client
        finally:
            _quietly_close(client, cluster)
    elif isinstance(cfg, AddressClusterConfig):
        try:
            client = Client(cfg.address, timeout=f"{cfg.timeout_s}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {cfg.address} within {cfg.timeout_s:g}s ({exc}); "
                "start one with `dask scheduler` or fix cluster.address"
            ) from None
        try:
            yield client
        finally:
            _quietly_close(client, None)
    else:  # pragma: no cover - schema guarantees one of the above
        raise ClusterError(f"unknown cluster config {cfg!r}")


class IgnoreSigint(WorkerPlugin):
    """Workers of a cluster we started ignore Ctrl-C.

    A terminal sends SIGINT to the whole process group; the driver handles it
    (cancel, save, shut the cluster down) and workers dying first would only
    print tracebacks and fail the trials in flight.
    """

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _quietly_close(client: Client, cluster: Any) -> None:
    # Shutting down after Ctrl-C makes distributed log connection errors that say
    # nothing useful to a user; the run's outcome has been reported already.
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    with contextlib.suppress(Exception):
        client.close(timeout=10)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)


def worker_resources(client: Client) -> Dict[str, Dict[str, float]]:
    """Resources each worker advertises, by worker address."""
    info = client.scheduler_info()
    return {addr: dict(w.get("resources") or {}) for addr, w in info.get("workers", {}).items()}


def check_resources(client: Client, wanted: Dict[str, float]) -> None:
    """Stop before submitting if no worker can ever run a trial that needs ``wanted``.

    Dask would otherwise leave such tasks waiting in ``no-worker`` for ever.
    """
    if not wanted:
        return
    have = worker_resources(client)
    if any(all(res.get(k, 0) >= v for k, v in wanted.items()) for res in have.values()):
        return
    pools = sorted({f"{k}={v:g}" for res in have.values() for k, v in res.items()})
    asked = ", ".join(f"{k}={v:g}" for k, v in wanted.items())
    raise ClusterError(
        f"no worker has the resources this experiment asks for ({asked}); the workers have: "
        f"{', '.join(pools) or 'no resources'}. Start a worker with `dask worker ADDRESS --resources "
        f"\"{asked.replace(', ', ' ')}\"`, set cluster.resources for a local cluster, or change `resources`"
    )
