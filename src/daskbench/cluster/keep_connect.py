"""The kept cluster seen from a run: a Client on it (made early, in a thread, on the driver
zygote's child: :func:`connect_early`), and the user's changed modules its long-lived
workers forget so the run imports them afresh (:func:`fresh_user_modules`)."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from . import keep_state as ks

CONNECT_TIMEOUT_S = 5.0


def connect_to(kept: ks.Kept) -> Any:
    """A Client on the kept cluster (OSError, TimeoutError or ValueError if it does not answer)."""
    from distributed import Client

    return Client(kept.address, timeout=f"{CONNECT_TIMEOUT_S:g}s")


class _Early:
    """A Client on the kept cluster made in a thread while the command composes its config
    (:func:`connect_early`), with the modules its workers dropped (:func:`fresh_user_modules`)."""

    def __init__(self, kept: ks.Kept) -> None:
        self.token = kept.token
        self.client: Any = None
        self.error: Optional[BaseException] = None
        self.dropped: List[str] = []
        self.used = False
        self.thread = threading.Thread(target=self._connect, args=(kept,), name="daskbench-kept-connect", daemon=True)
        self.thread.start()

    def _connect(self, kept: ks.Kept) -> None:
        try:
            self.client = connect_to(kept)
        except Exception as exc:  # raised again by take(), in the run's thread
            self.error = exc
            return
        self.dropped = fresh_on_workers(self.client)

    def take(self, kept: ks.Kept) -> Tuple[Any, Optional[List[str]]]:
        """(the client, the modules dropped) if it is on ``kept``; (None, None) for another
        cluster; the connection's error if it did not connect."""
        self.thread.join()
        client, self.client = self.client, None
        if kept.token != self.token:
            self._close(client)
            return None, None
        if self.error is not None:
            raise self.error
        self.used = True
        return client, self.dropped

    def close_unused(self) -> None:
        if self.used:
            return
        self.thread.join()
        self._close(self.client)

    @staticmethod
    def _close(client: Any) -> None:
        if client is not None:
            logging.getLogger("distributed").setLevel(logging.CRITICAL)
            with contextlib.suppress(Exception):
                client.close(timeout=10)


_early: List[_Early] = []


def take_early(kept: ks.Kept) -> Tuple[Any, Optional[List[str]]]:
    """(the client :func:`connect_early` made for ``kept``, the modules its workers dropped),
    or (None, None) when none was made for it; what :func:`connect_to` raises if it could
    not connect."""
    return _early.pop().take(kept) if _early else (None, None)


def connect_early(kept: ks.Kept) -> None:
    """On the driver zygote's child, before the command runs: connect to ``kept`` now, in a
    thread, so a run that uses it finds its Client ready after composing; a command that
    does not (``--dry-run``, other cluster settings) closes it at exit."""
    early = _Early(kept)
    _early.append(early)
    atexit.register(early.close_unused)


def fresh_on_workers(client: Any) -> List[str]:
    """The user's modules the kept cluster's workers dropped to import them afresh."""
    try:
        return sorted({m for names in client.run(fresh_user_modules).values() for m in names})
    except Exception:  # best effort: a worker that cannot answer reloads nothing
        return []


def fresh_user_modules() -> List[str]:
    """On a worker: forget the user's modules whose file changed since this worker
    imported them, so the run imports the edited code (installed packages, the
    standard library and daskbench, dask and distributed themselves are kept)."""
    import sysconfig

    import psutil

    keep = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    started = psutil.Process().create_time()  # a module first seen was imported after this
    now = time.time()
    dropped = []
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        top = name.partition(".")[0]
        if not path or not path.endswith(".py") or top in _NEVER or any(path.startswith(k) for k in keep):
            continue
        try:
            changed = os.stat(path).st_mtime > _RELOADED.get(name, started)
        except OSError:
            continue
        if changed:
            del sys.modules[name]
            _RELOADED[name] = now  # imported afresh after this
            dropped.append(name)
    invoke = sys.modules.get("daskbench.runner.invoke")
    if dropped and invoke is not None:
        invoke.resolve_target.cache_clear()  # it holds the trial functions it imported
    return dropped


_NEVER = {"daskbench", "dask", "distributed", "__main__", "__mp_main__"}
#: on a worker: module name -> when fresh_user_modules last dropped it
_RELOADED: Dict[str, float] = {}
