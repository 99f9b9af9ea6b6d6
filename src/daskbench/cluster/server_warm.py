"""Imported by the fork server after distributed (:data:`.workers.PRELOAD`): what every
process it forks would otherwise do again as it starts, done once here and inherited.

- The modules of the HTTP routes a scheduler and each worker serve
  (``distributed.scheduler.http.routes``, ``distributed.worker.http.routes``): the
  scheduler and each worker import them as their HTTP server starts, Prometheus'
  client among them (~0.1 s each, before the scheduler can answer or a worker join).
- The package versions a worker sends the scheduler when it registers and a client
  when it connects (``distributed.versions.get_versions``: ``importlib.metadata``
  look-ups and ``uname -p``, cached per process; ~0.1 s in each worker otherwise).

Neither starts a thread, so the server stays single-threaded for its forks. A route
that fails to import here is left to the process that needs it, which reports it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging

import dask
from distributed.versions import get_versions

ROUTES = ("distributed.scheduler.http.routes", "distributed.worker.http.routes")


def warm() -> None:
    """Import the HTTP routes' modules and fill distributed's cache of package versions."""
    # a route's notice at import (distributed.http.proxy: "please install jupyter-server-proxy")
    # is for the process that serves it, where the cluster's log level silences it
    log = logging.getLogger("distributed")
    previous = log.level
    log.setLevel(logging.ERROR)
    try:
        for key in ROUTES:
            for name in dask.config.get(key, default=None) or ():
                with contextlib.suppress(Exception):
                    importlib.import_module(name)
    finally:
        log.setLevel(previous)
    get_versions()


warm()
