"""A LocalCluster whose scheduler runs in a process of its own, forked by the fork server.

A ``distributed.LocalCluster`` runs its scheduler, Bokeh dashboard included, in
the driver's process: importing the dashboard (~0.5-1 s of CPU) and every task
transition of the run then hold the driver's GIL, beside Hydra's composition,
the client and the result store, while the machine's other cores wait. Here the
scheduler is one more child of the fork server (:mod:`.workers`), like the
workers: it imports nothing (the server preloaded distributed) and works on
another core. Its dashboard is served from the start and its Bokeh code loaded
on the first visit (:mod:`.lazy_dashboard`).

The cluster is otherwise the LocalCluster it was (same options, nannies in the
driver, same ``dashboard_link``, ``close``, ``adapt``); the scheduler process
takes the driver's Dask config as it is when the cluster starts, as the
workers do, and ends with the driver (distributed's ``AsyncProcess`` watches
the parent and exits when it is gone). Only a ``processes=True`` cluster with
``cluster.start_method=forkserver`` is built this way: a fork of the threaded
driver would not be safe, and a spawned interpreter would import all again.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any, Dict, Optional

import dask
from distributed import LocalCluster, Scheduler
from distributed.deploy.spec import ProcessInterface
from distributed.process import AsyncProcess
from distributed.utils import get_mp_context

from .lazy_dashboard import LazyDashboard, can_load

logger = logging.getLogger("distributed.scheduler")

#: seconds to wait for the scheduler process to say its address
START_TIMEOUT_S = 60.0


class SchedulerProcess(ProcessInterface):
    """``SpecCluster``'s scheduler entry: a ``distributed.Scheduler`` in a child process."""

    def __init__(self, silence_logs: Optional[int] = None, **options: Any) -> None:
        super().__init__()
        self._options = options
        self._silence_logs = silence_logs
        self._process: Optional[AsyncProcess] = None

    async def start(self) -> None:
        ctx = get_mp_context()  # the fork server (the cluster's Dask config says so)
        reader, writer = ctx.Pipe(duplex=False)
        config = dask.config.config  # e.g. allowed-failures and log lengths set for this cluster
        self._process = AsyncProcess(
            target=_serve, name="daskbench-scheduler", args=(self._options, config, self._silence_logs, writer)
        )
        await self._process.start()
        writer.close()
        try:
            msg = await _receive(reader, self._process)
        finally:
            reader.close()
        if "error" in msg:
            await self.close()
            raise RuntimeError(f"the scheduler did not start: {msg['error']}")
        self.address = msg["address"]
        for text in msg.get("warnings", ()):  # logged as the cluster's messages are (silenced unless asked)
            logger.warning("scheduler: %s", text)
        await super().start()

    async def close(self) -> None:
        """Wait for the scheduler to end (the cluster asked it to terminate); stop it if it does not."""
        process, self._process = self._process, None
        if process is not None:
            await process.join(timeout=5)
            if process.is_alive():
                await process.terminate()
                await process.join(timeout=5)
            process.close()
        await super().close()


async def _receive(reader: Any, process: AsyncProcess) -> Dict[str, Any]:
    """The scheduler's first message; an error if the process ends or stays silent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while not reader.poll():
        if not process.is_alive() and not reader.poll():
            return {"error": f"its process ended with status {process.exitcode}"}
        if loop.time() > deadline:
            return {"error": f"no address within {START_TIMEOUT_S:g}s"}
        await asyncio.sleep(0.005)
    try:
        return dict(reader.recv())
    except EOFError:
        return {"error": f"its process ended with status {process.exitcode}"}


def _serve(options: Dict[str, Any], config: Dict[str, Any], silence_logs: Optional[int], writer: Any) -> None:
    """The scheduler process: start the Scheduler, send its address, serve until told to end."""
    dask.config.set(config)
    if silence_logs:
        logging.getLogger("distributed").setLevel(silence_logs)
    try:
        asyncio.run(_run(options, writer))
    finally:
        writer.close()


async def _run(options: Dict[str, Any], writer: Any) -> None:
    # the dashboard is served from the start and loaded on its first visit (.lazy_dashboard);
    # without Bokeh, distributed's own "install bokeh" page stands in, as it would
    lazy = bool(options.get("dashboard")) and can_load()
    try:
        with warnings.catch_warnings(record=True) as caught:  # e.g. "Port 8787 is already in use"
            warnings.simplefilter("always")
            scheduler = await Scheduler(**(dict(options, dashboard=False) if lazy else options))
    except Exception as exc:
        writer.send({"error": f"{type(exc).__name__}: {exc}"})
        return
    if lazy:
        LazyDashboard(scheduler, options.get("http_prefix", "/")).install()
    writer.send({"address": scheduler.address, "warnings": [str(w.message) for w in caught]})
    await scheduler.finished()


class ForkedSchedulerCluster(LocalCluster):
    """A LocalCluster whose scheduler is a :class:`SchedulerProcess`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._daskbench_silence = kwargs.get("silence_logs")
        super().__init__(*args, **kwargs)

    async def _start(self) -> None:
        spec = self.scheduler_spec
        if self.scheduler is None and spec is not None and spec.get("cls") is Scheduler:
            options = dict(spec.get("options") or {}, silence_logs=self._daskbench_silence)
            self.scheduler_spec = {"cls": SchedulerProcess, "options": options}
        await super()._start()
