"""iobench's workspace: the one directory of its own each agent works in, and
the checks that keep every read, write and delete inside it."""

from __future__ import annotations

import os
import re
import tempfile
import threading
from typing import List, Optional

from .errors import IOBenchError

DIR_PREFIX = "daskbench-iobench"


class Workspace:
    """The agent's own directory: the only place it reads, writes or deletes.

    Only names it generated itself are ever joined to the directory, each is
    checked to stay directly inside it, and only files recorded as created
    here are ever deleted.
    """

    def __init__(self, base: Optional[str], label: str, token: str):
        given = base
        base = tempfile.gettempdir() if base in (None, "") else os.path.expanduser(str(base))
        if not os.path.exists(base):
            raise FileNotFoundError(f"iobench: trial.path {given if given else base!r} does not exist; "
                                    "give an existing directory (null = the system temp dir)")
        if not os.path.isdir(base):
            raise NotADirectoryError(f"iobench: trial.path {base!r} is not a directory")
        if not os.access(base, os.W_OK | os.X_OK):
            raise PermissionError(f"iobench: trial.path {base!r} is not writable")
        self.base = os.path.realpath(base)
        safe = re.sub(r"[^A-Za-z0-9_.]+", "-", f"{token}-{label}").strip("-")[:96]
        try:
            self.dir = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}-{safe}-", dir=self.base)
        except OSError as exc:
            raise PermissionError(f"iobench: cannot create a directory in trial.path {base!r}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        if os.path.dirname(os.path.realpath(self.dir)) != self.base:
            raise IOBenchError(f"iobench: {self.dir!r} is not directly inside {self.base!r}; refusing to work there")
        self.name = os.path.basename(self.dir)
        self._created: set = set()
        self._lock = threading.Lock()

    def path(self, name: str) -> str:
        """The path of object ``name``; refuses anything that would leave the directory."""
        if not name or name in (".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name):
            raise IOBenchError(f"iobench: refusing object name {name!r} outside {self.dir!r}")
        return os.path.join(self.dir, name)

    def created(self, name: str) -> None:
        with self._lock:
            self._created.add(name)

    def delete(self, name: str) -> None:
        """Delete an object this workspace created (anything else is refused)."""
        with self._lock:
            if name not in self._created:
                raise IOBenchError(f"iobench: refusing to delete {name!r}: not created by this run")
        os.unlink(self.path(name))
        with self._lock:
            self._created.discard(name)

    def remove(self) -> List[str]:
        """Delete every file created here, then the directory. Returns problems (empty if clean)."""
        problems = []
        with self._lock:
            names = sorted(self._created)
        for name in names:
            try:
                os.unlink(self.path(name))
            except FileNotFoundError:
                pass
            except OSError as exc:
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
        with self._lock:
            self._created.clear()
        try:
            os.rmdir(self.dir)
        except FileNotFoundError:
            pass
        except OSError as exc:  # e.g. files someone else put there: left alone
            problems.append(f"directory {self.dir} not removed: {type(exc).__name__}: {exc}")
        return problems
