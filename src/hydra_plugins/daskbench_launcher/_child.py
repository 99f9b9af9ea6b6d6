"""``hydra.launcher.timeout_s``: each run of a job in a child process, killed at its deadline.

Dask has no per-task timeout and a Python thread cannot be stopped, so, as
daskbench's own trials do with ``timeout_s`` (``daskbench.runner.isolate``, whose
pipe protocol and process handling this reuses), the job runs in a fresh
interpreter in a session of its own, and at the deadline the whole session is
killed: the worker is free again, and the job is a failed job whose row says
``timeout``. The deadline counts from the moment the child has Hydra's state and
the task function (imported), so an interpreter start is not the job's time.

Frames from the child: ``("start",)``, then one ``("result", Outcome)`` or
``("raise", exception)``: the job's config was refused, raised in the worker as
without a timeout.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

from daskbench.results.row import FailureKind
from daskbench.runner.isolate import _HEADER, TrialTimeout, _death, _die_with_parent, run_child

from ._attempt import Outcome, Packed, attempt, enter

#: how much of a crashed child's stderr goes into the job's traceback column
_STDERR_TAIL = 8000


def call(packed: Packed, job: Any, timeout_s: float) -> Outcome:
    """Run ``job`` once in a child process; a timed-out or crashed child is a failed outcome."""
    import cloudpickle

    message = cloudpickle.dumps(
        {"packed": packed, "job": job, "sys_path": list(sys.path), "cwd": os.getcwd(), "parent": os.getpid()}
    )
    frames, timed_out, stderr, returncode = run_child(
        "hydra_plugins.daskbench_launcher._child", message, timeout_s, lambda *_: None
    )
    answer = next((f for f in frames if f[0] in ("result", "raise")), None)
    if answer is not None and answer[0] == "raise":
        raise answer[1]
    if answer is not None:
        return answer[1]
    if timed_out:
        exc: Exception = TrialTimeout(
            f"the job ran longer than hydra.launcher.timeout_s={timeout_s:g}; its process was killed"
        )
        return _ended(job, "timeout", FailureKind.TIMEOUT, exc, None)
    text = _death(returncode)
    return _ended(job, "failed", FailureKind.PROCESS_DIED, RuntimeError(text), stderr[-_STDERR_TAIL:] or None)


def _ended(job: Any, status: str, kind: FailureKind, exc: Exception, tb: Optional[str]) -> Outcome:
    error = f"{type(exc).__name__}: {exc}"
    return Outcome(job.num, status, exc, error, tb, None, None, None, None, kind=str(kind))


def _main(write_fd: int) -> None:
    import cloudpickle

    out = os.fdopen(write_fd, "wb")

    def send(obj: Any) -> None:
        data = cloudpickle.dumps(obj)
        out.write(_HEADER.pack(len(data)) + data)
        out.flush()

    message = cloudpickle.loads(sys.stdin.buffer.read())
    _die_with_parent(message["parent"])
    sys.path[:] = message["sys_path"]
    os.chdir(message["cwd"])
    ctx = enter(message["packed"])  # imports the task function's code: before the clock starts
    send(("start",))
    try:
        answer: Any = ("result", attempt(ctx, message["job"]))
    except Exception as exc:  # the job's config was refused: the worker raises it
        answer = ("raise", exc)
    try:
        send(answer)
    except Exception as exc:  # an exception that does not pickle
        send(("raise", RuntimeError(f"{type(answer[1]).__name__}: {answer[1]} ({exc})")))
    out.close()


if __name__ == "__main__":
    _main(int(sys.argv[1]))
