"""The status page: ``/daskbench/status`` (HTML, refreshes itself) and ``/daskbench/status.json``.

Served by the scheduler's HTTP server (the dashboard port, under its prefix)
from the snapshot of the :class:`daskbench.observe.plugin.ObservePlugin`
registered at the time of the request; without one both answer 404.
"""

from __future__ import annotations

import collections
import html
import json
import time
from typing import Any, Callable, Dict, Optional

from tornado import web

#: the snapshot of the scheduler's observe plugin, or None when it has none
Snapshot = Callable[[Any], Optional[Dict[str, Any]]]


def add_routes(scheduler: Any, snapshot: Snapshot) -> None:
    """Serve the status page on the scheduler's HTTP server, once per scheduler;
    ``snapshot(scheduler)`` gives what a request shows."""
    app = getattr(scheduler, "http_application", None)
    if app is None or getattr(app, "_daskbench_routes", False):
        return  # no HTTP server: no page, and nothing else depends on it
    prefix = _http_prefix(app)
    kwargs = {"scheduler": scheduler, "snapshot": snapshot}
    # add_handlers puts these rules before distributed's catch-all ones
    app.add_handlers(
        r".*",
        [(prefix + "daskbench/status", StatusPage, kwargs), (prefix + "daskbench/status.json", StatusJSON, kwargs)],
    )
    app._daskbench_routes = True


def _http_prefix(app: Any) -> str:
    """The dashboard's URL prefix (``--dashboard-prefix``), read off its /metrics route."""
    for rule in getattr(app.default_router, "rules", []):
        for sub in getattr(rule.target, "rules", []):
            pattern = getattr(getattr(sub.matcher, "regex", None), "pattern", "")
            if pattern.endswith("metrics$") and "/" in pattern:
                return pattern[: -len("metrics$")].rstrip("/") + "/"
    return "/"


class _Handler(web.RequestHandler):
    def initialize(self, scheduler: Any, snapshot: Snapshot) -> None:
        self.scheduler, self.snapshot = scheduler, snapshot

    def _snapshot(self) -> Optional[Dict[str, Any]]:
        return self.snapshot(self.scheduler)

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")


class StatusJSON(_Handler):
    """``GET /daskbench/status.json``: the sweeps this scheduler has seen."""

    def get(self) -> None:
        snap = self._snapshot()
        if snap is None:
            raise web.HTTPError(404, "the daskbench-observe plugin is not installed")
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(snap, default=str))


class StatusPage(_Handler):
    """``GET /daskbench/status``: the same as a page that refreshes itself every 2 s."""

    def get(self) -> None:
        snap = self._snapshot()
        if snap is None:
            raise web.HTTPError(404, "the daskbench-observe plugin is not installed")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(render_html(snap))


