"""The dashboard of daskbench's LocalCluster is served from the start and loaded on its
first visit (cluster/lazy_dashboard.py): a real cluster, its scheduler in a process of
its own, real HTTP requests. (tests/test_browser.py renders the page it then serves.)"""

from __future__ import annotations

import sys
import threading
import urllib.error
import urllib.request

import pytest

from daskbench.cluster.create import connect
from daskbench.cluster.dashboard import dashboard_link
from daskbench.config.schema import LocalClusterConfig


def _bokeh_loaded() -> bool:
    return "bokeh" in sys.modules


def _get(url: str):
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.status, r.url, r.read()


@pytest.fixture(scope="module")
def cluster():
    with connect(LocalClusterConfig(n_workers=1, dashboard_address="127.0.0.1:0")) as client:
        yield client


def test_the_probe_finds_the_page_without_loading_the_dashboard(cluster):
    assert not cluster.run_on_scheduler(_bokeh_loaded)  # the scheduler started without Bokeh
    link = dashboard_link(cluster)  # HEAD of the page: the link is printed
    assert link == cluster.dashboard_link and link.endswith("/status")
    base = link.rsplit("/", 1)[0]
    assert _get(base + "/health")[0] == 200 and _get(base + "/metrics")[0] == 200  # served meanwhile
    assert not cluster.run_on_scheduler(_bokeh_loaded)


def test_the_first_visits_load_it_and_get_the_page(cluster):
    link = cluster.dashboard_link
    got: list = []
    visitors = [threading.Thread(target=lambda: got.append(_get(link))) for _ in range(3)]
    for v in visitors:  # at once: each waits for the one load and gets the page
        v.start()
    for v in visitors:
        v.join()
    assert len(got) == 3
    for status, url, body in got:
        assert status == 200 and url == link and b"Bokeh" in body
    assert cluster.run_on_scheduler(_bokeh_loaded)
    base = link.rsplit("/", 1)[0]
    status, url, body = _get(base + "/")  # the dashboard's own routes from now on
    assert status == 200 and url == link
    with pytest.raises(urllib.error.HTTPError) as missing:  # what neither serves is still a 404
        _get(base + "/no-such-page")
    assert missing.value.code == 404
    assert b"Bokeh" in _get(base + "/workers")[2]


def test_no_dashboard_stays_no_dashboard():
    with connect(LocalClusterConfig(n_workers=1, dashboard_address=None)) as client:
        assert dashboard_link(client) is None  # /status is a 404: nothing stands in for it
        assert not client.run_on_scheduler(_bokeh_loaded)
