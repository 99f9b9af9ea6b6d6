"""One writer of a results folder's report at a time.

The report a run starts in the background (:mod:`.report_background`) and a
``write_report`` of the same folder (a notebook's, or ``--report``) may overlap:
each deletes the old PNGs before drawing its own, so they take turns.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def taking_turns(out: Path) -> Iterator[None]:
    """Hold an advisory lock on the folder ``out`` itself (no lock file left in it): one
    writer of a folder's report at a time, so one never deletes the PNGs another is about
    to embed. Where ``fcntl`` is missing, no lock."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes
        yield
    finally:
        os.close(fd)
