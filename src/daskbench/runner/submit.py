"""Chunks to Dask futures and their results back, at the least cost to the scheduler.

Each ``client.submit`` is a graph update of its own, and the scheduler's cost per
update is much of its cost per task; so the driver hands over every chunk of a
refill in one ``client.map`` (one update). The run's spec is pickled once per run
and every task carries those bytes and a token (:func:`~daskbench.runner.spec.dump_spec`):
the scheduler forwards bytes instead of pickling the spec for each task, and a
worker unpickles it once per run. Results are fetched a batch of finished tasks at a time, straight from the
workers when the scheduler listens on this machine's loopback (a local cluster:
the workers are local too), so the rows do not pass through the scheduler; on
any other cluster the client's own ``direct_to_workers`` decides, since a driver
outside a Kubernetes cluster may reach its scheduler but not its workers.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from distributed import Client
from distributed.client import FutureCancelledError

from .execute import run_packed
from .spec import TrialSpec, dump_spec, pack


class Submitter:
    """Submits chunks (lists of trials) under keys ``key_prefix + n`` and fetches their results."""

    def __init__(self, client: Client, key_prefix: str, resources: Dict[str, Any], priority: int, retries: int) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.n = 0
        # the scheduler's defaults are left out: no annotation to carry per task
        self.options: Dict[str, Any] = {"pure": False}
        if resources:
            self.options["resources"] = dict(resources)
        if priority:
            self.options["priority"] = priority
        if retries:
            self.options["retries"] = retries
        self.direct = _loopback(client)
        # each spec the run sends (the run's own, its quarantine's): (spec, token, pickled)
        self._specs: List[Tuple[TrialSpec, str, bytes]] = []

    def _packed_spec(self, spec: TrialSpec) -> Tuple[str, bytes]:
        for known, token, data in self._specs:
            if known is spec:
                return token, data
        token = f"{self.key_prefix}spec{len(self._specs)}"
        self._specs.append((spec, token, dump_spec(spec)))
        return token, self._specs[-1][2]

    def submit(self, spec: TrialSpec, chunks: Sequence[Sequence[Any]], budget_s: Optional[float] = None) -> List[Any]:
        """One future per chunk, all in one graph update; the keys name the experiment for
        the dashboard. ``budget_s``: a chunk starts no trial once it has run that long."""
        keys = [f"{self.key_prefix}{self.n + i + 1}" for i in range(len(chunks))]
        self.n += len(chunks)
        packed = [pack(c) for c in chunks]
        token, data = self._packed_spec(spec)
        if len(chunks) == 1:
            return [self.client.submit(run_packed, token, data, packed[0], budget_s, key=keys[0], **self.options)]
        n = len(chunks)
        return list(
            self.client.map(run_packed, [token] * n, [data] * n, packed, [budget_s] * n, key=keys, **self.options)
        )

    def results(self, ac: Any, need: int = 1) -> List[Tuple[Any, Any]]:
        """Wait for ``need`` tasks of ``ac`` (an ``as_completed`` without results) to end;
        (future, result) for every ended one: its ``ChunkResult`` or the exception it ended
        with. Fetched together: one request to the scheduler for a refill's worth of tasks."""
        futs = ac.next_batch(block=True)
        while len(futs) < need and not ac.is_empty():
            futs += ac.next_batch(block=True)
        # each future's status read once: it changes under us (a finished task whose worker
        # died is lost, then finished again elsewhere), and every future must come out once
        done: List[Any] = []
        rest: List[Any] = []
        for f in futs:
            (done if f.status == "finished" else rest).append(f)
        out: List[Tuple[Any, Any]] = []
        if done:
            try:
                values = self.client.gather(done, direct=self.direct)
                out += list(zip(done, values))
            except Exception:  # one of them went missing (its worker died): each alone, as Dask tells it
                out += [(f, _one(f)) for f in done]
        out += [(f, _one(f)) for f in rest]
        return out


def _one(fut: Any) -> Any:
    """A single future's result, or the exception it ended with."""
    try:
        return fut.result()
    except FutureCancelledError as exc:
        return exc
    except Exception as exc:
        return exc


def _loopback(client: Client) -> Optional[bool]:
    """True for a scheduler on a loopback or in-process address; else the client's own choice."""
    address = str(getattr(client.scheduler, "address", "") or "")
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if address.startswith("inproc://") or host in ("127.0.0.1", "localhost", "::1"):
        return True
    return None
