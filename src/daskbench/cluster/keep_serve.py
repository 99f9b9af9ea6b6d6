"""The kept cluster's own process, started detached by ``python -m daskbench cluster start``:

    python -m daskbench.cluster.keep_serve STATE_FILE TOKEN SETTINGS_JSON

It starts the LocalCluster as a run would (:func:`.create.connect`, so the same
workers, plugins and Dask settings), writes the state file once the workers are
up, and holds the cluster until SIGTERM (``cluster stop``) or SIGINT, or until
its scheduler is gone; then it closes the cluster and removes the state file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

from . import keep_state as ks

#: ``0`` keeps runs in their own process (no driver zygote): for comparison and debugging
ZYGOTE_ENV = "DASKBENCH_KEPT_DRIVER"


def config_of(settings: Dict[str, Any]) -> Any:
    """The ``LocalClusterConfig`` of :func:`.keep_state.settings_of`'s record."""
    from ..config.schema import AdaptConfig, LocalClusterConfig, SecurityConfig

    s = dict(settings)
    return LocalClusterConfig(
        n_workers=s["n_workers"],
        threads_per_worker=s["threads_per_worker"],
        processes=s["processes"],
        memory_limit=s["memory_limit"],
        resources=dict(s["resources"]),
        host=s["host"],
        dashboard_address=s["dashboard_address"],
        adapt=AdaptConfig(**s["adapt"]),
        security=SecurityConfig(**s["security"]),
        dask_config=s.get("dask_config"),  # dotted keys (flat_dask_config keeps them), or null: Dask's own
    )


def _publish(state: Path, kept: ks.Kept) -> None:
    """Write the state file (mode 0600) in one step; refuse to replace another's."""
    tmp = state.with_name(f".{state.name}.{kept.token}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(kept.to_json())
    try:
        os.link(tmp, state)  # fails if another kept cluster wrote its file meanwhile
    finally:
        os.unlink(tmp)


def _unpublish(state: Path, token: str) -> None:
    with contextlib.suppress(OSError, ks.StateCorrupt):
        if ks.parse(state.read_text()).token == token:
            state.unlink()


def main(argv: List[str]) -> int:
    state, token, settings = Path(argv[0]), argv[1], json.loads(argv[2])
    driver: Dict[str, Any] = {}
    if os.environ.get(ZYGOTE_ENV, "1") != "0" and hasattr(os, "fork"):
        from .keep_driver import fork_zygote

        with contextlib.suppress(OSError):  # e.g. a state folder whose socket path is too long
            driver, _ = fork_zygote(state.parent)  # first: no thread runs here yet
    if not driver:  # no zygote: still record which daskbench the workers run (keep._other_code)
        from .keep_paths import source_mtime

        package = Path(__file__).resolve().parents[1]
        driver = {"package": str(package), "source_mtime": source_mtime(package)}
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from .create import connect
    from .dashboard import dashboard_link

    with connect(config_of(settings), quiet=True) as client:
        kept = ks.Kept(
            address=client.scheduler.address,
            pid=os.getpid(),
            token=token,
            started_at=time.time(),
            dashboard=dashboard_link(client),
            settings=settings,
            log=str(state.with_name(ks.LOG_NAME)),
            worker_pids=sorted(set(client.run(os.getpid).values())),
            driver=driver,
        )
        try:
            _publish(state, kept)
        except FileExistsError:
            print(f"another kept cluster wrote {state} meanwhile; this one stops", flush=True)
            return 1
        print(f"kept cluster up at {kept.address}, {len(kept.worker_pids)} workers", flush=True)
        try:
            while not stop.wait(0.5):
                if client.status not in ("running", "connecting"):
                    print(f"the scheduler is gone (client {client.status}); stopping", flush=True)
                    break
        finally:
            _unpublish(state, token)
            if driver:
                with contextlib.suppress(OSError):
                    os.unlink(driver["socket"])
    print("kept cluster stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
