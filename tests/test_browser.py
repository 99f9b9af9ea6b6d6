"""Headless Chromium renders the Dask dashboard and daskbench's status page.

A real LocalCluster with the observe plugin and a few sweep events; Chromium
takes screenshots (checked to be PNGs of the window size with more than one
colour) and dumps the status page's DOM. Set ``DASKBENCH_SCREENSHOTS=DIR`` to
keep the screenshots for a look.
"""

from __future__ import annotations

import contextlib
import html
import http.server
import os
import shutil
import struct
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from distributed import Client, LocalCluster, get_worker

from daskbench.observe.plugin import ObservePlugin

CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1280, 900

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
)


def _chunk(experiment: str, run_id: str, counts: dict, errors: list) -> None:
    get_worker().log_event(
        "daskbench-trials",
        {
            "experiment": experiment,
            "run_id": run_id,
            "time": time.time(),
            "counts": counts,
            "durations": [0.05] * sum(counts.values()),
            "errors": errors,
        },
    )
    get_worker().log_event(
        "daskbench-live",
        {
            "experiment": experiment,
            "run_id": run_id,
            "trial_id": "t0",
            "time": time.time(),
            "metrics": {"loss": 0.125},
            "rejected": {},
        },
    )


@contextlib.contextmanager
def _client(kind: str) -> Iterator[Tuple[Client, str]]:
    """A client of distributed's own LocalCluster, or of the one daskbench starts (its
    scheduler in a process of its own, the dashboard loaded on the first visit), and
    the dashboard's base URL."""
    if kind == "daskbench":
        from daskbench.cluster.create import connect
        from daskbench.config.schema import LocalClusterConfig

        with connect(LocalClusterConfig(n_workers=2, dashboard_address="127.0.0.1:0")) as client:
            yield client, client.dashboard_link.rsplit("/", 1)[0]
        return
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client, f"http://127.0.0.1:{cluster.scheduler.http_server.port}"


@pytest.fixture(scope="module", params=["distributed", "daskbench"])
def dashboard(request):
    """Base URL of a LocalCluster's dashboard with one running and one finished sweep."""
    with _client(request.param) as (client, base):
        client.register_plugin(ObservePlugin())
        now = time.time()
        client.log_event(
            "daskbench-sweep",
            {
                "event": "start",
                "experiment": "queue_sweep",
                "run_id": "3f2a9c",
                "time": now,
                "total": 144,
                "results": "results/queue_sweep",
                "counts": {},
            },
        )
        client.log_event(
            "daskbench-sweep",
            {
                "event": "start",
                "experiment": "boltzmann",
                "run_id": "77d1e0",
                "time": now,
                "total": 20,
                "results": "results/boltzmann",
                "counts": {},
            },
        )
        client.gather(
            [
                client.submit(
                    _chunk,
                    "queue_sweep",
                    "3f2a9c",
                    {"ok": 58, "failed": 2},
                    [
                        ["6ad5b7a9e726a9c8", "ValueError: rho=1.2 makes the queue unstable"],
                        ["91c3e0d2aa0b7f15", "ZeroDivisionError: division by zero"],
                    ],
                    pure=False,
                ),
                client.submit(_chunk, "boltzmann", "77d1e0", {"ok": 20}, [], pure=False),
            ]
        )
        client.log_event(
            "daskbench-sweep",
            {
                "event": "end",
                "experiment": "boltzmann",
                "run_id": "77d1e0",
                "time": time.time(),
                "total": 20,
                "results": "results/boltzmann",
                "counts": {"ok": 20, "failed": 0, "timeout": 0, "cancelled": 0, "skipped": 0},
            },
        )
        deadline = time.monotonic() + 15
        while b"6ad5b7a9e726a9c8" not in urllib.request.urlopen(base + "/daskbench/status.json").read():
            assert time.monotonic() < deadline, "the events never reached the scheduler"
            time.sleep(0.1)
        yield base


def chromium(tmp_path: Path, url: str, *extra: str, timeout: float = 90) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
        "--virtual-time-budget=5000",
        *extra,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def held_open(url: str, seconds: float) -> Iterator[str]:
    """A page showing ``url`` full-window whose load event comes ``seconds`` later.

    The Dask dashboard draws its plots only once Bokeh's websocket has sent the
    document. Chromium's virtual time runs ahead of such messages, so a plain
    screenshot shows the navigation bar alone; a pending image stalls virtual
    time and delays the load event, giving Bokeh real seconds to draw.
    """
    page = (
        f"<!DOCTYPE html><html><head><style>html,body{{margin:0;height:100%;overflow:hidden}}"
        f"iframe{{border:0;width:100%;height:100%;display:block}}</style></head><body>"
        f'<iframe src="{html.escape(url)}"></iframe>'
        f'<img src="/wait" alt="" style="position:absolute;width:1px;height:1px;opacity:0"></body></html>'
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/wait":
                time.sleep(seconds)
                body, ctype = b"", "image/gif"
            else:
                body, ctype = page.encode(), "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def png_size(path: Path) -> Tuple[int, int]:
    """Width and height from the PNG signature and IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def screenshot(tmp_path: Path, url: str, name: str) -> Path:
    png = tmp_path / f"{name}.png"
    proc = chromium(tmp_path, url, f"--screenshot={png}")
    assert png.exists(), f"no screenshot of {url}: {proc.stderr[-2000:]}"
    keep = os.environ.get("DASKBENCH_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(png, os.path.join(keep, png.name))
    return png


def variance(png: Path, top: int = 0) -> float:
    """Pixel variance of the screenshot below row ``top`` (0: one colour)."""
    mpimg = pytest.importorskip("matplotlib.image")
    pixels = mpimg.imread(str(png))
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    return float(pixels[top:, :, :3].var())


def test_dask_dashboard_status_page_renders(dashboard, tmp_path):
    nav = 60  # the dashboard's navigation bar is plain HTML; below it Bokeh draws
    for seconds in (4, 10):  # a slow machine gets a second, longer chance
        with held_open(dashboard + "/status", seconds) as url:
            png = screenshot(tmp_path, url, "dask-status")
        assert png_size(png) == (WIDTH, HEIGHT)
        if variance(png, top=nav) > 0:
            break
    assert variance(png) > 0, f"{png} is a single colour"
    assert variance(png, top=nav) > 0, "the dashboard's Bokeh plots were not drawn"


def test_daskbench_status_page_renders(dashboard, tmp_path):
    png = screenshot(tmp_path, dashboard + "/daskbench/status", "daskbench-status")
    assert png_size(png) == (WIDTH, HEIGHT)
    assert variance(png) > 0, f"{png} is a single colour"

    proc = chromium(tmp_path, dashboard + "/daskbench/status", "--dump-dom")
    dom = proc.stdout
    assert "queue_sweep" in dom and "boltzmann" in dom, proc.stderr[-2000:]
    rows: List[str] = [r for r in dom.split("<tr>") if "6ad5b7a9e726a9c8" in r]
    assert rows and "rho=1.2 makes the queue unstable" in rows[0]  # a failure row: trial id beside its error
    assert "60/144" in dom and "finished" in dom and "running" in dom
