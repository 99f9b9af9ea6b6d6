"""Run one trial in a child process that can be killed.

This is what ``timeout_s`` (with ``runner.isolation: auto``, the default) and
``runner.isolation: process`` use. A Python thread cannot be stopped, so a
trial that hangs in a thread holds its worker's slot for ever; here the trial
runs in a fresh interpreter (``python -m daskbench.runner.isolate``) in a session of
its own, and at the deadline the whole session is killed, so the slot is free
again. A crash in the trial (``os._exit``, a segfault) ends the child only and
becomes that trial's failure, with Python's fault traceback when there is one.

Dask's worker processes are daemonic and daemonic processes may not start
``multiprocessing`` children, hence a plain subprocess. The child gets the
worker's ``sys.path`` (with the trial's folders and code shipped by
``upload_file``), its working directory and environment; ``daskbench.report``
calls in the child are relayed through the worker as usual.

Protocol: the job (a pickle) goes to the child's stdin; the child sends framed
pickles back on a pipe: ``("start",)`` once the trial's code is imported (the
deadline counts from there, so an interpreter start and a slow import are not
the trial's time), ``("live", topic, message)`` any number of times, then one
``("result", value)`` or ``("error", text, traceback, kind)`` (kind: a
:class:`~daskbench.results.row.FailureKind`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..results.row import FailureKind, kind_of_exception

_HEADER = struct.Struct("!Q")
#: seconds a child may take to start and import the trial's code, on top of timeout_s
STARTUP_GRACE_S = 120.0
#: how much of a crashed child's stderr goes into the trial's traceback column
_STDERR_TAIL = 8000


class TrialTimeout(Exception):
    """The trial ran longer than ``timeout_s``."""


class TrialNeedsWorker(RuntimeError):
    """A trial in a child process asked for its Dask worker, which is not there.

    A RuntimeError, not the ValueError ``get_worker`` raises outside a worker:
    code that falls back to running without Dask on that ValueError would
    otherwise silently do something else in the child.
    """


_NO_WORKER = (
    "this trial runs in a child process of its own (timeout_s, or runner.isolation=process), away "
    "from its Dask worker: it cannot secede, submit tasks or reach actors from there. Set "
    "runner.isolation=thread to call it in the worker's own thread (timeout_s then cannot stop it), "
    "or remove timeout_s"
)


class TrialProcessError(Exception):
    """The trial failed in its child process; carries the child's own text and
    the kind of its failure."""

    def __init__(self, error: str, traceback_text: Optional[str], kind: FailureKind = FailureKind.RAISED):
        super().__init__(error)
        self.error, self.traceback_text, self.kind = error, traceback_text, kind


def call(spec: Any, gkey: Any, params: Dict[str, Any], context: Any = None) -> Any:
    """Call the trial (:func:`daskbench.runner.invoke.call_trial`) in a child process and return its value.

    Raises :class:`TrialTimeout` at ``spec.timeout_s`` (the child and anything it
    started are killed first) and :class:`TrialProcessError` for an exception in
    the trial or a child that died without answering.
    """
    from ..observe import live

    job = pickle.dumps(
        {
            "spec": spec,
            "gkey": gkey,
            "params": params,
            "sys_path": list(sys.path),
            "context": context,
            "parent": os.getpid(),
            "memory_limit": _worker_memory_limit() if getattr(spec, "quarantine", False) else None,
        },
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    timeout = float(spec.timeout_s) if spec.timeout_s else None
    frames, timed_out, stderr, returncode = run_child("daskbench.runner.isolate", job, timeout, live.send)
    answer = next((f for f in frames if f[0] in ("result", "error")), None)
    if answer is None:
        if timed_out:
            raise TrialTimeout(f"trial ran longer than timeout_s={spec.timeout_s:g}; its process was killed")
        raise TrialProcessError(_death(returncode), stderr[-_STDERR_TAIL:] or None, FailureKind.PROCESS_DIED)
    if answer[0] == "error":
        raise TrialProcessError(answer[1], answer[2], answer[3])
    return answer[1]


def run_child(
    module: str, message: bytes, timeout: Optional[float], relay: Callable[[str, Dict[str, Any]], None]
) -> Tuple[List[Tuple], bool, str, Optional[int]]:
    """Run ``python -m module WRITE_FD`` in a process group of its own, send it ``message``
    on stdin and collect the frames it writes back (relaying live reports as they come);
    the group is killed at the end, with whatever the child left running. Returns
    (frames, timed out, the child's stderr, its exit status); the stderr also goes to
    this process's stderr (a worker's log, as an in-process call's would)."""
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, str(write_fd)],
                stdin=subprocess.PIPE,
                stderr=err,
                pass_fds=(write_fd,),
                start_new_session=True,
            )  # its own group: killed as a whole
        finally:
            os.close(write_fd)
        try:
            frames, timed_out = _talk(proc, message, read_fd, timeout, relay)
        finally:
            os.close(read_fd)
            _kill_group(proc)  # also whatever the child left running
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if stderr:
        sys.stderr.write(stderr)
    return frames, timed_out, stderr, proc.returncode


def _answered(frames: List[Tuple]) -> bool:
    return any(f[0] in ("result", "error") for f in frames)


