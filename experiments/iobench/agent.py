"""iobench's agent: one worker's share of a trial, run as a Dask task pinned to
that worker (run_agent), with its benchmark threads and what they measure."""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from daskbench.observe import live

from .settings import OPS, OpChooser, Settings
from .stats import MB, LatencyHistogram
from .workspace import Workspace

IO_CHUNK = 1 << 20  # write/read in pieces of at most 1 MiB
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


class _ThreadStats:
    """What one benchmark thread measured (written by that thread only)."""

    def __init__(self, nsec: int):
        self.count = dict.fromkeys(OPS, 0)
        self.bytes = dict.fromkeys(OPS, 0)
        self.errors = dict.fromkeys(OPS, 0)
        self.hist = {op: LatencyHistogram() for op in OPS}
        self.first_error: Dict[str, str] = {}
        self.tl_ops = [[0] * nsec for _ in OPS]
        self.tl_bytes = [0] * nsec
        self.tl_errors = [0] * nsec
        self.ops_done = 0  # read by the reporting thread
        self.bytes_done = 0
        self.errors_done = 0
        self.finished_at: Optional[float] = None


class _Agent:
    def __init__(self, settings: Settings, ws: Workspace, index: int, seed: Any):
        self.s, self.ws, self.index, self.seed = settings, ws, index, seed
        self.start_perf = self.end_perf = 0.0  # set by start()
        self.nsec = max(1, math.ceil(settings.duration_s))
        self.payload = memoryview(os.urandom(min(max(settings.sizes), IO_CHUNK)))
        self.stop = threading.Event()
        self.fatal: List[BaseException] = []
        self.stats = [_ThreadStats(self.nsec) for _ in range(settings.concurrency)]
        self.done = threading.Event()  # set when the last thread ends
        self._running = settings.concurrency
        self._lock = threading.Lock()
        self.choosers = [OpChooser(settings, seed, index, t) for t in range(settings.concurrency)]
        self.objects: List[List[Tuple[str, int]]] = [[] for _ in range(settings.concurrency)]

    def prepare(self) -> None:
        """Write each thread's first objects (so reads have something to read); not timed."""
        for t, chooser in enumerate(self.choosers):
            for k in range(self.s.prepare_objects):
                name, size = f"p{t}-{k:06d}.obj", chooser.size()
                self._write(name, size)
                self.objects[t].append((name, size))

    def start(self, start_at: float) -> float:
        """Fix the measured window: from ``start_at`` (wall clock), or now if that has passed.
        Returns how late it starts (seconds)."""
        now_wall, now = time.time(), time.perf_counter()
        self.start_perf = now + max(0.0, start_at - now_wall)
        self.end_perf = self.start_perf + self.s.duration_s
        return max(0.0, now_wall - start_at)

    # one operation each; they return bytes moved and raise OSError on failure
    def _write(self, name: str, size: int) -> int:
        self.ws.created(name)  # recorded before it exists, so a half-written file is removed too
        fd = os.open(self.ws.path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY, 0o600)
        try:
            left = size
            while left:
                left -= os.write(fd, self.payload[:min(left, len(self.payload))])
            if self.s.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return size

    def _read(self, name: str, size: int, buf: bytearray) -> int:
        fd = os.open(self.ws.path(name), os.O_RDONLY | _O_NOFOLLOW | _O_BINARY)
        try:
            got = 0
            view = memoryview(buf)
            while True:
                n = os.readv(fd, [view]) if hasattr(os, "readv") else len(os.read(fd, len(buf)))
                if not n:
                    break
                got += n
        finally:
            os.close(fd)
        if got != size:
            raise OSError(f"short read of {name}: {got} of {size} bytes")
        return got

    def _list(self) -> int:
        with os.scandir(self.ws.dir) as it:
            for _ in it:
                pass
        return 0

    def run_thread(self, t: int) -> None:
        st = self.stats[t]
        try:
            chooser, objects = self.choosers[t], self.objects[t]
            buf = bytearray(IO_CHUNK)
            pick = chooser.pick_rng
            seq = 0
            pause = self.start_perf - time.perf_counter()
            if pause > 0 and self.stop.wait(pause):
                return
            nsec, start = self.nsec, self.start_perf
            while not self.stop.is_set():
                t0 = time.perf_counter()
                if t0 >= self.end_perf:
                    break
                op = chooser.op()
                if op in ("read", "delete") and not objects:
                    op = "write"  # nothing of ours left to read or delete
                nbytes = 0
                try:
                    if op == "write":
                        seq += 1
                        name, size = f"t{t}-{seq:09d}.obj", chooser.size()
                        nbytes = self._write(name, size)
                        objects.append((name, size))
                    elif op == "read":
                        name, size = objects[pick.randrange(len(objects))]
                        nbytes = self._read(name, size, buf)
                    elif op == "list":
                        self._list()
                    else:
                        i = pick.randrange(len(objects))
                        name = objects[i][0]
                        objects[i] = objects[-1]
                        objects.pop()
                        self.ws.delete(name)
                    ok = True
                except OSError as exc:
                    ok = False
                    st.errors[op] += 1
                    st.errors_done += 1
                    st.first_error.setdefault(op, f"{type(exc).__name__}: {exc}")
                t1 = time.perf_counter()
                sec = int(t1 - start)
                sec = 0 if sec < 0 else (sec if sec < nsec else nsec - 1)
                if ok:
                    st.count[op] += 1
                    st.bytes[op] += nbytes
                    st.hist[op].record(t1 - t0)
                    st.tl_ops[OPS.index(op)][sec] += 1
                    st.tl_bytes[sec] += nbytes
                    st.ops_done += 1
                    st.bytes_done += nbytes
                else:
                    st.tl_errors[sec] += 1
        except BaseException as exc:  # a bug or a failed preparation: stops the agent
            self.fatal.append(exc)
            self.stop.set()
        finally:
            st.finished_at = time.perf_counter()
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    self.done.set()

    def totals(self) -> Tuple[int, int, int]:
        return (sum(s.ops_done for s in self.stats), sum(s.bytes_done for s in self.stats),
                sum(s.errors_done for s in self.stats))


