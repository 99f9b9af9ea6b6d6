"""A command on the kept cluster's driver zygote (:mod:`.keep_driver`): hand it this
command's argv, folder, environment and stdio, pass Ctrl-C on, return its status.

Imports only the standard library: this runs before daskbench imports anything
heavy, and any doubt (no kept cluster, another Python or daskbench, daskbench's
source changed since the zygote imported it, another ``sys.path``, a refusal)
returns None, and the command runs in its own process as before.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import keep_state as ks

CONNECT_TIMEOUT_S = 2.0


def source_mtime(package: Path) -> float:
    """The newest modification time of daskbench's own source files."""
    newest = 0.0
    for folder, _dirs, files in os.walk(package):
        for f in files:
            if f.endswith(".py"):
                with contextlib.suppress(OSError):
                    newest = max(newest, os.stat(os.path.join(folder, f)).st_mtime)
    return newest


def _usable(driver: Dict[str, Any]) -> bool:
    package = Path(__file__).resolve().parents[1]
    return (
        bool(driver.get("socket"))
        and driver.get("python") == sys.executable
        and driver.get("package") == str(package)
        and driver.get("sys_path") == sys.path[1:]
        and source_mtime(package) <= float(driver.get("source_mtime", 0))
    )


def _driver() -> Optional[Dict[str, Any]]:
    folder = ks.state_dir(os.environ, Path.home())
    try:
        kept = ks.parse((folder / ks.STATE_NAME).read_text())
        os.kill(kept.pid, 0)
    except (OSError, ks.StateCorrupt):
        return None  # the run itself says what is wrong with a stale file
    return kept.driver if _usable(kept.driver) else None


def _request(words: List[str]) -> bytes:
    umask = os.umask(0)
    os.umask(umask)
    body = json.dumps(
        {
            "words": words,
            "argv": sys.argv,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "sys_path": sys.path,
            "umask": umask,
            "encoding": getattr(sys.stdout, "encoding", None),
        }
    ).encode()
    return struct.pack("!I", len(body)) + body


def run(words: List[str]) -> Optional[int]:
    """The command's exit status, run by the zygote; None: run it here instead."""
    if os.environ.get(ks.TOKEN_ENV):
        return None
    driver = _driver()
    if driver is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(driver["socket"])
        fds = array.array("i", [0, 1, 2])
        sock.sendmsg([_request(words)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
        sock.settimeout(60.0)  # the zygote forks at once, but may still be importing just after a start
        if sock.recv(1) != b"A":
            return None
        sock.sendall(b"G")  # from here on the command is the zygote's
    except OSError:
        sock.close()
        return None
    sock.settimeout(None)
    return _wait(sock)


def _wait(sock: socket.socket) -> int:
    """Pass Ctrl-C on until the child sends its status."""

    def interrupt(*_: Any) -> None:
        try:
            sock.sendall(b"I")
        except OSError:
            pass

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        got = b""
        while len(got) < 5:
            try:
                more = sock.recv(5 - len(got))
            except InterruptedError:
                continue
            if not more:
                break
            got += more
    finally:
        signal.signal(signal.SIGINT, previous)
        sock.close()
    if len(got) == 5 and got[:1] == b"X":
        return int(struct.unpack("!i", got[1:])[0])
    print("daskbench: error: the kept cluster's driver process ended without a status", file=sys.stderr)
    return 3
