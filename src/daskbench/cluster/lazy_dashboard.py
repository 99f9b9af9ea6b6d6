"""The scheduler's Bokeh dashboard, loaded on its first visit.

Importing distributed's dashboard (Bokeh and its models, ~0.5-1 s of CPU) and
building its applications is what a ``Scheduler(dashboard=True)`` does before it
listens; on 2 cores that is ~0.45 s of a 2.7 s command whose dashboard nobody
opened. The scheduler of :mod:`.scheduler_process` therefore starts with its HTTP
server (``/metrics``, ``/health``, daskbench's status page: the dashboard port) and
this stand-in behind distributed's own routes: the first request none of those
answers imports the dashboard in a thread (the scheduler keeps working meanwhile),
connects it to the HTTP server exactly as ``Scheduler`` would have, and sends the
browser back to the same address, which the dashboard now serves. A ``HEAD`` of the
dashboard's page (how :func:`.dashboard.dashboard_link` asks whether there is one)
is answered without loading anything.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from typing import Any, Optional

from tornado import web

#: what the dashboard imports; connecting it to a scheduler is its ``connect``
MODULE = "distributed.dashboard.scheduler"


def can_load() -> bool:
    """Whether the dashboard could be loaded (Bokeh installed); found without importing it."""
    return importlib.util.find_spec("bokeh") is not None


class LazyDashboard(web.Application):
    """Stands in for the dashboard in ``scheduler.http_application`` until a page is asked for."""

    def __init__(self, scheduler: Any, prefix: Optional[str]) -> None:
        super().__init__([(r".*", _Load, {"owner": self})])
        self.scheduler = scheduler
        self.prefix = prefix or ""
        root = "/" + self.prefix.strip("/")
        #: the pages whose existence a HEAD may learn without loading the dashboard
        self.pages = {root.rstrip("/") + "/status", root}
        self._loading: Optional[asyncio.Future[None]] = None

    def install(self) -> None:
        """Tried after the scheduler's own routes (distributed's ``RoutingApplication``)."""
        self.scheduler.http_application.add_application(self)

    async def load(self) -> None:
        """Import and connect the dashboard, once, whoever asks first."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        await asyncio.shield(self._loading)

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            module = await loop.run_in_executor(None, importlib.import_module, MODULE)
            app = self.scheduler.http_application
            module.connect(app, self.scheduler.http_server, self.scheduler, prefix=self.prefix)
        except BaseException:
            self._loading = None  # the next visit tries again
            raise
        if self in app.applications:
            app.applications.remove(self)


class _Load(web.RequestHandler):
    """Any request the scheduler's own routes do not answer, while the dashboard is not loaded."""

    def initialize(self, owner: LazyDashboard) -> None:
        self.owner = owner

    async def head(self) -> None:
        if self.request.path in self.owner.pages:
            self.set_status(200)  # the page exists (it loads on a GET): nothing imported for a probe
            return
        await self.get()

    async def get(self) -> None:
        try:
            await self.owner.load()
        except Exception as exc:
            self.set_status(503)
            self.finish(f"the dashboard could not be loaded: {type(exc).__name__}: {exc}")
            return
        self.redirect(self.request.uri or "/", status=307)  # asked again: the dashboard answers now
