"""Whether a cluster's dashboard link leads anywhere.

``Client.dashboard_link`` names the scheduler's HTTP port whether or not it
serves the dashboard: a scheduler started with ``dask scheduler --no-dashboard``
(or a LocalCluster with ``dashboard_address: null``) still serves ``/metrics``
and ``/health`` there, and ``scheduler_info()["services"]`` lists that port as
``dashboard`` either way. So the link itself is asked, with a ``HEAD`` request
(Bokeh answers it without building a page): 404 means there is no dashboard.
The answer is kept per link and scheduler (``scheduler_id``, when the caller has it):
a process that runs sweep after sweep on one client asks once.
"""

from __future__ import annotations

import http.client
import ssl
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

#: seconds to wait for the scheduler's HTTP server before printing the link untested
PROBE_TIMEOUT_S = 2.0

#: (link, scheduler id) -> whether the link leads to a dashboard, for the last few schedulers
_known: Dict[Tuple[str, str], bool] = {}


def dashboard_link(client: Any, scheduler_id: Optional[str] = None) -> Optional[str]:
    """The client's dashboard link, or None when its scheduler serves no dashboard there.

    A link that cannot be asked (no answer in :data:`PROBE_TIMEOUT_S`, a port
    reachable only from elsewhere) is returned as it is: only a scheduler that
    says it has no such page loses the link.
    """
    try:
        link = client.dashboard_link
    except Exception:  # e.g. a format in distributed.dashboard.link naming a missing variable
        return None
    if not link:
        return None
    key = (link, scheduler_id) if scheduler_id else None
    if key is not None and key in _known:
        return link if _known[key] else None
    status = _status(link)
    if key is not None and status is not None:  # an answer, not a timeout: kept
        if len(_known) >= 16:
            _known.clear()
        _known[key] = status != 404
    return None if status == 404 else link


def _status(link: str) -> Optional[int]:
    """The HTTP status of ``HEAD link``, or None if it cannot be had."""
    try:
        url = urlsplit(link)
        if url.scheme == "https":
            # only whether the page exists is asked, nothing is sent: a dashboard's
            # self-signed certificate (distributed.scheduler.dashboard.tls) is fine
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname or "", url.port, timeout=PROBE_TIMEOUT_S, context=context
            )
        elif url.scheme == "http":
            conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=PROBE_TIMEOUT_S)
        else:
            return None
        try:
            conn.request("HEAD", (url.path or "/") + (f"?{url.query}" if url.query else ""))
            return conn.getresponse().status
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ValueError):
        return None
