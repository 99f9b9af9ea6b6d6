"""How shards' envelopes travel (daskbench.sim.barrier): direct sockets between shards, or Dask
actor calls; both give the in-process result, a TLS cluster keeps the Dask comm, a closed peer
is an error at once, and nothing (sockets, threads) is left behind after a trial."""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np
import pytest

from daskbench import sim
from daskbench.experiments.boltzmann import Boltzmann
from daskbench.sim.sockets import Links, PeerGone
from tests import test_sim_core
from tests.test_sim_actors import _strip


def _pair():
    a, b = Links("127.0.0.1"), Links("127.0.0.1")
    t = threading.Thread(target=b.connect, args=(1, {0: a.address}, 10.0))
    t.start()
    a.connect(0, {1: b.address}, 10.0)
    t.join()
    return a, b


def _exchange(me: Links, peer: int, frames, want: int, got):
    """Send ``frames`` to ``peer`` and read until ``want`` frames came in (what a shard's thread does)."""
    for f in frames:
        me.send(peer, f)
    while len(got) < want or me.pending():
        me.pump(lambda src, obj: got.append((src, obj)), 5.0)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_sockets_carry_big_and_empty_frames_both_ways_at_once():
    fds = _fds()
    a, b = _pair()
    big = np.arange(3_000_000, dtype=np.float64)  # 24 MB each way at once: more than socket buffers hold
    frames = [[(t, t + 1, {t + 1: {"k": (big + t, np.array(["x", None], dtype=object))}})] for t in range(3)]
    frames += [[(9, None, {})], [(10, None, {11: {"k": np.empty(0, np.int32)}})]]  # empty envelope, empty array
    got_a, got_b = [], []
    tb = threading.Thread(target=_exchange, args=(b, 0, frames, len(frames), got_b))
    tb.start()
    _exchange(a, 1, frames, len(frames), got_a)
    tb.join(30)
    assert not tb.is_alive()
    for src, got in ((1, got_a), (0, got_b)):
        assert [s for s, _ in got] == [src] * len(frames)
        for t, (_, obj) in enumerate(got[:3]):
            arr, objs = obj[0][2][t + 1]["k"]
            assert np.array_equal(arr, big + t) and arr.dtype == np.float64 and arr.ctypes.data % 8 == 0
            assert objs.tolist() == ["x", None]
        assert got[3][1] == [(9, None, {})]
        assert got[4][1][0][2][11]["k"].dtype == np.int32 and len(got[4][1][0][2][11]["k"]) == 0
    b.close()
    with pytest.raises(PeerGone, match="shard 1 closed its connection"):
        for _ in range(10):
            a.pump(lambda src, obj: None, 1.0)
    a.close()
    a.close()  # idempotent
    assert _fds() == fds  # every socket closed


def test_a_peer_that_never_connects_is_a_timeout_not_a_hang():
    a = Links("127.0.0.1")
    with pytest.raises(OSError):  # socket.timeout is an OSError: the shard reports its peers lost
        a.connect(1, {0: ("127.0.0.1", 1)}, 0.5)  # shard 1 waits for shard 0, which never comes
    a.close()
    b = Links("127.0.0.1")
    with pytest.raises(ConnectionAbortedError, match="stopped waiting for shards \\[0\\]"):
        b.connect(1, {0: ("127.0.0.1", 1)}, 300.0, stop=lambda: True)  # the coordinator aborted the trial
    b.close()


def _left_behind(client):
    """Per worker: shards' socket sets not closed, and shard threads still running."""

    def count(dask_worker):
        import gc

        from daskbench.sim.sockets import Links

        gc.collect()
        open_links = [x for x in gc.get_objects() if isinstance(x, Links) and x._wake_r.fileno() != -1]
        threads = [t for t in threading.enumerate() if t.name.startswith("sim-shard")]
        return len(open_links), len(threads)

    deadline = time.monotonic() + 10.0  # a shard's thread ends soon after the trial, not at once
    left = client.run(count)
    while any(left.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
        left = client.run(count)
    return left


@pytest.mark.parametrize("transport", ["socket", "comm"])
def test_both_transports_give_the_in_process_result_and_leave_nothing_behind(client, transport):
    settings = dict(ticks=60, agent_report_every=9, checkpoint_every=20)
    ref = sim.run(test_sim_core.Delayed(), sim.Settings(shards=1, **settings), seed=4)
    for shards, lookahead in ((2, 1), (2, 3), (4, 1), (4, 2)):
        s = sim.Settings(shards=shards, lookahead=lookahead, transport=transport, **settings)
        out = sim.run(test_sim_core.Delayed(), s, seed=4, client=client)
        assert _strip(out.steps) == _strip(ref.steps), (shards, lookahead)
        assert test_sim_core._agents(out).equals(test_sim_core._agents(ref)), (shards, lookahead)
        assert out.metrics["shard_transport"] == transport
    assert set(_left_behind(client).values()) == {(0, 0)}  # no open socket or shard thread on the workers


def test_a_tls_cluster_keeps_the_dask_comm():
    from distributed import Client, LocalCluster
    from distributed.security import Security

    sec = Security.temporary()
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            protocol="tls",
            security=sec,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster, security=sec) as client,
    ):
        assert cluster.scheduler_address.startswith("tls://")
        ref = sim.run(Boltzmann(n_agents=300), sim.Settings(ticks=20, shards=1), seed=3)
        out = sim.run(Boltzmann(n_agents=300), sim.Settings(ticks=20, shards=2), seed=3, client=client)
    assert _strip(out.steps) == _strip(ref.steps)
    assert out.metrics["shard_transport"] == "comm"


def test_a_bad_transport_is_one_clear_error():
    with pytest.raises(sim.SimulationError, match=r"clock.transport='udp': use socket .* or comm"):
        sim.trial(model="daskbench.experiments.boltzmann.Boltzmann", clock={"transport": "udp"})
