"""podman, as the container tests use it: named containers on the host's network.

Every name starts with the run's prefix (``DASKBENCH_CT_PREFIX``), so
``run.sh`` can remove exactly what a run created, even after a crash.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import time
import urllib.request
from typing import Dict, List, Optional

IMAGE = os.environ.get("DASKBENCH_CT_IMAGE", "")
PREFIX = os.environ.get("DASKBENCH_CT_PREFIX", "")
REQUIRED = os.environ.get("DASKBENCH_CT_REQUIRED") == "1"


def unavailable() -> Optional[str]:
    """Why the container tests cannot run here (None: they can)."""
    if not IMAGE or not PREFIX:
        if os.geteuid() != 0:
            return "needs root and podman; run `make test-containers` as root"
        return "needs the image `make test-containers` builds: run `make test-containers`"
    if shutil.which("podman") is None:
        return "podman is not installed"
    return None


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    r = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def free_port() -> int:
    """A free port on 127.0.0.1 in 18000-19999, away from the ephemeral range other tests draw from."""
    for _ in range(200):
        port = random.randint(18000, 19999)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18000-19999")


def run(
    name: str,
    args: List[str],
    env: Optional[Dict[str, str]] = None,
    cpus: str = "1",
    memory: str = "2g",
    image: str = "",
) -> str:
    """Start a detached container ``PREFIX-name`` on the host's network; returns its name."""
    full = f"{PREFIX}-{name}"
    flags = ["--detach", "--name", full, "--network", "host", "--cpus", cpus, "--memory", memory]
    for k, v in (env or {}).items():
        flags += ["--env", f"{k}={v}"]
    podman("run", *flags, image or IMAGE, *args)
    return full


def logs(name: str, tail: int = 40) -> str:
    r = podman("logs", "--tail", str(tail), name, check=False)
    return (r.stdout + r.stderr).strip()


def state(name: str) -> Dict:
    return json.loads(podman("inspect", "--format", "{{json .State}}", name).stdout)


def remove(*names: str) -> None:
    if names:
        podman("rm", "--force", "--time", "5", *names, check=False)


def http_get(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_for_workers(address: str, n: int, timeout: float = 90, why: str = "") -> Dict[str, Dict]:
    """Block until the scheduler at ``address`` has ``n`` workers; returns {address: worker info}."""
    from distributed import Client

    deadline = time.monotonic() + timeout
    last: Exception = TimeoutError()
    while time.monotonic() < deadline:
        try:
            with Client(address, timeout="5s") as c:
                c.wait_for_workers(n, timeout=max(deadline - time.monotonic(), 1))
                return dict(c.scheduler_info(n_workers=-1)["workers"])
        except (OSError, TimeoutError) as exc:
            last = exc
            time.sleep(1)
    raise TimeoutError(f"{n} workers did not join {address} in {timeout:g}s ({last}); {why}")
