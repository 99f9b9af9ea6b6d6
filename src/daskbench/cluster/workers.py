"""How a LocalCluster's worker processes are started: ``cluster.start_method``.

- ``forkserver`` (the default): a single-threaded server process, started from a
  fresh interpreter, imports Dask and daskbench's worker side once and forks
  each worker from itself (and the scheduler: :mod:`.scheduler_process`). The
  fork happens in a process that runs no thread, so none of the hazards of
  forking a threaded process apply (a lock held by another thread at the fork
  stays locked in the child for ever), whatever the driver has imported or
  started. :func:`warm_up` starts the server as the command line begins, so its
  imports overlap the driver's own.
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
import os
import signal
import threading

TYPE_CHECKING = False  # not typing's: the command line imports this before it asks for the server
if TYPE_CHECKING:
    from typing import Dict, List

#: what the server imports before forking: a worker then starts without importing them,
#: and its first trial without importing what every trial needs (pyarrow and, through
#: pyarrow's conversion of Python values, pandas: ~0.4 s a worker otherwise)
PRELOAD: List[str] = [
    "daskbench.cluster.dask_import",  # distributed, with Dask's config files read by libyaml
    "daskbench.runner.execute",
    "daskbench.results.columns",
    "pandas",
    "daskbench.sim",
    "daskbench.cluster.sigint",  # the plugin each worker unpickles as it starts
    "daskbench.observe.plugin",  # the scheduler plugins the run installs (cluster.create.prepare)
    "daskbench.observe.scheduler_plugins",
    "daskbench.cluster.server_warm",  # what each fork would do again as it starts (HTTP routes, versions)
]
#: the server's environment while it starts: libraries that would start threads on import
#: do not (OpenBLAS through numpy, jemalloc through pyarrow), so that it forks from a
#: single-threaded process. One BLAS thread per worker is also what distributed gives its
#: workers (``distributed.nanny.pre-spawn-environ``).
QUIET_THREADS: Dict[str, str] = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
}

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
        multiprocessing.get_context("forkserver").set_forkserver_preload(_preload())
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        environ = {k: os.environ.get(k) for k in QUIET_THREADS}
        os.environ.update({k: v for k, v in QUIET_THREADS.items() if k not in os.environ})  # the user's own win
        try:
            forkserver.ensure_running()  # fork + exec of a fresh interpreter: safe from a threaded process
        finally:
            signal.signal(signal.SIGINT, previous)
            for k, v in environ.items():
                if v is None:
                    os.environ.pop(k, None)


def _preload() -> List[str]:
    # not the dashboard's Bokeh (~0.5-1 s): the scheduler loads it on its first visit (.lazy_dashboard)
    # the collector paused while the server imports, and its imports frozen for the forks
    return ["daskbench.cluster.server_gc", *PRELOAD, "daskbench.cluster.server_exit", "daskbench.cluster.server_ready"]


def dask_setting(method: str) -> Dict[str, str]:
    """The Dask config that makes a LocalCluster's nannies start workers with ``method``."""
    if method == "forkserver":
        warm_up(method)  # nothing when already running, or when called from a thread
        # from a thread, the server starts with the first worker: with this list (no-op once running)
        multiprocessing.get_context("forkserver").set_forkserver_preload(_preload())
        # distributed's own list would import pandas and numpy in the driver first (~0.5 s)
        from ..dask_compat import keep_forkserver_preload

        keep_forkserver_preload()
    return {"distributed.worker.multiprocessing-method": method}
