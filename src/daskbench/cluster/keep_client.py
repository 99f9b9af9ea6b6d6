"""A command on the kept cluster's driver zygote (:mod:`.keep_driver`): hand it this
command's argv, folder, environment and stdio, pass Ctrl-C on, return its status.

This runs before daskbench imports anything else, and every module it imports
adds to each command's start-up: so only built-in modules (``marshal``, and
``_socket`` and ``_signal``, the C modules that ``socket`` and ``signal`` wrap:
those wrappers import ``enum`` and ``selectors``) and :mod:`.keep_paths`. The
zygote decides whether it can run the command (the same Python, daskbench and
``sys.path``, daskbench's source unchanged since it imported it, a kept cluster
that is still its own); no zygote, a refusal or any doubt returns None, and the
command runs in its own process as before.
"""

from __future__ import annotations

import marshal
import os
import sys

from . import keep_paths as kp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional

CONNECT_TIMEOUT_S = 2.0


def _request(words: List[str]) -> bytes:
    """The command as the zygote reads it: a 4-byte length, then a marshalled dict (the
    socket is the user's alone, mode 0600, so nothing else writes to it; a zygote of
    another Python that cannot read the dict refuses)."""
    umask = os.umask(0)
    os.umask(umask)
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    body = marshal.dumps(
        {
            "words": list(words),
            "argv": list(sys.argv),
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "sys_path": list(sys.path),
            "umask": umask,
            "encoding": getattr(sys.stdout, "encoding", None),
            "python": sys.executable,
            "package": package,
        }
    )
    return len(body).to_bytes(4, "big") + body


def run(words: List[str]) -> Optional[int]:
    """The command's exit status, run by the zygote; None: run it here instead."""
    if os.environ.get(kp.TOKEN_ENV):  # inside the kept cluster itself
        return None
    try:
        import _signal
        import _socket
    except ImportError:  # not CPython
        return None
    path = os.path.join(kp.state_folder(os.environ, os.path.expanduser("~")), kp.SOCKET_NAME)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(path)  # no kept cluster, or one that is gone: refused or no such file
        fds = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in (0, 1, 2))  # a C int[3]
        sock.sendmsg([_request(words)], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        sock.settimeout(60.0)  # the zygote forks at once, but may still be importing just after a start
        if sock.recv(1) != b"A":
            sock.close()
            return None
        sock.sendall(b"G")  # from here on the command is the zygote's
    except OSError:
        sock.close()
        return None
    sock.settimeout(None)
    return _wait(sock, _signal)


def _wait(sock: Any, signals: Any) -> int:
    """Pass Ctrl-C on until the child sends its status."""

    def interrupt(*_: Any) -> None:
        try:
            sock.sendall(b"I")
        except OSError:
            pass

    previous = signals.signal(signals.SIGINT, interrupt)
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
        signals.signal(signals.SIGINT, previous)
        sock.close()
    if len(got) == 5 and got[:1] == b"X":
        return int.from_bytes(got[1:], "big", signed=True)
    print("daskbench: error: the kept cluster's driver process ended without a status", file=sys.stderr)
    return 3
