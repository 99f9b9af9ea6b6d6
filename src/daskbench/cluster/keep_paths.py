"""Where a kept cluster's files are: their names and the state folder.

Nothing but ``os``: a command reads these before it imports anything else
(:mod:`.keep_client`), and each module a command imports on its way to the kept
cluster's driver adds to every run's start-up.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

#: the environment variable that names the folder holding the state file
STATE_ENV = "DASKBENCH_STATE_DIR"
#: set in the kept cluster's own processes (server and workers): its value is the
#: cluster's token, and a run there never looks for a kept cluster
TOKEN_ENV = "DASKBENCH_KEPT_TOKEN"
STATE_NAME = "cluster.json"
LOG_NAME = "cluster.log"
#: the driver zygote's Unix socket (:mod:`.keep_driver`)
SOCKET_NAME = "driver.sock"


def state_folder(environ: Mapping[str, str], home: str) -> str:
    """``$DASKBENCH_STATE_DIR``, else ``$XDG_STATE_HOME/daskbench``, else
    ``~/.local/state/daskbench``: per user, never shared between users."""
    given = environ.get(STATE_ENV)
    if given:
        return os.path.expanduser(given)
    xdg = environ.get("XDG_STATE_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "daskbench")
    return os.path.join(home, ".local", "state", "daskbench")


def source_mtime(package: object) -> float:
    """The newest modification time of daskbench's own source files under ``package``
    (what a kept cluster's zygote and workers imported is compared with it)."""
    newest = 0.0
    for folder, _dirs, files in os.walk(str(package)):
        for f in files:
            if f.endswith(".py"):
                try:
                    newest = max(newest, os.stat(os.path.join(folder, f)).st_mtime)
                except OSError:
                    continue
    return newest


def is_kept(environ: Mapping[str, str], home: str) -> bool:
    """Whether a kept cluster's state file is there (``os`` only: the command line asks
    before it starts the fork server, and every module imported first delays it)."""
    return os.path.exists(os.path.join(state_folder(environ, home), STATE_NAME))
