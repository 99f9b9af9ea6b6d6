"""Starting the embedded LocalCluster while the rest of the config is checked.

``build_plan`` hands the checked ``cluster`` section to :meth:`ClusterStart.begin`
before it checks the axes, imports the trial function and plans the sweep; with
``cluster.start_method=forkserver`` the cluster starts in a thread meanwhile (its
workers are forked by the single-threaded fork server, never by this threaded
process). A config mistake found afterwards still ends the command with its one
message: leaving the ``with ClusterStart(...)`` block closes what was started.
``fork`` and ``spawn`` start the cluster after the checks, from the main thread.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator, Optional

from ..config.schema import LocalClusterConfig
from .create import connect, warm_for_prepare


class ClusterStart:
    """The cluster of one run: the user's ``client``, or one started here (early when it can)."""

    def __init__(self, client: Any = None) -> None:
        self._given = client
        self._thread: Optional[threading.Thread] = None
        self._cm: Any = None
        self._client: Any = None
        self._error: Optional[BaseException] = None

    def __enter__(self) -> ClusterStart:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def own(self) -> bool:
        """Whether the cluster is daskbench's own (not the user's client)."""
        return self._given is None

    def begin(self, cfg: Any) -> None:
        """Start ``cfg``'s LocalCluster in a thread now, if it is one we may start early."""
        if self._given is not None or self._thread is not None:
            return
        if not isinstance(cfg, LocalClusterConfig) or cfg.start_method != "forkserver":
            return
        from .keep import is_kept
        from .workers import warm_up

        # not with a kept cluster: a fork server started for nothing would also hold the
        # command's stdout open for the second it takes to start (a pipe reader waits for it)
        if not is_kept():
            warm_up(cfg.start_method)  # main thread: workers ignore Ctrl-C
        self._thread = threading.Thread(target=self._start, args=(cfg,), name="daskbench-cluster-start", daemon=True)
        self._thread.start()

    def _start(self, cfg: LocalClusterConfig) -> None:
        try:
            cm = connect(cfg)
            self._client = cm.__enter__()
            self._cm = cm
        except BaseException as exc:  # raised again in the main thread by client()
            self._error = exc

    @contextlib.contextmanager
    def client(self, cfg: Any) -> Iterator[Any]:
        """The run's client: the user's, the one started early, or one started now; a
        cluster started here is closed when the block ends."""
        if self._given is not None:
            yield self._given
            return
        if self._thread is None:
            with connect(cfg) as client:
                yield client
            return
        if self._thread.is_alive():
            warm_for_prepare()  # while the cluster thread waits for its processes
        self._thread.join()
        if self._error is not None:
            raise self._error
        try:
            yield self._client
        finally:
            self.close()

    def close(self) -> None:
        """Close the cluster started early (waiting for its start to finish first)."""
        if self._thread is not None:
            self._thread.join()
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)
