"""Imported last by the fork server (:data:`.workers.PRELOAD`): the server ends at once.

The server leaves when the driver has gone; an interpreter's usual teardown of
the modules it preloaded (distributed, Bokeh, pyarrow, pandas) takes it
~0.3-1 s more, during which it holds the command's stdout and stderr open, and
whatever reads them (a pipe, ``| tee``, a CI log) waits. Its children never
run this hook: multiprocessing ends them with ``os._exit``.
"""

from __future__ import annotations

import atexit
import os
import sys

_SERVER = os.getpid()


def _exit_now() -> None:
    if os.getpid() == _SERVER:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


atexit.register(_exit_now)
