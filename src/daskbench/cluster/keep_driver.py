"""The kept cluster's driver zygote: a process that has imported daskbench's run
path once (distributed, Hydra, pyarrow, pandas, the report's libraries) and forks
one child per command, so a run on the kept cluster pays none of those imports.

Fork safety: the zygote is forked from the kept cluster's process before that
starts any thread, imports with the native pools that would start threads
turned off (OpenBLAS, OpenMP, pyarrow's jemalloc background thread), never runs
Dask or anything else itself, and before every fork counts its own threads
(``/proc/self/task``): with more than one it refuses, and the command runs in
its own process as it would without a kept cluster.

A command (:mod:`.keep_client`) connects to the Unix socket in the state folder
and sends its argv, working folder, environment, ``sys.path``, Python and
daskbench folder and its stdin, stdout and stderr (SCM_RIGHTS). The child checks
that it may run the command (:func:`refusal`), takes them over, runs
``daskbench.__main__.main`` and sends the exit status back. Bytes on the socket:
``A`` the child can run the command, ``N`` refused, ``X`` and a 4-byte status
at the end; from the command, ``G`` to go ahead (so a command that gave up
waiting never runs twice), ``I`` for Ctrl-C (end of file: the command is gone,
the child is interrupted as by Ctrl-C).
"""

from __future__ import annotations

import array
import atexit
import contextlib
import io
import marshal
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from . import keep_state as ks
from .keep_paths import SOCKET_NAME, source_mtime

PRELOAD = (
    "daskbench.__main__",
    "daskbench.api",
    "daskbench.cluster.keep",
    "daskbench.cluster.keep_connect",
    "daskbench.observe.report",
    "distributed",
    "pyarrow.parquet",
    "pandas",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "scipy.stats",
    "argparse",
    # what a run's first Client and first prepare() import (found by diffing sys.modules in a child)
    "daskbench.observe.plugin",
    "daskbench.observe.scheduler_plugins",
    "daskbench.observe.report_background",
    "tornado.platform.asyncio",
    "importlib_metadata._adapters",
)
#: set before the zygote imports anything: native libraries that would start threads
QUIET_THREADS = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
}


def threads() -> int:
    """OS threads of this process (Python's count where there is no /proc)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def fork_zygote(folder: Path) -> Tuple[Dict[str, Any], int]:
    """Bind the socket and fork the zygote; (what the state file records, its pid).
    Call it while this process has no thread but the main one."""
    path = folder / SOCKET_NAME
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket is the user's alone: 0600
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(16)
    package = Path(__file__).resolve().parents[1]
    info = {
        "socket": str(path),
        "python": sys.executable,
        "package": str(package),
        "sys_path": sys.path[1:],
        "source_mtime": source_mtime(package),
    }
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _zygote(listener, parent, info)
        finally:
            os._exit(code)
    listener.close()
    return info, pid


def refusal(request: Dict[str, Any], info: Dict[str, Any], kept: Any) -> Optional[str]:
    """Why this zygote (``info``: what :func:`fork_zygote` recorded, ``kept``: the state
    file's record or None) must not run the command ``request``, or None: it runs commands
    of the same Python, daskbench and ``sys.path`` only, while daskbench's source is the
    one it imported, for the kept cluster that started it (and has published it)."""
    if request.get("python") != info["python"] or request.get("package") != info["package"]:
        return "another Python or daskbench"
    if list(request.get("sys_path") or [])[1:] != info["sys_path"]:
        return "another sys.path"
    if kept is None or kept.driver.get("socket") != info["socket"]:
        return "the state file names another driver"
    if source_mtime(Path(info["package"])) > float(info["source_mtime"]):
        return "daskbench's source changed since the driver imported it"
    return None


def _zygote(listener: socket.socket, parent: int, info: Dict[str, Any]) -> int:
    os.environ.update(QUIET_THREADS)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(name)
    _warm()
    print(f"driver zygote {os.getpid()}: imports done, {threads()} thread(s)", flush=True)
    while os.getppid() == parent:  # ends with the kept cluster's process
        ready, _, _ = select.select([listener], [], [], 1.0)
        _reap()
        if not ready:
            continue
        conn, _ = listener.accept()
        if os.getppid() != parent:  # the kept cluster's process is gone: so is its cluster
            with contextlib.suppress(OSError):
                conn.sendall(b"N")
            conn.close()
            break
        if threads() != 1:
            print(f"refusing a command: {threads()} threads, forking is unsafe", flush=True)
            with contextlib.suppress(OSError):
                conn.sendall(b"N")
            conn.close()
            continue
        if os.fork() == 0:
            listener.close()
            code = 1
            try:
                code = _child(conn, info)
            finally:
                os._exit(code)
        conn.close()
    return 0


#: command-line words of the shapes commands use, parsed once by the zygote (:func:`_warm`)
WARM_WORDS = (
    "trial.x=1",
    "trial.x=-1.5e-3",
    "trial.x=1,2,3",
    "trial.x=a,b",
    "trial.x=range(0,10)",
    "trial.x=range(1,10,2)",
    "trial.x=choice(a,b)",
    "trial.x=interval(0,1)",
    "trial.x='a b'",
    "trial.x={a:1,b:2}",
    "trial.x=[1,2]",
    "+trial.y=null",
    "~trial.z",
    "seed=true",
    "cluster=address",
    "cluster.address=tcp://127.0.0.1:8786",
    "hydra.searchpath=[file:///home/user/my-conf_2]",
)
#: values with interpolations, resolved once by the zygote
WARM_VALUES = {"name": "x", "a": "results/${name}", "b": "${name}-${a}_2", "c": "${oc.env:HOME,/tmp}"}


def _warm() -> None:
    """Work every command would do first and that gives the same answer each time, done once
    here without starting a thread: Hydra's plugin scan and a compose with a config folder, the
    parsers' first reading of each shape of word and interpolation (ANTLR builds its tables as
    it meets them: ~10 ms a new shape), and the package versions the run's manifest and its
    Client's handshake record (the modules in memory are the ones the commands run, whatever
    is installed meanwhile)."""
    with contextlib.suppress(Exception):
        from omegaconf import OmegaConf

        from ..config.compose import build_plan, package_conf_dir
        from ..sweep.axes import parse_override

        build_plan("sweep", ["results.dir=/tmp/daskbench-warm/sweep"], str(package_conf_dir()))
        for word in WARM_WORDS:
            parse_override(word)
        OmegaConf.to_container(OmegaConf.create(WARM_VALUES), resolve=True)
    with contextlib.suppress(Exception):
        from distributed.versions import get_versions

        from ..results.manifest import versions

        get_versions()
        versions()


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _receive(conn: socket.socket) -> Tuple[Dict[str, Any], List[int]]:
    """The command's request: its JSON and the three file descriptors sent with it."""
    fds = array.array("i")
    data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    size = int.from_bytes(data[:4], "big")
    body = data[4:]
    while len(body) < size:
        more = conn.recv(size - len(body))
        if not more:
            raise ConnectionError("the command closed its socket")
        body += more
    try:
        request = marshal.loads(body)  # what keep_client._request wrote: plain dicts, lists, strings
    except (ValueError, EOFError, TypeError):
        request = None  # another Python's format: refused
    return request if isinstance(request, dict) else {}, list(fds)


