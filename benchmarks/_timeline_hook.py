"""Milestone marks for ``benchmarks/timeline_cli.py`` (not part of the daskbench package).

Imported in the CLI's driver by the timeline script, and first in the fork server's
preload list: there it notes when each preloaded module is in, and in every process
the server forks it wraps the few distributed and daskbench functions whose start and
end are milestones (scheduler up, dashboard up, worker registered, each chunk). Each
mark is one line ``seconds-since-command-start pid role what`` appended to the file
named by ``DASKBENCH_TIMELINE``; ``DASKBENCH_TIMELINE_T0`` is the command's start
(``time.time()`` of the parent just before it started the command).
"""

from __future__ import annotations

import builtins
import functools
import os
import sys
import time
from typing import Any, Callable

FILE = os.environ.get("DASKBENCH_TIMELINE", "")
T0 = float(os.environ.get("DASKBENCH_TIMELINE_T0", "0") or 0)
ROLE = ["driver"]


def mark(what: str, role: str = "") -> None:
    """Append one milestone (nothing without ``DASKBENCH_TIMELINE``)."""
    if not FILE:
        return
    line = f"{time.time() - T0:.4f}\t{os.getpid()}\t{role or ROLE[0]}\t{what}\t{time.process_time():.3f}\n"
    fd = os.open(FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def wrap(owner: Any, name: str, before: str = "", after: str = "", role: str = "") -> None:
    """Mark ``before``/``after`` around ``owner.name`` (a function or a coroutine function)."""
    real = getattr(owner, name)
    if getattr(real, "_timeline", False):
        return
    import inspect

    if inspect.iscoroutinefunction(real):

        @functools.wraps(real)
        async def awrapper(*a: Any, **k: Any) -> Any:
            if role:
                ROLE[0] = role
            if before:
                mark(before)
            try:
                return await real(*a, **k)
            finally:
                if after:
                    mark(after)

        wrapper: Callable[..., Any] = awrapper
    else:

        @functools.wraps(real)
        def swrapper(*a: Any, **k: Any) -> Any:
            if role:
                ROLE[0] = role
            if before:
                mark(before)
            try:
                return real(*a, **k)
            finally:
                if after:
                    mark(after)

        wrapper = swrapper
    wrapper._timeline = True  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)


def _in_child() -> None:
    """In each process the server forks: which it is is known once it starts."""
    builtins.__import__ = _real_import
    ROLE[0] = "child"
    mark("forked from the server")
    from distributed.scheduler import Scheduler
    from distributed.worker import Worker

    wrap(Scheduler, "__init__", "Scheduler() begins", "Scheduler() built (HTTP + dashboard routes)", role="scheduler")
    wrap(Scheduler, "start_unsafe", "", "scheduler listening")
    wrap(Scheduler, "add_worker", "a worker registers", "")
    wrap(Worker, "start_unsafe", "worker starting", "worker registered", role="worker")
    if "distributed.dashboard.scheduler" in sys.modules:
        import distributed.dashboard.scheduler as ds

        wrap(ds, "connect", "dashboard connect begins", "dashboard connected")
    import daskbench.runner.execute as ex

    wrap(ex, "run_chunk", "chunk start", "chunk end")  # run_packed, the task, calls it


_real_import = builtins.__import__
_depth = [0]


def _marking_import(name: str, *a: Any, **k: Any) -> Any:
    _depth[0] += 1
    try:
        return _real_import(name, *a, **k)
    finally:
        _depth[0] -= 1
        if _depth[0] == 0:
            mark(f"preloaded {name}")


def _server() -> None:
    ROLE[0] = "forkserver"
    mark("first preload begins (interpreter up)")
    builtins.__import__ = _marking_import
    os.register_at_fork(after_in_child=_in_child)


if sys.argv[:1] == ["-c"] and "multiprocessing.forkserver" in sys.modules and FILE:
    _server()
