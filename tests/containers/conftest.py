"""Fixtures of the container tests: the image, a containerized cluster, the CLI on the host.

The tests here that need podman run under ``make test-containers``
(tests/containers/run.sh builds the image and exports ``DASKBENCH_CT_*``).
Under a plain ``make test`` they are skipped with the reason; under
``make test-containers`` a test that cannot run fails instead of skipping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

import podman_engine as pe
import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


@pytest.fixture(scope="session")
def image() -> str:
    """The image run.sh built from deploy/Dockerfile."""
    why = pe.unavailable()
    if why:
        if pe.REQUIRED:
            pytest.fail(f"container tests cannot run: {why}")
        pytest.skip(f"container test: {why}")
    return pe.IMAGE


@dataclass
class Cluster:
    """A scheduler container and worker containers, all on 127.0.0.1."""

    address: str
    dashboard: str
    scheduler: str  # container name
    workers: Dict[str, str] = field(default_factory=dict)  # container name -> worker address

    def worker_address(self, name: str) -> str:
        return self.workers[f"{pe.PREFIX}-{name}"]

    def start_worker(self, name: str, *extra: str) -> str:
        """Start ``dask worker`` in a container of its own; returns the container name."""
        port = pe.free_port()
        container = pe.run(
            name,
            [
                "dask",
                "worker",
                self.address,
                "--name",
                name,
                "--nthreads",
                "1",
                "--host",
                HOST,
                "--dashboard-address",
                f"{HOST}:{port}",
                *extra,
            ],
            env={"DASKBENCH_HEALTH_URL": f"http://{HOST}:{port}/health"},
        )
        self.workers[container] = ""
        return container

    def refresh(self, n: int) -> None:
        """Wait for ``n`` workers and learn their addresses (by the names given above)."""
        info = pe.wait_for_workers(self.address, n, why=self.logs())
        by_name = {w["name"]: addr for addr, w in info.items()}
        for container in self.workers:
            name = container[len(pe.PREFIX) + 1 :]
            if name in by_name:
                self.workers[container] = by_name[name]

    def logs(self) -> str:
        return "\n".join(f"--- {c}\n{pe.logs(c)}" for c in [self.scheduler, *self.workers])


@pytest.fixture(scope="session")
def cluster(image, request) -> Cluster:
    """`dask scheduler` and two `dask worker` containers, one of them with GPU=1.

    The scheduler is started as conf/cluster/address.yaml advises (allowed
    failures 0); everything binds 127.0.0.1 on free ports in 18000-19999.
    """
    port, dash = pe.free_port(), pe.free_port()
    sched = pe.run(
        "scheduler",
        ["dask", "scheduler", "--host", HOST, "--port", str(port), "--dashboard-address", f"{HOST}:{dash}"],
        env={
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
            "DASKBENCH_HEALTH_URL": f"http://{HOST}:{dash}/health",
        },
    )
    c = Cluster(address=f"tcp://{HOST}:{port}", dashboard=f"http://{HOST}:{dash}", scheduler=sched)
    try:
        c.start_worker("worker-1")
        c.start_worker("worker-gpu", "--resources", "GPU=1")
        c.refresh(2)
        yield c
    finally:
        if request.session.testsfailed:
            print(c.logs())
        pe.remove(sched, *c.workers)
