"""The scheduler plugin behind /metrics' daskbench_* metrics and /daskbench/status.

Real LocalClusters (their scheduler lives in this process, as it does for every
test run): events are logged the way daskbench logs them, by the client and
from tasks on worker processes, and the scheduler's HTTP server is scraped.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import textwrap
import time
import urllib.request
from typing import Any, Callable, Dict, Iterator, Tuple

import pytest
from distributed import Client, LocalCluster, get_worker

from daskbench.observe import plugin as observe
from daskbench.observe.plugin import ObservePlugin

prometheus_parser = pytest.importorskip("prometheus_client.parser")

Samples = Dict[Tuple[str, frozenset], float]


@contextlib.contextmanager
def observed_cluster(**kw: Any) -> Iterator[Tuple[Client, str]]:
    """A 2-process LocalCluster with the plugin; yields (client, http base URL)."""
    kwargs = dict(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0")
    kwargs.update(kw)
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        client.register_plugin(ObservePlugin())
        port = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.http_server.port)
        yield client, f"http://127.0.0.1:{port}"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def scrape(base: str) -> Samples:
    """``/metrics`` as {(sample name, labels): value}, daskbench's samples only."""
    out: Samples = {}
    for fam in prometheus_parser.text_string_to_metric_families(get(base + "/metrics")):
        for s in fam.samples:
            if s.name.startswith("daskbench_"):
                out[s.name, frozenset(s.labels.items())] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), math.nan)


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Events reach the scheduler asynchronously (batched streams): poll."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.1)


def sweep_event(client: Client, event: str, experiment: str, run_id: str, total: int, **counts: int) -> None:
    """What the driver logs at the start and end of a sweep."""
    client.log_event(
        "daskbench-sweep",
        {
            "event": event,
            "experiment": experiment,
            "run_id": run_id,
            "time": time.time(),
            "total": total,
            "results": f"/data/results/{experiment}",
            "counts": counts,
        },
    )


def chunk_event(experiment: str, run_id: str, counts: Dict[str, int], durations: list, errors: list) -> str:
    """Runs on a worker: what the trial runner logs once per finished chunk."""
    w = get_worker()
    w.log_event(
        "daskbench-trials",
        {
            "experiment": experiment,
            "run_id": run_id,
            "time": time.time(),
            "counts": counts,
            "durations": durations,
            "errors": errors,
        },
    )
    return w.address


def live_event(experiment: str, run_id: str, trial_id: str, loss: float) -> None:
    get_worker().log_event(
        "daskbench-live",
        {
            "experiment": experiment,
            "run_id": run_id,
            "trial_id": trial_id,
            "time": time.time(),
            "metrics": {"loss": loss},
            "rejected": {},
        },
    )


def sim_event(experiment: str, run_id: str, ticks_per_s: float) -> None:
    get_worker().log_event("daskbench-sim", {"experiment": experiment, "run_id": run_id, "ticks_per_s": ticks_per_s})