def run_agent(settings: Settings, base_path: Optional[str], index: int, seed: Any, token: str,
              start_at: float, ctx: Optional[live.TrialContext] = None, label: Optional[str] = None) -> Dict[str, Any]:
    """One worker's share of the benchmark (a Dask task pinned to that worker).

    Creates its directory below ``base_path``, runs the mix from ``start_at``
    (wall clock) for ``duration_s``, reports live about once a second, and
    removes everything it created before returning, also on error.
    """
    if label is None:
        try:
            from distributed import get_worker

            label = get_worker().address
        except (ImportError, ValueError):
            label = "local"
    ws = Workspace(base_path, re.sub(r"^[a-z]+://", "", label), token)
    agent: Optional[_Agent] = None
    threads: List[threading.Thread] = []
    result: Optional[Dict[str, Any]] = None
    try:
        agent = _Agent(settings, ws, index, seed)
        agent.prepare()
        start_lag = agent.start(start_at)  # > 0: this agent started after the common start time
        for t in range(settings.concurrency):
            th = threading.Thread(target=agent.run_thread, args=(t,), daemon=True, name=f"iobench-{index}-{t}")
            th.start()
            threads.append(th)
        # running figures about once a second, until every thread is done
        last_t, last_ops, last_bytes = agent.start_perf, 0, 0
        while True:
            wait = max(0.01, last_t + settings.report_interval_s - time.perf_counter())
            if agent.done.wait(wait):
                break
            now = time.perf_counter()
            if now < last_t + settings.report_interval_s:
                continue
            ops, nbytes, errors = agent.totals()
            dt = now - last_t
            live.report(context=ctx, ops_s=(ops - last_ops) / dt, MB_s=(nbytes - last_bytes) / dt / MB,
                        ops=ops, errors=errors)
            last_t, last_ops, last_bytes = now, ops, nbytes
        if agent.fatal:
            raise agent.fatal[0]
        ends = [s.finished_at for s in agent.stats if s.finished_at is not None]
        elapsed = max(1e-9, max(ends) - agent.start_perf)
        ops, nbytes, errors = agent.totals()
        live.report(context=ctx, ops_s=ops / elapsed, MB_s=nbytes / elapsed / MB, ops=ops, errors=errors)
        result = _agent_result(agent, label, index, elapsed, start_lag)
    finally:
        if agent is not None:
            agent.stop.set()
        for th in threads:
            th.join()
        problems = ws.remove()
        if ctx is not None:
            live.flush(ctx.trial_id)
        if problems and result is None:  # an error is on its way up: say so beside it
            import logging

            logging.getLogger(__package__).warning(  # the "daskbench.experiments.iobench" logger
                "iobench: cleanup on %s incomplete: %s", label, "; ".join(problems))
    result["cleanup"] = problems
    return result


def _agent_result(agent: _Agent, label: str, index: int, elapsed: float, start_lag: float) -> Dict[str, Any]:
    per_op = {}
    for op in OPS:
        h = LatencyHistogram()
        for st in agent.stats:
            h.merge(st.hist[op])
        per_op[op] = {
            "ops": sum(st.count[op] for st in agent.stats),
            "bytes": sum(st.bytes[op] for st in agent.stats),
            "errors": sum(st.errors[op] for st in agent.stats),
            "first_error": next((st.first_error[op] for st in agent.stats if op in st.first_error), ""),
            "hist": h.to_dict(),
        }
    return {
        "worker": label, "host": socket.gethostname(), "agent": index, "pid": os.getpid(),
        "elapsed_s": elapsed, "start_lag_s": start_lag, "dir": agent.ws.name,
        "concurrency": agent.s.concurrency, "ops": per_op,
        "timeline": {
            "ops": np.sum([st.tl_ops for st in agent.stats], axis=0),  # (op, second)
            "bytes": np.sum([st.tl_bytes for st in agent.stats], axis=0),
            "errors": np.sum([st.tl_errors for st in agent.stats], axis=0),
        },
    }
