"""The report of a finished run, written by a process of its own.

Plotting a report imports pandas and matplotlib and draws a figure per metric:
1-2.5 s on a small machine, longer than a small sweep itself. The command line
and :func:`daskbench.run` do not make their user wait for it: :func:`start` removes the folder's old
``report.html`` (a stale page is never taken for the new one), starts
``python -m daskbench.observe.report_background DIR`` (``python -m daskbench
--report DIR`` at the lowest CPU priority: whatever the user runs next, a
command or a kept cluster's trials, comes first on the cores) detached from the
terminal (its own session: a later Ctrl-C does not stop it) and returns at once. The page appears when it is
complete (written under another name, then renamed); the process's output,
``report: ...`` or why the report could not be written, goes to
``report/report.log``. :func:`start` returns a :class:`BackgroundReport`, whose
:meth:`~BackgroundReport.wait` waits for the page (a notebook that shows the report
right after a run calls it; ``RunResult.wait_report()``). ``python -m daskbench
--report DIR``, and ``daskbench.run(..., background_report=False)``, write it in the
foreground. Two writers of one folder's report take turns (:func:`.report.write_report`
holds a lock on ``report/``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

LOG = "report.log"


@dataclass
class BackgroundReport:
    """A report being written by a process of its own: where its page will be, and a wait for it."""

    page: Path
    process: subprocess.Popen

    @property
    def log(self) -> Path:
        """The report process's output: ``report: PAGE``, or why it wrote none."""
        return self.page.parent / LOG

    def wait(self, timeout: Optional[float] = None) -> Path:
        """The page, once written; :class:`ResultsError` with the process's own words if it
        wrote none, or if it is still drawing after ``timeout`` seconds (it goes on)."""
        from ..errors import ResultsError

        folder = self.page.parents[1]
        again = f"python -m daskbench --report {folder}"
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ResultsError(
                f"the report of {folder} is still being written after {timeout:g} s (its log: {self.log}); "
                f"wait longer, or write it with: {again}"
            ) from None
        if code == 0 and self.page.is_file():
            return self.page
        said = self.log.read_text(errors="replace").strip() if self.log.is_file() else ""
        raise ResultsError(
            f"the report of {folder} was not written ({said[-500:] or f'exit status {code}'}); write it with: {again}"
        )


def start(results_dir: Path) -> BackgroundReport:
    """Start writing ``results_dir``'s report in the background; returns at once."""
    out = Path(results_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    page = out / "report.html"
    page.unlink(missing_ok=True)
    env = dict(os.environ)
    # the child imports this same daskbench, installed or not
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    with open(out / LOG, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daskbench.observe.report_background", str(results_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    return BackgroundReport(page, proc)


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
