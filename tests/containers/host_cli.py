"""The daskbench CLI on the host, as a user runs it against the containers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List


def cli(args: List[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m daskbench ARGS`` on the host, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "daskbench", *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_cli(args: List[str], cwd: Path) -> subprocess.Popen:
    """The same, in the background; its output goes to ``cwd/cli.log``."""
    log = open(cwd / "cli.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "daskbench", *args],
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdin=subprocess.DEVNULL,
    )


def finish(p: subprocess.Popen, cwd: Path, timeout: float = 300) -> str:
    """Wait for a background CLI; its output, after checking it exited 0."""
    try:
        p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = (cwd / "cli.log").read_text()
    assert p.returncode == 0, out[-3000:]
    return out
