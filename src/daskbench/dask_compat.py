"""The private parts of Dask daskbench relies on, each behind one small function.

Used by the runner, the clusters and the observation side alike (so it sits at
the top of the package, beside ``errors``, and imports nothing of daskbench).
Each function here says
which private name it reads, why nothing public does the job, and what it does
when a Dask release renames it (it degrades; it never fails a run). Checked
against distributed 2026.8 and dask-kubernetes 2026.3.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, List, Optional


def topic_handler(client: Any, topic: str) -> Optional[Callable[[Any], Any]]:
    """The handler ``client.subscribe_topic(topic, ...)`` installed, or None.

    ``Client`` has ``subscribe_topic`` and ``unsubscribe_topic`` but no way to
    read the handler a topic has, and subscribing again replaces it: the runner
    needs it to chain its own handler after a user's on their own client. Reads
    ``Client._event_handlers``; without it, the runner's handler replaces the
    user's (as ``subscribe_topic`` itself would).
    """
    handlers = getattr(client, "_event_handlers", None)
    handler = handlers.get(topic) if isinstance(handlers, dict) else None
    return None if handler is _unsubscribed else handler


def unsubscribe(client: Any, topic: str) -> None:
    """``client.unsubscribe_topic(topic)``, and forget its handler.

    ``Client.unsubscribe_topic`` tells the scheduler but keeps the handler in
    ``Client._event_handlers``: a second run on the same client would take the
    first run's handler for a user's and subscribe it again, and the scheduler
    would then write to the closing client at close ("Closed comm ... remove-client").
    A no-op stands in for it (an event already on its way finds a handler, as
    ``Client._handle_event`` needs), which :func:`topic_handler` reads as none.
    """
    client.unsubscribe_topic(topic)
    handlers = getattr(client, "_event_handlers", None)
    if isinstance(handlers, dict) and topic in handlers:
        handlers[topic] = _unsubscribed


def _unsubscribed(event: Any) -> None:
    """The handler of a topic :func:`unsubscribe` left: events still on their way are dropped."""


def workers_now(client: Any) -> Dict[str, Dict[str, Any]]:
    """The workers the scheduler has now, by address, each as ``scheduler_info()`` gives it.

    ``Client.scheduler_info(n_workers=-1)`` asks the scheduler, stores the answer on the
    client and returns what is stored then; the client's own refresh every 2 s stores an
    identity without workers (``n_workers=0``), and when it lands in between, every worker
    looks gone. On a busy machine that happened often: a simulation of 128 shards on 2
    workers took its workers for lost and restarted from its checkpoint twice, on the same
    live workers. This asks the scheduler the same question (``client.scheduler.identity``,
    as ``scheduler_info``'s own docstring suggests) and returns its answer, not the cache.
    """
    info = client.sync(client.scheduler.identity, n_workers=-1)
    return dict(info.get("workers") or {})


def schedulers_in_this_process() -> List[Any]:
    """The ``distributed.Scheduler`` objects alive in this process.

    Prometheus' registry is process-wide, so one scrape of ``/metrics`` would
    show the daskbench numbers of every scheduler in the process (tests, a
    notebook's LocalCluster with ``processes=False``); telling whose loop a
    scrape runs on needs the list of schedulers, which distributed keeps in
    ``Scheduler._instances`` and publishes nowhere (distributed's own Prometheus
    handler rebinds its collectors per request through a private too). Without
    it: an empty list, and each scrape shows every scheduler's numbers.
    """
    from distributed.scheduler import Scheduler

    return list(getattr(Scheduler, "_instances", ()))


@contextlib.contextmanager
def kube_clusters_forgotten_on_failure() -> Iterator[None]:
    """Around ``KubeCluster(...)``: if it raises, drop the half-made object from the
    list dask-kubernetes closes at exit.

    ``KubeCluster.__init__`` adds itself to ``KubeCluster._instances`` before it
    talks to Kubernetes, and an ``atexit`` hook (``reap_clusters``) "closes" every
    instance with ``shutdown_on_close``, deleting the DaskCluster of that name,
    which after a failure such as "already exists" is someone else's. The
    constructor raised, so there is no object to set ``shutdown_on_close=False``
    on, and no public API reaches the list. Without the private: nothing dropped
    (dask-kubernetes' own behaviour).
    """
    from dask_kubernetes.operator import KubeCluster

    instances = getattr(KubeCluster, "_instances", None)
    before = set(instances) if instances is not None else set()
    try:
        yield
    except BaseException:
        if instances is not None:
            for half_made in set(instances) - before:
                instances.discard(half_made)
        raise


def keep_forkserver_preload() -> None:
    """Keep distributed from setting the fork server's preload list.

    ``distributed.utils.get_mp_context`` (the nannies call it) replaces the list
    once per process with distributed and every package it knows of, importing
    each in the caller first: pandas and numpy cost the driver ~0.5 s before its
    first worker starts. daskbench sets its own list (``cluster.workers.PRELOAD``)
    and marks distributed's as done through ``distributed.utils._forkserver_preload_set``;
    if a release renames the flag, distributed's list wins (slower, still correct).
    """
    import distributed.utils as du

    if hasattr(du, "_forkserver_preload_set"):
        du._forkserver_preload_set = True