def _state(info: Dict[str, Any]) -> Any:
    """The state file's record, or None (not written yet, gone or corrupt)."""
    try:
        return ks.parse((Path(info["socket"]).parent / ks.STATE_NAME).read_text())
    except (OSError, ks.StateCorrupt):
        return None


def _take_over(request: Dict[str, Any], fds: List[int]) -> None:
    """Become the command: its stdio, folder, environment, import path and argv."""
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
        os.close(fd)
    unbuffered = bool(request["env"].get("PYTHONUNBUFFERED"))
    enc = request.get("encoding") or "utf-8"
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=enc)
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding=enc, line_buffering=os.isatty(1), write_through=unbuffered
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding=enc, errors="backslashreplace", line_buffering=True
    )
    os.chdir(request["cwd"])
    os.umask(int(request["umask"]))
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.path[:] = request["sys_path"]
    sys.argv = request["argv"]
    import dask

    dask.config.refresh()  # DASK_* variables of the command's environment


def _admitted(conn: socket.socket, request: Dict[str, Any], info: Dict[str, Any], log: Any) -> Any:
    """The kept cluster's record if this child may run the command (logged); else None,
    and the command is told to run in its own process."""
    kept = _state(info)
    why = refusal(request, info, kept) if request else "a request this Python cannot read"
    if why:
        print(f"refused a command ({why}): it runs in its own process", file=log, flush=True)
        with contextlib.suppress(OSError):
            conn.sendall(b"N")
        return None
    print(f"command {os.getpid()} in {request['cwd']}: {' '.join(request['words'])}", file=log, flush=True)
    return kept


def _child(conn: socket.socket, info: Dict[str, Any]) -> int:
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.perf_counter()
    request, fds = _receive(conn)
    log = os.fdopen(os.dup(1), "w")  # the zygote's log, before the command's stdout takes fd 1
    kept = _admitted(conn, request, info, log)
    if kept is None:
        return 0
    _take_over(request, fds)
    conn.sendall(b"A")
    if conn.recv(1) != b"G":  # the command gave up waiting and runs in its own process: not here too
        return 0
    threading.Thread(target=_watch, args=(conn,), daemon=True, name="daskbench-command").start()
    if runs_trials(request["words"]):
        from .keep_connect import connect_early

        connect_early(kept)  # while the command composes its config
    from .. import __main__ as cli

    try:
        code = cli.main(request["words"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()  # what an interpreter's exit would run; then no slow teardown
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    usage = os.times()
    with contextlib.suppress(Exception):  # logged first: once the status is sent the command may read the log
        print(
            f"done {os.getpid()}: status {code}, {time.perf_counter() - started:.3f}s, "
            f"cpu {usage.user + usage.system:.3f}s",
            file=log,
            flush=True,
        )
    _let_go_of_stdio()
    with contextlib.suppress(OSError):
        conn.sendall(b"X" + int(code).to_bytes(4, "big", signed=True))
    return code


def _let_go_of_stdio() -> None:
    """Point fds 0-2 at /dev/null before the status goes out. The command exits on the
    status; this process closes its files only later, as it exits, and until then a
    reader of the command's pipe (``| tail``, CI) would wait on it."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)


#: the options of commands that run no trials (argparse takes any unambiguous prefix of them)
_NO_TRIALS = ("--dry-run", "--cfg", "--list", "--report", "--help")


def runs_trials(words: List[str]) -> bool:
    """Whether a command's words ask for a run (not ``--dry-run``, ``--cfg`` and the like)."""
    opts = [w.split("=", 1)[0] for w in words if w.startswith("--")]
    return not any(o.startswith(w) for w in opts for o in _NO_TRIALS) and "-h" not in words


def _watch(conn: socket.socket) -> None:
    """Ctrl-C from the command (or the command gone) interrupts the run as Ctrl-C would."""
    while True:
        try:
            got = conn.recv(1)
        except OSError:
            got = b""
        if got == b"I" or not got:
            os.kill(os.getpid(), signal.SIGINT)
        if not got:
            return