# -- the page --------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px 32px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#656d76;margin-bottom:18px}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:6px}
table{border-collapse:collapse;width:100%}
th,td{padding:7px 10px;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:middle}
th{background:#f6f8fa;font-weight:600;font-size:13px;color:#424a53}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{width:180px;height:12px;background:#eaeef2;border-radius:6px;overflow:hidden;display:inline-block;vertical-align:middle}
.bar{display:inline-flex}.bar span{display:block;height:100%;background:#2da44e}.bar span.bad{background:#cf222e}
.bar span.skip{background:#8c959f}
.pt{font-size:12px;color:#424a53;margin-left:8px;font-variant-numeric:tabular-nums}
.st{padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.running{background:#0969da}.finished{background:#1a7f37}.lost{background:#9a6700}
.failed{color:#cf222e;font-weight:600}.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.err{max-width:640px;white-space:pre-wrap;word-break:break-word}.dim{color:#656d76}
"""


# Refresh in place, not by navigating (meta refresh): the scroll position stays,
# and headless browsers given a virtual time budget do not reload for ever.
_REFRESH = (
    '<noscript><meta http-equiv="refresh" content="2"></noscript><script>'
    'setInterval(function(){fetch(location.href,{cache:"no-store"}).then(function(r){return r.text()})'
    '.then(function(t){document.body.replaceWith(new DOMParser().parseFromString(t,"text/html").body)})'
    ".catch(function(){})},2000)</script>"
)


def _when(t: Optional[float]) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def _eta(r: Dict[str, Any]) -> str:
    left = (r["total"] or 0) - r["done"] - r["skipped"]
    if r["state"] != "running" or left <= 0 or r["rate"] <= 0:
        return ""
    secs = int(left / r["rate"])
    return f'<br><span class="dim">ETA {secs // 3600}:{secs // 60 % 60:02d}:{secs % 60:02d}</span>'


def _row(r: Dict[str, Any]) -> str:
    e = html.escape
    total = r["total"]
    done = r["done"] + r["skipped"]
    # one segment per outcome: a few failures must not paint the whole bar red
    scale = 100.0 / max(total or done or 1, done, 1)
    bar = "".join(
        f'<span class="{cls}" style="width:{n * scale:.2f}%"></span>'
        for cls, n in (("skip", r["skipped"]), ("", r["ok"]), ("bad", r["failed"]))
        if n
    )
    prog = f"{done}/{total}" if total is not None else f"{done}/?"
    other = {k: v for k, v in r["counts"].items() if k not in ("ok", "failed") and v}
    shown = ", ".join(f"{v} {e(k)}" for k, v in sorted(other.items()))
    detail = f' <span class="dim">({shown})</span>' if other else ""
    live = [f"{e(k)}={m['last']:.4g}" for k, m in list(r["live"]["metrics"].items())[:3]]
    if r["ticks_per_s"] is not None:
        tps = r["ticks_per_s"]
        live.append(f"{tps:,.0f} ticks/s" if abs(tps) >= 100 else f"{tps:.3g} ticks/s")
    skipped = f'<br><span class="dim">{r["skipped"]} skipped (already ok)</span>' if r["skipped"] else ""
    return (
        f'<tr><td><b>{e(r["experiment"])}</b><br><span class="mono dim">{e(r["run_id"])}</span></td>'
        f'<td><span class="st {e(r["state"])}">{e(r["state"])}</span></td>'
        f'<td><span class="bar">{bar}</span>'
        f'<span class="pt">{prog}</span>{skipped}</td>'
        f'<td class="n">{r["ok"]}</td><td class="n{" failed" if r["failed"] else ""}">{r["failed"]}{detail}</td>'
        f'<td class="n">{r["rate"]:.1f}/s{_eta(r)}</td><td>{_when(r["started"])}</td>'
        f'<td class="mono">{e(r["results"])}</td><td class="mono">{" ".join(live)}</td></tr>'
    )


def render_html(snap: Dict[str, Any]) -> str:
    """The status page for a :meth:`ObservePlugin.snapshot`; all text is escaped."""
    e = html.escape
    parts = [
        '<!DOCTYPE html><html><head><meta charset="utf-8">',
        f"<title>daskbench status</title><style>{_CSS}</style>{_REFRESH}</head><body>",
        "<h1>daskbench sweeps</h1>",
        f'<div class="sub">scheduler <span class="mono">{e(snap["scheduler"])}</span> · '
        f'updated {_when(snap["time"])} · refreshes every 2 s · <a href="status.json">JSON</a></div>',
    ]
    if not snap["prometheus"]:
        parts.append(
            '<p class="note">prometheus_client is not installed on the scheduler: '
            "/metrics has no daskbench_* metrics.</p>"
        )
    if snap["runs"]:
        states = collections.Counter(r["state"] for r in snap["runs"])
        parts.append(f'<div class="sub">{" · ".join(f"{n} {e(k)}" for k, n in sorted(states.items()))}</div>')
        parts.append(
            "<table><tr><th>Experiment</th><th>State</th><th>Progress</th><th>OK</th><th>Failed</th>"
            "<th>Rate</th><th>Started</th><th>Results</th><th>Live</th></tr>"
        )
        parts.extend(_row(r) for r in snap["runs"])
        parts.append("</table>")
    else:
        parts.append('<p class="dim">No sweep has run on this scheduler yet.</p>')
    parts.append("<h2>Recent failures</h2>")
    if snap["failures"]:
        parts.append("<table><tr><th>Time</th><th>Experiment</th><th>Trial</th><th>Error</th></tr>")
        parts.extend(
            f"<tr><td>{_when(f['time'])}</td><td>{e(f['experiment'])}</td>"
            f'<td class="mono">{e(f["trial_id"])}</td><td class="mono err">{e(f["error"])}</td></tr>'
            for f in snap["failures"]
        )
        parts.append("</table>")
    else:
        parts.append('<p class="dim">None.</p>')
    parts.append("</body></html>")
    return "".join(parts)