def _talk(
    proc: subprocess.Popen,
    job: bytes,
    read_fd: int,
    timeout: Optional[float],
    relay: Callable[[str, Dict[str, Any]], None],
) -> Tuple[List[Tuple], bool]:
    """Send the job, relay live reports as they come, collect the answer;
    returns (frames, timed out)."""
    deadline = None if timeout is None else time.monotonic() + timeout + STARTUP_GRACE_S
    assert proc.stdin is not None  # the child is started with stdin=PIPE
    try:
        proc.stdin.write(job)
        proc.stdin.close()
    except BrokenPipeError:  # the child died at once; its exit status says why
        pass
    frames: List[Tuple] = []
    buf = bytearray()
    eof = False
    while not eof:
        wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
        if wait <= 0:
            return frames, True
        ready, _, _ = select.select([read_fd], [], [], wait)
        if ready:
            data = os.read(read_fd, 1 << 20)
            eof = not data
            buf += data
            for frame in _unframe(buf):
                if frame[0] == "live":
                    relay(frame[1], frame[2])  # while the trial runs, as from a trial in the worker
                elif frame[0] == "start":
                    if timeout is not None:
                        deadline = time.monotonic() + timeout  # the trial itself starts now
                else:
                    frames.append(frame)
            eof = eof or _answered(frames)  # no need to wait for EOF
        elif proc.poll() is not None:
            # exited, and a grandchild may still hold the pipe open: take what is there
            eof = True
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)  # answered and hung on the way out: the answer stands, it is killed
    return frames, False


def _unframe(buf: bytearray) -> List[Tuple]:
    out = []
    while len(buf) >= _HEADER.size:
        (n,) = _HEADER.unpack_from(buf)
        if len(buf) < _HEADER.size + n:
            break
        out.append(pickle.loads(bytes(buf[_HEADER.size : _HEADER.size + n])))
        del buf[: _HEADER.size + n]
    return out


def _worker_memory_limit() -> Optional[int]:
    try:
        from distributed import get_worker

        return get_worker().memory_manager.memory_limit or None
    except (ImportError, ValueError, AttributeError):
        return None


def _limit_memory(limit: Optional[int]) -> None:
    """Cap the child's data segment (heap and anonymous mappings): past it,
    allocations fail with MemoryError instead of the kernel or a nanny killing
    a process."""
    if not limit:
        return
    with contextlib.suppress(Exception):
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (int(limit), int(limit)))


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def _death(code: Optional[int]) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"TrialProcessDied: the trial's process was killed by {name} (a crash in native code, or out of memory)"
    return f"TrialProcessDied: the trial's process exited with status {code} before returning a result (os._exit?)"


# -- the child ------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Linux: get SIGKILL if the worker dies, so no trial outlives its worker."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(1)


def _no_worker(*args: Any, **kwargs: Any) -> Any:
    raise TrialNeedsWorker(_NO_WORKER)


def _cut_off(distributed: Any) -> None:
    """Make the child's ``distributed`` say clearly that there is no worker here."""
    mods = [distributed, sys.modules.get("distributed.worker"), sys.modules.get("distributed.worker_client")]
    for mod in filter(None, mods):
        if hasattr(mod, "get_worker"):
            mod.get_worker = _no_worker
    distributed.worker_client = _no_worker


class _CutOffDistributed:
    """Import hook: patch ``distributed`` when (if ever) the trial imports it,
    so trials that do not use Dask pay nothing for this."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "distributed":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            run = spec.loader.exec_module

            def exec_module(module: Any) -> None:
                run(module)
                _cut_off(module)

            # on this one loader object only (not its class): the module runs, then is cut off
            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _main(write_fd: int) -> None:
    import faulthandler
    import traceback

    out = os.fdopen(write_fd, "wb")

    def send(obj: Any) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(len(data)) + data)
        out.flush()

    job = pickle.loads(sys.stdin.buffer.read())
    _die_with_parent(job["parent"])
    faulthandler.enable()  # a segfault's Python traceback goes to stderr, kept by the parent
    _limit_memory(job.get("memory_limit"))
    sys.path[:] = job["sys_path"]
    if "distributed" in sys.modules:
        _cut_off(sys.modules["distributed"])
    else:
        sys.meta_path.insert(0, _CutOffDistributed())
    from ..observe import live
    from .invoke import call_trial, resolve_target

    live.set_sender(lambda topic, msg: send(("live", topic, msg)))
    if job["context"] is not None:
        live.set_current(job["context"])  # for the rest of this process: never reset
    spec, gkey = job["spec"], job["gkey"]
    try:
        try:  # import the trial's code before the clock starts
            if spec.fast:
                resolve_target(spec.bases[gkey]["_target_"])
            else:
                import hydra.utils  # noqa: F401
        except Exception:
            pass  # the call below reports it as the trial's failure
        send(("start",))
        value = call_trial(spec.bases[gkey], job["params"], spec.fast)
    except BaseException as exc:  # the trial's own failure, SystemExit included
        kind = FailureKind.NEEDS_WORKER if isinstance(exc, TrialNeedsWorker) else kind_of_exception(exc)
        answer: Tuple = ("error", f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)), kind)
    else:
        answer = ("result", value)
    if job["context"] is not None:
        live.flush(job["context"].trial_id)
    try:
        send(answer)
    except Exception as exc:  # e.g. a return value that cannot be pickled
        send(
            (
                "error",
                f"TypeError: the trial's return value cannot be sent back from its process ({exc})",
                "".join(traceback.format_exception(exc)),
                FailureKind.BAD_RESULT,
            )
        )
    out.close()


if __name__ == "__main__":
    _main(int(sys.argv[1]))
