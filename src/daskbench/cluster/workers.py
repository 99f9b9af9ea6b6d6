"""How a LocalCluster's worker processes are started: ``cluster.start_method``.

- ``forkserver`` (the default): a single-threaded server process, started from a
  fresh interpreter, imports Dask and daskbench's worker side once and forks
  each worker from itself. The fork happens in a process that runs no thread, so
  none of the hazards of forking a threaded process apply (a lock held by
  another thread at the fork stays locked in the child for ever), whatever the
  driver has imported or started. :func:`warm_up` starts the server as the
  command line begins, so its imports overlap the driver's own.
- ``fork``: each worker is a fork of the driver. Fastest, but the driver runs
  threads by then (distributed's event loop and its process watchers; maybe
  BLAS or OpenMP pools of the trial's module), so a worker can inherit a lock
  held by one of them and hang. For trial modules known to start no threads.
- ``spawn``: a fresh interpreter per worker (Dask's default): the slowest, and
  the most isolated.

Workers forked from the server ignore Ctrl-C from birth: the server is started
while the driver ignores SIGINT, and its children keep that disposition.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from typing import Dict, List

#: what the server imports before forking: a worker then starts without importing them
PRELOAD: List[str] = ["distributed", "distributed.nanny", "distributed.worker", "daskbench.runner.execute"]

_lock = threading.Lock()


def warm_up(method: str = "forkserver") -> None:
    """Start the fork server now (``method`` forkserver; else nothing), with the
    driver's SIGINT ignored so that the workers forked from it ignore it too.

    Only from the main thread: a worker thread cannot change signal handlers (the
    server started later by the first worker is covered by daskbench's
    ``IgnoreSigint`` worker plugin once each worker has joined).
    """
    if method != "forkserver" or threading.current_thread() is not threading.main_thread():
        return
    from multiprocessing import forkserver

    with _lock:
        multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            forkserver.ensure_running()  # fork + exec of a fresh interpreter: safe from a threaded process
        finally:
            signal.signal(signal.SIGINT, previous)


def dask_setting(method: str) -> Dict[str, str]:
    """The Dask config that makes a LocalCluster's nannies start workers with ``method``."""
    if method == "forkserver":
        warm_up(method)  # nothing when already running, or when called from a thread
        multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
        # distributed's own list would import pandas and numpy in the driver first (~0.5 s)
        from ..dask_compat import keep_forkserver_preload

        keep_forkserver_preload()
    return {"distributed.worker.multiprocessing-method": method}