def test_metrics_status_page_and_json_follow_a_sweep():
    exp, run = "mm<c>", "run-1"
    with observed_cluster() as (client, base):
        client.register_plugin(ObservePlugin())  # again: idempotent, nothing doubles
        sweep_event(client, "start", exp, run, total=10)
        addrs = set(
            client.gather(
                [
                    client.submit(
                        chunk_event,
                        exp,
                        run,
                        {"ok": 3, "failed": 1},
                        [0.002, 0.02, 0.2, 2.0],
                        [["t-bad-1", "ValueError: x=0 <script>alert(1)</script>"]],
                        workers=[w],
                        pure=False,
                    )
                    for w in client.scheduler_info()["workers"]
                ]
            )
        )
        assert len(addrs) == 2  # both worker processes reported
        for i in range(3):  # one after another: "last" is then the third report's value
            client.submit(live_event, exp, run, f"t{i}", 0.5 + i, pure=False).result()
        client.submit(sim_event, exp, run, 1234.5, pure=False).result()

        def counted():
            m = scrape(base)
            assert value(m, "daskbench_trials_total", experiment=exp, status="ok") == 6
            assert value(m, "daskbench_live_reports_total", experiment=exp) == 3
            assert value(m, "daskbench_sim_ticks_per_second", experiment=exp) == 1234.5
            return m

        m = wait_for(counted)
        assert value(m, "daskbench_trials_total", experiment=exp, status="failed") == 2
        assert value(m, "daskbench_sweeps_running") == 1
        hist = "daskbench_trial_duration_seconds"
        assert value(m, hist + "_count", experiment=exp) == 8
        assert value(m, hist + "_sum", experiment=exp) == pytest.approx(2 * 2.222)
        assert value(m, hist + "_bucket", experiment=exp, le="0.001") == 0
        assert value(m, hist + "_bucket", experiment=exp, le="0.0025") == 2
        assert value(m, hist + "_bucket", experiment=exp, le="0.25") == 6
        assert value(m, hist + "_bucket", experiment=exp, le="3600.0") == 8
        assert value(m, hist + "_bucket", experiment=exp, le="+Inf") == 8

        snap = json.loads(get(base + "/daskbench/status.json"))
        (r,) = snap["runs"]
        assert (r["experiment"], r["run_id"], r["state"], r["total"]) == (exp, run, "running", 10)
        assert (r["done"], r["ok"], r["failed"]) == (8, 6, 2)
        assert r["results"] == f"/data/results/{exp}" and r["rate"] > 0
        assert r["durations"]["count"] == 8 and r["durations"]["max"] == 2.0
        assert r["live"]["reports"] == 3 and r["live"]["metrics"]["loss"]["last"] == 2.5
        assert {f["trial_id"] for f in snap["failures"]} == {"t-bad-1"}

        page = get(base + "/daskbench/status")
        assert "},2000)" in page  # refreshes itself every 2 s
        assert "mm&lt;c&gt;" in page and "mm<c>" not in page  # escaped
        body = page.split("<body>", 1)[1]
        assert "t-bad-1" in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script" not in body
        assert "8/10" in page and "/data/results/mm&lt;c&gt;" in page

        # The driver settles cancelled trials itself: the end event's counts fill them in.
        sweep_event(client, "end", exp, run, total=10, ok=6, failed=2, timeout=0, cancelled=2, skipped=0)

        def ended():
            m = scrape(base)
            assert value(m, "daskbench_sweeps_running") == 0
            return m

        m = wait_for(ended)
        assert value(m, "daskbench_trials_total", experiment=exp, status="cancelled") == 2
        assert value(m, "daskbench_trials_total", experiment=exp, status="ok") == 6  # not counted twice
        assert value(m, "daskbench_sim_ticks_per_second", experiment=exp) == 0  # the simulation is over
        (r,) = json.loads(get(base + "/daskbench/status.json"))["runs"]
        assert r["state"] == "finished" and r["done"] == 10 and r["counts"]["cancelled"] == 2
        assert "finished" in get(base + "/daskbench/status")


def test_two_clusters_in_one_process_keep_their_own_numbers():
    # Sequential clusters (as in a test session), and two alive at once.
    with observed_cluster(n_workers=1) as (client, base):
        client.submit(chunk_event, "alpha", "a1", {"ok": 5}, [0.1] * 5, [], pure=False).result()
        wait_for(lambda: value(scrape(base), "daskbench_trials_total", experiment="alpha", status="ok") == 5)
    with observed_cluster(n_workers=1) as (c1, base1), observed_cluster(n_workers=1) as (c2, base2):
        c1.submit(chunk_event, "beta", "b1", {"ok": 2}, [0.1] * 2, [], pure=False).result()
        c2.submit(chunk_event, "gamma", "g1", {"failed": 1}, [0.1], [["g-1", "boom"]], pure=False).result()
        wait_for(lambda: value(scrape(base1), "daskbench_trials_total", experiment="beta", status="ok") == 2)
        wait_for(lambda: value(scrape(base2), "daskbench_trials_total", experiment="gamma", status="failed") == 1)
        m1, m2 = scrape(base1), scrape(base2)  # both have heard their events by now
        assert [r["experiment"] for r in json.loads(get(base2 + "/daskbench/status.json"))["runs"]] == ["gamma"]
    # one sweep each (seen from its trials), not two
    assert value(m1, "daskbench_sweeps_running") == 1 and value(m2, "daskbench_sweeps_running") == 1
    assert {dict(labels).get("experiment") for _, labels in m1} <= {"beta", None}
    assert {dict(labels).get("experiment") for _, labels in m2} <= {"gamma", None}


def test_a_sweep_whose_driver_left_without_ending_is_lost():
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as cluster:
        base = f"http://127.0.0.1:{cluster.scheduler.http_server.port}"
        with Client(cluster) as driver:
            driver.register_plugin(ObservePlugin())
            sweep_event(driver, "start", "orphan", "o1", total=100)
            wait_for(lambda: value(scrape(base), "daskbench_sweeps_running") == 1)
        # the driver is gone (crashed) and nobody else is connected
        wait_for(lambda: value(scrape(base), "daskbench_sweeps_running") == 0)
        (r,) = json.loads(get(base + "/daskbench/status.json"))["runs"]
        assert r["state"] == "lost" and r["ended"] is not None


