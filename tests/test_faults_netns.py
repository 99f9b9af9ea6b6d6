"""A worker cut off from its scheduler, in a network namespace of the test's own.

The test makes a namespace and a veth pair on a private /30 (one end in the
namespace, the other on this host; nothing is routed anywhere else), runs a
`dask worker` inside the namespace against a `dask scheduler` listening on the
host end, and takes the namespace's end of the link down mid-sweep. Needs root
and iproute2 (`make test` installs it as root on Debian); skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.conftest import write_experiment
from tests.procs import DASK, DaskProcesses, free_port
from tests.test_faults import FAULTS_PY, wait_for

#: short heartbeat and comm timeouts, so a silent worker is dropped in seconds, not minutes
FAST = {
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": "5s",
    "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s",
    "DASK_DISTRIBUTED__COMM__TIMEOUTS__TCP": "15s",
}  # >= keepalive probes + 1


def _ip(*args: str, ns: str = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip", *args]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30)


class Link:
    """A namespace joined to this host by a veth pair on 10.200.N.0/30."""

    def __init__(self) -> None:
        tag = os.getpid() % 10000
        self.ns, self.host_dev, self.ns_dev = f"dbflt{tag}", f"dbh{tag}", f"dbn{tag}"
        used = _ip("-4", "-o", "addr").stdout
        n = next(n for n in range(100 + tag % 100, 256) if f"10.200.{n}." not in used)
        self.host_ip, self.ns_ip = f"10.200.{n}.1", f"10.200.{n}.2"

    def create(self) -> None:
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.host_dev, "type", "veth", "peer", "name", self.ns_dev)
        _ip("link", "set", self.ns_dev, "netns", self.ns)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_dev)
        _ip("link", "set", self.host_dev, "up")
        _ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_dev, ns=self.ns)
        _ip("link", "set", self.ns_dev, "up", ns=self.ns)
        _ip("link", "set", "lo", "up", ns=self.ns)

    def set(self, state: str) -> None:
        """Take the namespace's end down or up: the host end (and the scheduler) stays reachable here."""
        _ip("link", "set", self.ns_dev, state, ns=self.ns)

    def destroy(self) -> None:
        _ip("link", "del", self.host_dev, check=False)  # removes both ends
        _ip("netns", "del", self.ns, check=False)


@pytest.fixture
def link():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("`ip` (iproute2) is not installed: apt-get install iproute2")
    lk = Link()
    try:
        lk.create()
    except subprocess.CalledProcessError as exc:
        lk.destroy()
        pytest.skip(f"cannot create a network namespace here: {exc.stderr.strip()}")
    yield lk
    lk.destroy()


def test_worker_cut_off_by_the_network_is_replaced_and_nothing_is_written_twice(user_dir, link, tmp_path_factory):
    """Guarantee: a worker that goes silent (its link down, no FIN, no RST) is dropped
    after the heartbeat timeout, its trials run elsewhere (their `attempts` count
    the lost run), the sweep finishes, and when the link comes back no trial is
    written twice."""
    from distributed import Client

    (user_dir / "faults.py").write_text(FAULTS_PY)
    runs = user_dir / "runs"
    runs.mkdir()
    procs = DaskProcesses(tmp_path_factory.mktemp("nethosts"), port=free_port())
    procs.env.update(FAST)
    address = f"tcp://{link.host_ip}:{procs.port}"
    procs.address = address
    try:
        procs._start(
            [DASK, "scheduler", "--host", link.host_ip, "--port", str(procs.port), "--no-dashboard"], "scheduler"
        )
        common = ["--nthreads", "1", "--no-dashboard"]
        procs._start([DASK, "worker", address, "--name", "here", "--host", "127.0.0.1", *common], "worker-here")
        procs._start(
            ["ip", "netns", "exec", link.ns, DASK, "worker", address, "--name", "cut", "--host", link.ns_ip, *common],
            "worker-cut",
        )
        names = procs.wait_for_workers(2)
        with Client(address, timeout="10s") as c:
            cut_pid = c.run(os.getpid, workers=[names["cut"]])[names["cut"]]
        # trials of 2 s: the link must go down while the cut-off worker still holds one it began
        # (with 1 s, a trial could report back before the link was down, leaving nothing to rerun)
        write_experiment(
            user_dir / "conf",
            "net",
            f"""
            name: net
            trial: {{_target_: faults.tracked, folder: '{runs}', delay: 2.0}}
            sweep: {{params: {{trial.x: 'range(0,12)'}}}}
            runner: {{chunk_size: 1, progress: plain}}
            results: {{report: false, flush_seconds: 0.5}}
        """,
        )
        driver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daskbench",
                "--config-dir",
                "conf",
                "+experiment=net",
                "cluster=address",
                f"cluster.address={address}",
            ],
            cwd=user_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )

        def runs_on(pid):
            return {int(p.name.split("-")[1]) for p in runs.iterdir() if int(p.name.split("-")[2]) == pid}

        wait_for(lambda: runs_on(cut_pid) or driver.poll() is not None, what="a trial on the worker to cut off")
        link.set("down")
        with Client(address, timeout="10s") as c:
            wait_for(
                lambda: "cut" not in {w["name"] for w in c.scheduler_info()["workers"].values()},
                timeout=90,
                what="the scheduler to drop the silent worker",
            )
        lost = runs_on(cut_pid)  # every trial the cut-off worker began
        link.set("up")
        out, err = driver.communicate(timeout=180)
        assert driver.returncode == 0, (out, err)
    finally:
        procs.stop()
    trials = user_dir / "results/net/trials"
    df = pd.read_parquet(trials)
    assert len(df) == 12 and df.trial_id.is_unique and (df.status == "ok").all()
    assert sum(pq.read_table(p).num_rows for p in trials.glob("*.parquet")) == 12  # no stray copy in any file
    df = df.set_index("trial.x")
    rerun = [x for x in lost if df.loc[x, "worker"] != names["cut"]]
    assert rerun, (lost, df.worker.to_dict())  # what it held when cut off ran elsewhere
    assert all(df.loc[x, "attempts"] >= 2 for x in rerun), df.attempts.to_dict()
