"""The report of a finished command-line run, written by a process of its own.

Plotting a report imports pandas and matplotlib and draws a figure per metric:
1-2.5 s on a small machine, longer than a small sweep itself. The command line
does not make its user wait for it: :func:`start` removes the folder's old
``report.html`` (a stale page is never taken for the new one), starts
``python -m daskbench.observe.report_background DIR`` (``python -m daskbench
--report DIR`` at the lowest CPU priority: whatever the user runs next, a
command or a kept cluster's trials, comes first on the cores) detached from the
terminal (its own session: a later Ctrl-C does not stop it) and returns at once. The page appears when it is
complete (written under another name, then renamed); the process's output,
``report: ...`` or why the report could not be written, goes to
``report/report.log``. ``python -m daskbench --report DIR`` writes it again in the
foreground; :func:`daskbench.run` writes it in the foreground unless asked.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

LOG = "report.log"


def start(results_dir: Path) -> Path:
    """Start writing ``results_dir``'s report in the background; the page it will write."""
    out = Path(results_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    page = out / "report.html"
    page.unlink(missing_ok=True)
    env = dict(os.environ)
    # the child imports this same daskbench, installed or not
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    with open(out / LOG, "wb") as log:
        subprocess.Popen(
            [sys.executable, "-m", "daskbench.observe.report_background", str(results_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    return page


def main(results_dir: str) -> int:
    """What ``python -m daskbench --report DIR`` does, at the lowest CPU priority."""
    with contextlib.suppress(OSError):
        os.nice(19)
    from ..errors import DaskbenchError
    from .report import write_report

    try:
        print(f"report: {write_report(results_dir)}")
        return 0
    except DaskbenchError as exc:
        print(f"daskbench: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    code = main(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the page is written: no teardown of what plotting imported
