"""Workers of a cluster daskbench started ignore Ctrl-C.

A terminal sends SIGINT to the whole process group; the driver handles it
(cancel, save, shut the cluster down) and workers dying first would only
print tracebacks and fail the trials in flight. Workers started while the
driver ignores SIGINT inherit the ignore (:func:`sigint_ignored`); each worker
also sets it up itself as it starts (:class:`IgnoreSigint`, given to every
worker of the cluster, restarted and adaptive ones too). Small and preloaded by
the fork server (:data:`.workers.PRELOAD`): each worker unpickles the plugin.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

from distributed.diagnostics.plugin import WorkerPlugin


class IgnoreSigint(WorkerPlugin):
    """A worker plugin: the worker's process ignores SIGINT."""

    name = "daskbench-ignore-sigint"

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in this block (from the main thread; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