def test_registering_without_a_dashboard_still_counts():
    # dashboard=False drops Bokeh; distributed still serves its HTTP routes, and
    # the plugin must register either way.
    with observed_cluster(n_workers=1, scheduler_kwargs={"dashboard": False}) as (client, base):
        client.submit(chunk_event, "nodash", "n1", {"ok": 1}, [0.5], [], pure=False).result()
        wait_for(
            lambda: client.run_on_scheduler(
                lambda dask_scheduler: dask_scheduler.plugins["daskbench-observe"].snapshot()["runs"]
            )
        )
        assert json.loads(get(base + "/daskbench/status.json"))["runs"][0]["experiment"] == "nodash"


def test_state_stays_bounded_and_bad_events_are_ignored():
    # The plugin's event hook, called directly: a long-lived scheduler must not grow.
    p = ObservePlugin()
    for i in range(observe.MAX_RUNS * 3):
        p.log_event("daskbench-sweep", {"event": "start", "experiment": f"e{i}", "run_id": f"r{i}", "total": 10})
        p.log_event("daskbench-sweep", {"event": "end", "experiment": f"e{i}", "run_id": f"r{i}", "counts": {"ok": 10}})
    for i in range(2000):
        p.log_event(
            "daskbench-trials",
            {
                "experiment": "big",
                "run_id": "big-1",
                "counts": {"failed": 5},
                "durations": [0.01] * 5,
                "errors": [[f"t{i}-{j}", "x" * 10_000] for j in range(5)],
            },
        )
        p.log_event(
            "daskbench-live",
            {"experiment": "big", "run_id": "big-1", "trial_id": f"t{i}", "metrics": {f"m{i}": 1.0, "loss": float(i)}},
        )
    for bad in (None, [1, 2], {"counts": "many"}, {"durations": ["nan", "x", -1, math.inf]}):
        p.log_event("daskbench-trials", bad)
    p.log_event("some-other-topic", object())
    snap = p.snapshot()
    assert len(snap["runs"]) <= observe.MAX_RUNS and len(p.totals) <= observe.MAX_EXPERIMENTS + 1
    big = next(r for r in snap["runs"] if r["run_id"] == "big-1")
    assert big["done"] == 10_000 and big["state"] == "running"
    assert len(big["failures"]) == observe.MAX_FAILURES
    assert all(len(f["error"]) <= observe.MAX_TEXT for f in big["failures"])
    assert len(big["live"]["metrics"]) <= observe.MAX_METRICS and big["live"]["metrics"]["loss"]["last"] == 1999
    assert p.metric_values()["totals"]["big"][0] == {"failed": 10_000}
    json.dumps(snap)  # the status.json payload


NO_PROMETHEUS = textwrap.dedent("""
    import sys, json, urllib.request
    sys.modules["prometheus_client"] = None  # as if it were not installed
    from distributed import Client, LocalCluster
    from daskbench.observe.plugin import ObservePlugin

    for _ in range(2):  # two schedulers: the missing package is logged once per process
        with LocalCluster(n_workers=1, processes=False, dashboard_address="127.0.0.1:0") as cluster, \\
                Client(cluster) as client:
            client.register_plugin(ObservePlugin())
            client.log_event("daskbench-sweep", {"event": "start", "experiment": "np", "run_id": "r", "total": 1})
            port = cluster.scheduler.http_server.port
            def snap():
                return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/daskbench/status.json").read())
            import time
            for _ in range(50):
                if snap()["runs"]:
                    break
                time.sleep(0.1)
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/daskbench/status").read().decode()
            logs = [m for _, m in client.get_scheduler_logs() if "prometheus_client is not installed" in m]
            print(json.dumps({"prometheus": snap()["prometheus"], "runs": len(snap()["runs"]),
                              "note": "prometheus_client is not installed" in page, "logged": len(logs)}))
""")


