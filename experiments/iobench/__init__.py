"""iobench: a distributed storage benchmark in the manner of sai3-bench.

One trial is one benchmark run across the cluster. The trial, from inside the
Dask task it runs in, opens a ``worker_client`` (which secedes the task from
the worker's thread pool, so the agents can use that slot) and starts one
*agent* task on every worker, or on every worker advertising the resource tag
``resource`` (e.g. ``SSD``), each pinned to its worker with
``workers=[addr], allow_other_workers=False``.

Each agent creates its own directory below ``path`` (default: that worker's
system temp dir), named ``daskbench-iobench-<trial_id>-<worker>-<random>``,
writes a few objects per thread to read from (not timed), waits for the common
start time, and then for ``duration_s`` seconds runs ``concurrency`` threads,
each drawing operations from the weighted ``mix``::

    write   create a new object of a size drawn from ``sizes`` (by ``size_weights``
            or uniformly), optionally fsync'd
    read    read back, whole, one of the objects this thread wrote
    list    list the agent's directory
    delete  delete one of the objects this thread wrote

A thread reads and deletes only objects it wrote (so no operation races
another); a read or delete with no object left becomes a write. Every path is
checked to be directly inside the agent's directory; the agent deletes only
files it created and, at the end, even on error, removes them and its
directory (``os.rmdir``, so anything else found there is left alone and
reported). The trial's ``seed`` seeds each thread's operation and size choices
(``SeedSequence(seed, spawn_key=(agent, thread))``), so the sequence of
operations is reproducible.

Per agent and operation it records counts, bytes, errors, throughput and
latency percentiles (a log histogram with 1 % buckets: p50, p90, p99 exact to
1 %, max exact), plus a per-second timeline; about once a second each agent
calls ``daskbench.live.report(context=ctx, ops_s=..., MB_s=...)`` with its
running figures. MB is 10**6 bytes.

The trial returns the aggregate metrics (``ops_s``, ``MB_s``, per-op ops/s,
write/read MB/s, p50/p99 latency in ms per op, ``workers``, ``errors``, ...)
and two tables: ``workers`` (one row per worker x operation) and ``timeline``
(one row per worker x second).

With ``exclusive`` (the default) trials take a cluster-wide
``distributed.Semaphore`` while they run, so two trials of a sweep never load
the same disks at once (a waiting trial is seceded and holds no thread).

Called outside a Dask worker (plain Python), the trial runs a single agent in
the calling process. With ``timeout_s`` set, daskbench calls trials from a
helper thread, which cannot secede; the trial then fails at once with a message
saying so rather than wait for the thread it holds (the agents stop after
``duration_s`` anyway).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence, Tuple

from daskbench.observe import live

from .agent import IO_CHUNK, _Agent, run_agent  # noqa: F401 (_Agent: tests patch its methods)
from .errors import IOBenchError
from .settings import DEFAULT_MIX, OPS, OpChooser, Settings, make_settings, parse_size
from .stats import MB, TIMELINE_COLUMNS, WORKER_COLUMNS, LatencyHistogram, summarise
from .workspace import DIR_PREFIX, Workspace

__all__ = [
    "DEFAULT_MIX", "DIR_PREFIX", "IO_CHUNK", "MB", "OPS", "TIMELINE_COLUMNS", "WORKER_COLUMNS",
    "IOBenchError", "LatencyHistogram", "OpChooser", "Settings", "Workspace",
    "make_settings", "parse_size", "run_agent", "select_workers", "summarise", "trial",
]

SEMAPHORE_NAME = "daskbench-iobench"
AGENT_PRIORITY = 1_000_000  # agents run before queued trials on a worker
AGENT_GRACE_S = 60.0  # extra time an agent may take before the trial gives up on it


# --------------------------------------------------------------------------- the trial


def select_workers(workers: Mapping[str, Mapping[str, Any]], resource: Optional[str] = None) -> List[str]:
    """Addresses of the workers to run agents on (sorted), from ``scheduler_info()["workers"]``."""
    if not workers:
        raise IOBenchError("iobench: the cluster has no workers")
    if resource in (None, ""):
        return sorted(workers)
    resource = str(resource)
    chosen = sorted(a for a, info in workers.items() if float((info.get("resources") or {}).get(resource, 0)) > 0)
    if not chosen:
        have = sorted({str(r) for info in workers.values() for r in (info.get("resources") or {})})
        raise IOBenchError(
            f"iobench: no worker advertises resource {resource!r} (trial.resource={resource}); the "
            f"{len(workers)} worker(s) advertise {have if have else 'no resources'}. Start storage workers "
            f"with `dask worker ... --resources \"{resource}=1\"` or set trial.resource=null for all workers"
        )
    return chosen


def _agent_failure(failures: List[Tuple[str, BaseException]], n: int) -> BaseException:
    """One exception for the agents that failed, grouped by message, keeping a shared type."""
    types = {type(exc) for _, exc in failures}
    by_msg: Dict[str, List[str]] = {}
    for addr, exc in failures:
        by_msg.setdefault(str(exc) if len(types) == 1 else f"{type(exc).__name__}: {exc}", []).append(addr)
    parts = [f"{msg} (on {', '.join(addrs)})" for msg, addrs in by_msg.items()]
    text = f"{len(failures)} of {n} agent(s) failed: " + "; ".join(parts)
    if len(types) == 1:
        (typ,) = types
        if typ in (FileNotFoundError, NotADirectoryError, PermissionError, ValueError, IOBenchError):
            return typ(text)
    return IOBenchError(text)


def _run_distributed(settings: Settings, path: Optional[str], resource: Optional[str], seed: Any,
                     token: str, ctx: Optional[live.TrialContext], exclusive: bool,
                     start_delay_s: float) -> List[Dict[str, Any]]:
    from distributed import Semaphore, wait, worker_client

    # worker_client secedes this task from the worker's thread pool (and rejoins
    # on exit), so the agent pinned to this very worker gets a thread.
    with worker_client() as client:
        addrs = select_workers(client.scheduler_info(n_workers=-1)["workers"], resource)  # fail fast
        sem = Semaphore(max_leases=1, name=SEMAPHORE_NAME) if exclusive else None
        if sem is not None:
            sem.acquire()  # one iobench trial on the cluster at a time
        try:
            if sem is not None:  # workers may have come or gone while this trial waited its turn
                addrs = select_workers(client.scheduler_info(n_workers=-1)["workers"], resource)
            start_at = time.time() + start_delay_s
            run = uuid.uuid4().hex[:8]
            futures = [
                client.submit(run_agent, settings, path, i, seed, token, start_at, ctx,
                              key=f"iobench-agent-{token}-{run}-{i}", workers=[addr], allow_other_workers=False,
                              pure=False, priority=AGENT_PRIORITY)
                for i, addr in enumerate(addrs)
            ]
            limit = start_delay_s + settings.duration_s + AGENT_GRACE_S
            try:
                wait(futures, timeout=limit)
            except TimeoutError:
                pass  # the agents still pending are reported below
            results, failures, lost = [], [], []
            for addr, fut in zip(addrs, futures):
                if fut.status == "finished":
                    results.append(fut.result())
                elif fut.status in ("error", "cancelled"):
                    try:
                        exc = fut.exception()
                    except BaseException as e:  # cancelled
                        exc = e
                    failures.append((addr, exc))
                else:
                    lost.append(addr)
                    fut.cancel()
            if lost:
                raise IOBenchError(f"iobench: agent(s) on {', '.join(lost)} did not finish within {limit:.0f}s "
                                   "(worker busy or lost); nothing was measured for them")
            if failures:
                raise _agent_failure(failures, len(addrs))
            return results
        finally:
            if sem is not None:
                sem.release()
                pc = getattr(sem, "refresh_callback", None)
                if pc is not None:  # its periodic lease refresh would otherwise live on
                    pc.stop()


def trial(duration_s: float = 3.0, concurrency: int = 2, mix: Optional[Mapping] = None,
          sizes: Sequence[Any] = (4096, 65536), size_weights: Optional[Sequence[Any]] = None,
          path: Optional[str] = None, resource: Optional[str] = None, prepare_objects: int = 8,
          fsync: bool = False, exclusive: bool = True, start_delay_s: float = 0.5,
          report_interval_s: float = 1.0, seed: int = 0) -> Dict[str, Any]:
    """One storage benchmark across the cluster's workers (see the module docstring).

    - ``duration_s``: seconds each agent runs the mix; ``concurrency``: threads per agent.
    - ``mix``: operation -> weight over write, read, list, delete (normalised).
    - ``sizes``: object sizes for writes (bytes, or ``4k``/``64KiB``/``1MiB``), drawn by
      ``size_weights`` or uniformly; ``prepare_objects``: objects each thread writes
      before the clock starts, so reads have something to read.
    - ``path``: directory the agents work below (each in a new directory of its own);
      null = each worker's system temp dir. ``fsync``: fsync every write.
    - ``resource``: only workers advertising this Dask resource (e.g. ``SSD``); null = all.
    - ``exclusive``: one iobench trial on the cluster at a time.
    - ``start_delay_s``: the agents start together this long after being submitted.
    """
    settings = make_settings(duration_s, concurrency, _plain(mix), _plain(sizes), _plain(size_weights),
                             prepare_objects, fsync, report_interval_s)
    start_delay_s = float(start_delay_s)
    if not (math.isfinite(start_delay_s) and start_delay_s >= 0):
        raise ValueError(f"iobench: trial.start_delay_s={start_delay_s!r} must be >= 0")
    path = None if path in (None, "") else str(path)
    resource = None if resource in (None, "") else str(resource)
    ctx = live.current()
    token = ctx.trial_id if ctx is not None else uuid.uuid4().hex[:16]
    try:
        from distributed import get_worker

        get_worker()
        on_worker = True
    except (ImportError, ValueError):
        on_worker = False
    if on_worker:
        if not _in_task_thread():
            raise IOBenchError(
                "iobench: the trial is not running in its Dask task's own thread (the experiment sets "
                "timeout_s, so daskbench calls it from a helper thread), so it cannot secede from the worker's "
                "thread pool and the agent pinned to its worker would wait for the thread the trial holds. "
                "Remove timeout_s (each agent stops after trial.duration_s anyway)")
        agents = _run_distributed(settings, path, resource, seed, token, ctx, bool(exclusive), start_delay_s)
    else:
        if resource is not None:
            raise IOBenchError(f"iobench: trial.resource={resource} needs a Dask cluster; this call runs "
                               "in-process (not on a Dask worker)")
        agents = [run_agent(settings, path, 0, seed, token, time.time() + min(start_delay_s, 0.05), ctx,
                            label="local")]
    return summarise(settings, agents)


def _in_task_thread() -> bool:
    """Whether this thread is the one Dask runs the task in (only that one can secede)."""
    try:
        from distributed.worker import thread_state
    except ImportError:
        return False
    return hasattr(thread_state, "start_time") and hasattr(thread_state, "key")


def _plain(value: Any) -> Any:
    """OmegaConf containers (when called through hydra.utils.call) as plain Python."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value
