"""The fork server the workers and the scheduler come from, and what every worker gets as
it starts (cluster/workers.py, cluster/sigint.py): real LocalClusters."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from daskbench.cluster.create import connect
from daskbench.config.schema import LocalClusterConfig


def _sigint_ignored() -> bool:
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def _server_pid() -> int:
    return os.getppid()  # a worker forked by the server is its child


def test_the_fork_server_is_single_threaded_when_it_forks():
    """Forking a process that runs threads can leave a lock held for ever in the child:
    after all its preloads (distributed, pyarrow, pandas, the HTTP routes, the package
    versions) the server still runs one thread."""
    with connect(LocalClusterConfig(n_workers=2, dashboard_address="127.0.0.1:0")) as client:
        servers = set(client.run(_server_pid).values())
        assert len(servers) == 1 and os.getpid() not in servers  # both from the one server
        (server,) = servers
        assert len(os.listdir(f"/proc/{server}/task")) == 1
        assert Path(f"/proc/{server}/cmdline").read_bytes().count(b"multiprocessing.forkserver") == 1


def test_every_worker_ignores_ctrl_c_restarted_ones_too():
    """Spawned workers restarted while the driver takes SIGINT again still ignore it: each
    worker sets it up as it starts (a plugin given to the cluster's workers)."""
    cfg = LocalClusterConfig(n_workers=1, dashboard_address=None, start_method="spawn")
    with connect(cfg) as client:
        assert all(client.run(_sigint_ignored).values())
        assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # the driver takes Ctrl-C
        before = set(client.scheduler_info()["workers"])
        client.restart_workers(list(before))
        client.wait_for_workers(1)
        assert all(client.run(_sigint_ignored).values())


DUMP = (
    "import json, yaml; import {module}; import dask; "
    "print(json.dumps([dask.config.config, yaml.safe_load.__module__], default=repr))"
)


def _config_of(module: str, env: dict) -> list:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", DUMP.format(module=module)], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout)


def test_dask_config_read_through_libyaml_is_the_one_dask_reads(tmp_path):
    """The driver and the fork server import distributed with Dask's config files parsed by
    libyaml (cluster/dask_import.py): the config they get is the one Dask's own import gives,
    a user's config file included, and ``yaml.safe_load`` is PyYAML's own again afterwards."""
    (tmp_path / "mine.yaml").write_text(
        "distributed:\n"
        "  scheduler:\n"
        "    allowed-failures: 7\n"
        "  worker:\n"
        "    memory: {target: 0.5, spill: off}\n"
        "base: &b {x: [1, 2.5, yes, null, '3']}\n"
        "derived: {<<: *b, y: 2026-12-02}\n"
    )
    env = dict(os.environ, DASK_CONFIG=str(tmp_path))
    fast, module = _config_of("daskbench.cluster.dask_import", env)
    plain, _ = _config_of("distributed", env)
    assert fast == plain
    assert fast["distributed"]["scheduler"]["allowed-failures"] == 7 and fast["derived"]["x"][2] is True
    assert module == "yaml"  # put back: only Dask's import used the C parser


def _gc_state() -> tuple:
    import gc

    return gc.isenabled(), gc.get_freeze_count()


def test_forks_collect_garbage_and_skip_what_the_server_imported():
    """The server imports with its garbage collector paused (daskbench/startup_gc.py) and
    freezes what it imported before it forks: every worker has the collector on, and the
    server's modules in the permanent generation (never scanned again)."""
    with connect(LocalClusterConfig(n_workers=1, dashboard_address=None)) as client:
        ((enabled, frozen),) = client.run(_gc_state).values()
    assert enabled
    assert frozen > 10_000  # distributed, pyarrow, pandas... as the server left them


GC_PAUSE = """
import gc
from daskbench import startup_gc
{before}
startup_gc.pause()
paused = gc.isenabled()
startup_gc.resume()
print(paused, gc.isenabled(), gc.get_freeze_count() > 0)
"""


def test_the_collector_is_paused_and_resumed_only_if_it_was_on():
    import subprocess
    import sys

    def state(before: str) -> str:
        code = GC_PAUSE.format(before=before)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()

    assert state("") == ["False", "True", "True"]
    # a process that turned it off itself keeps it off, and nothing of it is frozen
    assert state("gc.disable()") == ["False", "False", "False"]


def _dask_settings() -> tuple:
    import dask

    return tuple(
        dask.config.get(k)
        for k in (
            "distributed.worker.profile.interval",
            "distributed.admin.tick.interval",
            "distributed.scheduler.allowed-failures",
        )
    )


def test_cluster_dask_config_reaches_the_scheduler_and_the_workers_restarted_ones_too():
    """``cluster.dask_config`` (the quieter profiler and event-loop check by default) is what
    the forked scheduler and every worker read; what chunk recovery relies on stays over it;
    ``null`` leaves Dask's own values."""
    import dask

    from daskbench.config.dask_settings import QUIET_DASK

    quiet = LocalClusterConfig(n_workers=1, dashboard_address=None)
    assert quiet.dask_config == QUIET_DASK
    with connect(quiet) as client:
        assert set(client.run(_dask_settings).values()) == {("50ms", "100ms", 0)}
        assert client.run_on_scheduler(_dask_settings) == ("50ms", "100ms", 0)
        (worker,) = client.scheduler_info()["workers"]
        client.restart_workers([worker])
        client.wait_for_workers(1)
        assert set(client.run(_dask_settings).values()) == {("50ms", "100ms", 0)}
    asked = {"distributed": {"worker": {"profile": {"interval": "30ms"}}, "scheduler": {"allowed-failures": 5}}}
    with connect(LocalClusterConfig(n_workers=1, dashboard_address=None, dask_config=asked)) as client:
        assert set(client.run(_dask_settings).values()) == {("30ms", dask.config.get(_TICK), 0)}
    with connect(LocalClusterConfig(n_workers=1, dashboard_address=None, dask_config=None)) as client:
        assert client.run_on_scheduler(_dask_settings)[:2] == (dask.config.get(_PROFILE), dask.config.get(_TICK))
    assert dask.config.get(_PROFILE) == "10ms"  # the driver's own config is as it was


_PROFILE = "distributed.worker.profile.interval"
_TICK = "distributed.admin.tick.interval"


def test_cluster_dask_config_flattens_and_refuses_a_setting_dask_does_not_have():
    from daskbench.config.dask_settings import dask_config_problems, flat_dask_config

    tree = {"distributed": {"worker": {"profile": {"interval": "50ms"}}}, "array.chunk-size": "64MiB"}
    assert flat_dask_config(tree) == {_PROFILE: "50ms", "array.chunk-size": "64MiB"}
    assert flat_dask_config(None) == {} and dask_config_problems(None) == []
    assert dask_config_problems(tree) == []
    (why,) = dask_config_problems({"distributed": {"worker": {"profile": {"intervl": "1s"}}}})
    assert why.startswith("cluster.dask_config.distributed.worker.profile.intervl: Dask has no such setting")
    assert LocalClusterConfig(dask_config={"distributed": {"nosuch": 1}}).problems() == [
        dask_config_problems({"distributed": {"nosuch": 1}})[0]
    ]