def test_without_prometheus_client_the_page_still_works(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", NO_PROMETHEUS], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert first == {"prometheus": False, "runs": 1, "note": True, "logged": 1}
    assert second["prometheus"] is False and second["runs"] == 1 and second["logged"] == 0


def test_end_to_end_run_fills_the_metrics(client, user_dir):
    """``daskbench.run`` on a client: ``cluster.prepare`` installs the plugin."""
    import daskbench
    from tests.conftest import write_experiment

    write_experiment(
        user_dir / "conf",
        "obs",
        """
        name: obs
        trial: {_target_: usertrials.sometimes_fails}
        sweep: {params: {trial.x: 'range(0,6)'}}
    """,
    )
    res = daskbench.run("obs", [], client=client, config_dir="conf", progress="none", echo=lambda *_: None)
    plugins = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.plugins))
    assert "daskbench-observe" in plugins, "daskbench.cluster.create.prepare must register ObservePlugin"
    assert res.counts.ok == 4 and res.counts.failed == 2
    base = f"http://127.0.0.1:{client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.http_server.port)}"

    def counted():
        m = scrape(base)
        assert value(m, "daskbench_trials_total", experiment="obs", status="ok") == 4
        assert value(m, "daskbench_trials_total", experiment="obs", status="failed") == 2
        assert value(m, "daskbench_sweeps_running") == 0
        return m

    m = wait_for(counted)
    assert value(m, "daskbench_trial_duration_seconds_count", experiment="obs") == 6
    runs = [r for r in json.loads(get(base + "/daskbench/status.json"))["runs"] if r["experiment"] == "obs"]
    assert runs[0]["state"] == "finished" and runs[0]["total"] == 6 and runs[0]["results"].endswith("obs")
    assert len({f["trial_id"] for f in runs[0]["failures"]}) == 2


def test_a_sharded_simulation_reports_its_speed(client, user_dir):
    """A real simulation sweep on actors: its coordinator sends daskbench-sim, so
    daskbench_sim_ticks_per_second has data while it runs, and 0 once it is over."""
    import threading

    import daskbench
    from tests.conftest import write_experiment

    # paced by the clock (0.05 s of simulated time per tick, in real time): it runs for
    # about 3 s however fast the machine, long enough to be seen running
    write_experiment(
        user_dir / "conf",
        "simspeed",
        """
        name: simspeed
        trial:
          _target_: daskbench.sim.trial
          model: daskbench.experiments.boltzmann.Boltzmann
          params: {n_agents: 200}
          ticks: 60
          shards: 2
          clock: {realtime_factor: 1.0, tick_seconds: 0.05}
        results: {report: false}
    """,
    )
    done: Dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: done.update(
            result=daskbench.run(
                "simspeed", [], client=client, config_dir="conf", progress="none", echo=lambda *_: None
            )
        )
    )
    runner.start()
    base = f"http://127.0.0.1:{client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.http_server.port)}"
    seen = []
    while runner.is_alive():
        with contextlib.suppress(OSError):  # the plugin may not be registered yet
            seen.append(value(scrape(base), "daskbench_sim_ticks_per_second", experiment="simspeed"))
        time.sleep(0.1)
    runner.join()
    assert done["result"].counts.ok == 1, done
    running = [v for v in seen if v > 0]
    assert running and max(running) <= 1000, seen  # ~20 ticks/s of paced time; never a bogus figure
    after = wait_for(
        lambda: (
            not math.isnan(v := value(scrape(base), "daskbench_sim_ticks_per_second", experiment="simspeed")) and [v]
        )
    )
    assert after == [0.0]  # the simulation is over
    (r,) = [r for r in json.loads(get(base + "/daskbench/status.json"))["runs"] if r["experiment"] == "simspeed"]
    assert r["state"] == "finished" and 0 < r["ticks_per_s"] <= 1000  # the page keeps the speed last heard


def test_the_speeds_of_simulations_running_at_once_add_up():
    p = ObservePlugin()
    msg = {"experiment": "sims", "run_id": "s1"}
    p.log_event("daskbench-sweep", dict(msg, event="start", total=3))
    assert p.metric_values()["ticks"] == {}  # no simulation heard of: no figure at all
    for trial, tps in (("a", 10.0), ("b", 5.0), ("a", 12.0), ("c", 1.0)):
        p.log_event("daskbench-sim", dict(msg, trial_id=trial, ticks_per_s=tps, done=False))
    assert p.metric_values()["ticks"] == {"sims": 18.0}  # the latest of each trial, summed
    p.log_event("daskbench-sim", dict(msg, trial_id="c", ticks_per_s=0.0, done=True))
    assert p.metric_values()["ticks"] == {"sims": 17.0}
    p.log_event("daskbench-sim", dict(msg, trial_id="x", ticks_per_s="fast"))  # ignored
    assert p.snapshot()["runs"][0]["ticks_per_s"] == 17.0
    p.log_event("daskbench-sweep", dict(msg, event="end", total=3, counts={"ok": 3}))
    assert p.metric_values()["ticks"] == {"sims": 0.0}  # nothing runs any more
    assert p.snapshot()["runs"][0]["ticks_per_s"] == 18.0  # the page: the speed at the last report of one


def test_dashboard_port_taken_run_goes_on(user_dir):
    """The /metrics and status port already taken: the run says where they went and goes on."""
    import re
    import socket

    from tests.conftest import run_cli, write_experiment

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        write_experiment(
            user_dir / "conf",
            "pt",
            """
            name: pt
            trial: {_target_: usertrials.quad}
            sweep: {params: {trial.x: '1,2'}}
        """,
        )
        r = run_cli(
            [
                "--config-dir",
                "conf",
                "+experiment=pt",
                f"cluster.dashboard_address=127.0.0.1:{port}",
                "runner.progress=plain",
                "results.report=false",
            ],
            cwd=user_dir,
        )
    assert r.returncode == 0, (r.stdout, r.stderr)
    m = re.search(r"Dask dashboard: http://127\.0\.0\.1:(\d+)/status", r.stdout)
    assert m and int(m.group(1)) != port  # the address printed is the one actually served
    assert "pt: 2 ok" in r.stdout


def test_the_drivers_bucketed_events_count_as_one_event_per_duration_did():
    # TrialEvents folds many chunks' tables into one event with the durations in
    # buckets; the plugin must end up with the numbers a value per trial gave it.
    import pyarrow as pa

    from daskbench.observe.trial_events import TrialEvents

    durations = [0.0005, 0.001, 0.0011, 0.02, 0.3, 7.0, 4000.0, 0.04]
    statuses = ["ok", "ok", "failed", "ok", "timeout", "ok", "ok", "failed"]
    table = pa.table(
        {
            "trial_id": [f"t{i}" for i in range(8)],
            "status": statuses,
            "error": [None if s == "ok" else f"E{i}" for i, s in enumerate(statuses)],
            "duration_s": durations,
        }
    )
    counts = {"ok": 5, "failed": 2, "timeout": 1}
    events = TrialEvents("e", "r")
    events.add(table.slice(0, 5), {"ok": 3, "failed": 1, "timeout": 1})
    events.add(table.slice(5), {"ok": 2, "failed": 1})
    sent: list = []
    events.maybe_send(lambda topic, msg: sent.append((topic, msg)))  # not yet: less than interval_s
    assert sent == []
    events.send(lambda topic, msg: sent.append((topic, msg)))
    events.send(lambda topic, msg: sent.append((topic, msg)))  # nothing new: nothing sent
    assert len(sent) == 1 and sent[0][0] == "daskbench-trials"
    by_buckets, by_values = ObservePlugin(), ObservePlugin()
    by_buckets.log_event(*sent[0])
    errors = [[f"t{i}", f"E{i}"] for i, s in enumerate(statuses) if s != "ok"]
    one_per_trial = {"experiment": "e", "run_id": "r", "counts": counts, "durations": durations, "errors": errors}
    by_values.log_event("daskbench-trials", one_per_trial)
    assert by_buckets.metric_values() == by_values.metric_values()
    a, b = (p.snapshot()["runs"][0] for p in (by_buckets, by_values))
    clock = ("started", "last_event", "rate", "failures")  # when each plugin heard its event
    assert {k: v for k, v in a.items() if k not in clock} == {k: v for k, v in b.items() if k not in clock}
    assert [(f["trial_id"], f["error"]) for f in a["failures"]] == [(f["trial_id"], f["error"]) for f in b["failures"]]
    assert sorted(f["trial_id"] for f in a["failures"]) == ["t2", "t4", "t7"]


def test_the_drivers_events_do_not_import_pandas():
    # Arrow's to_numpy() and pyarrow.compute import pandas (~0.4 s) on first use; the
    # driver folded its first chunk into an event that way, in the middle of the run.
    import pickle

    import pyarrow as pa

    table = pa.table(
        {
            "trial_id": ["t0", "t1", "t2"],
            "status": ["ok", "failed", "ok"],
            "error": [None, "E1", None],
            "duration_s": [0.5, None, 2.0],
        }
    )
    code = textwrap.dedent(
        """
        import pickle, sys
        from daskbench.observe.trial_events import TrialEvents
        events = TrialEvents("e", "r")
        events.add(pickle.loads(sys.stdin.buffer.read()), {"ok": 2, "failed": 1})
        msg = events.message()
        assert msg["duration_n"] == 2 and msg["duration_sum"] == 2.5, msg
        assert msg["errors"] == [["t1", "E1"]], msg
        assert "pandas" not in sys.modules, "TrialEvents.add imported pandas"
        """
    )
    r = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(table), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
