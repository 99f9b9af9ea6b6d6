"""The code behind a run's rows, and what resume says when it has changed.

A trial id hashes the config, never the code (see :mod:`daskbench.sweep.identity`),
so a fixed bug does not orphan every old row. Instead each run records the code
that produced its rows: a hash of the trial module's source, and the git commit of
the repository that holds the module with whether it had uncommitted changes to
tracked files (where there is such a repository). The run's manifest entry gets
all of it; each row gets a short label of it in the ``code_version`` column.

On resume, ``ok`` rows whose label differs from the current one are counted and
reported in one line; ``results.rerun=changed`` runs them again, their new rows
replacing the old. Rows without a label (written before daskbench recorded one)
are of unknown code: they are neither reported nor re-run.

The label is computed once per run, in the driver, from the module's file: a
long-lived worker that imported an older copy of the module is not detected.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, AbstractSet, Any, Dict, List, Mapping, Optional, Tuple

if TYPE_CHECKING:
    from .store import ResultStore

#: seconds the git commands may take (a huge or network-mounted repository must
#: not hold up a run: the commit is then simply not recorded)
GIT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class CodeVersion:
    """The code a run's trials execute."""

    module: str  # import path of the trial's module, e.g. "my_trials"
    source_sha256: Optional[str] = None  # of the module's source file; None if it has none
    commit: Optional[str] = None  # HEAD of the git repository that holds the module
    dirty: bool = False  # that repository had uncommitted changes to tracked files

    @property
    def label(self) -> str:
        """The short text stored in each row's ``code_version`` column."""
        words = [f"module:{self.source_sha256[:12] if self.source_sha256 else 'unknown'}"]
        if self.commit:
            words.append(f"commit:{self.commit[:12]}{'+dirty' if self.dirty else ''}")
        return " ".join(words)

    def as_dict(self) -> Dict[str, Any]:
        """The run's manifest entry."""
        return {
            "module": self.module,
            "source_sha256": self.source_sha256,
            "commit": self.commit,
            "dirty": self.dirty,
            "label": self.label,
        }


def _fields(label: str) -> Dict[str, str]:
    """``"module:ab12 commit:cd34+dirty"`` -> ``{"module": "ab12", "commit": "cd34+dirty"}``."""
    return dict(w.split(":", 1) for w in label.split() if ":" in w)


def why_changed(current: str, others: Mapping[str, int]) -> str:
    """What differs between the current label and the labels of older rows, in words."""
    now = _fields(current)
    then = [_fields(o) for o in others]
    if any(t.get("module") != now.get("module") for t in then):
        return "the trial module changed since"
    if any(t.get("commit", "").removesuffix("+dirty") != now.get("commit", "").removesuffix("+dirty") for t in then):
        return "the trial module is the same, the commit of its repository is not"
    return "the trial module is the same, its repository's uncommitted changes are not"


def notice(count: int, reason: str, rerun: bool) -> str:
    """The one line resume prints when ``count`` ok rows were made by other code."""
    rows = "1 ok row was" if count == 1 else f"{count} ok rows were"
    if rerun:
        return (
            f"{rows} made by other code ({reason}); results.rerun=changed: those in this sweep "
            "run again and their new rows replace the old"
        )
    return f"{rows} made by other code ({reason}); they are kept: set results.rerun=changed to run them again"


def on_resume(store: ResultStore, code: CodeVersion, rerun: bool) -> Tuple[AbstractSet[str], Optional[str]]:
    """After ``store.open_for_resume``: the ids of ok rows to run again (empty unless
    ``rerun``) and the notice to print (None when no ok row was made by other code)."""
    ids, counts = store.ok_rows_by_other_code(code.label)
    if not ids:
        return set(), None
    line = notice(len(ids), why_changed(code.label, counts), rerun)
    if not rerun:
        return set(), line
    store.redo(ids)
    return ids, line


# -- reading the code: the I/O shell ---------------------------------------------
def of_target(target: str) -> CodeVersion:
    """The code version of the module that holds ``target`` (``pkg.module.function``)."""
    module = target.rpartition(".")[0]
    return of_file(module, _source_file(module))


class Reading:
    """The code version of a run's trial module, read in a thread from :meth:`start` on.

    ``git status`` takes 3-5 ms (more in a big repository): a run starts it as soon as its
    trial module is imported, and gets ready meanwhile (the rest of its plan, its store,
    its cluster); :meth:`get` waits for it (or reads it then, if it was never started)."""

    def __init__(self) -> None:
        self.in_thread = True  # False: get() reads it itself (no thread may run, e.g. beside a fork)
        self._target: Optional[str] = None
        self._thread: Optional[threading.Thread] = None
        self._result: Optional[CodeVersion] = None
        self._error: Optional[BaseException] = None

    def start(self, target: str) -> None:
        """Read ``target``'s code version in a thread (once; nothing unless ``in_thread``)."""
        if self._thread is not None or not self.in_thread:
            return
        self._target = target
        self._thread = threading.Thread(target=self._read, name="daskbench-code-version", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            self._result = of_target(str(self._target))
        except BaseException as exc:  # handed to get(), in the run's own thread
            self._error = exc

    def get(self, target: str) -> CodeVersion:
        """``target``'s code version: the one read in the thread if it was started for it."""
        if self._thread is None or self._target != target:
            return of_target(target)
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def of_file(module: str, source: Optional[Path]) -> CodeVersion:
    """The code version of ``module`` whose source is the file ``source`` (None: unknown),
    e.g. a Hydra app's ``__main__`` script, which ``find_spec`` cannot locate."""
    if source is None:
        return CodeVersion(module)
    try:
        digest: Optional[str] = hashlib.sha256(source.read_bytes()).hexdigest()
    except OSError:
        digest = None
    commit, dirty = _git_state(source)
    return CodeVersion(module, digest, commit, dirty)


def _source_file(module: str) -> Optional[Path]:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # the run has imported it already; a failure here is no run's business
        return None
    origin = spec.origin if spec is not None else None
    if not origin or not os.path.isfile(origin):  # built-in, frozen, or a namespace package
        return None
    return Path(origin).resolve()  # through symlinks, to the repository that really holds it


def _git_state(source: Path) -> Tuple[Optional[str], bool]:
    """(HEAD commit, dirty) of the repository holding ``source``; (None, False) if none."""
    # both at once (a run waits for them): the status names HEAD in its header, and
    # untracked files do not count (results/ folders appear in a working tree after each run)
    status, ignored = _git(
        source.parent,
        ["status", "--porcelain=v2", "--branch", "--untracked-files=no"],
        ["check-ignore", "-q", str(source)],
    )
    if status is None:  # no git, not a repository
        return None, False
    # a module the repository ignores (a virtualenv or build folder inside it) is not its code
    if ignored is not None:
        return None, False
    lines = status.splitlines()
    head = next((ln.split()[2] for ln in lines if ln.startswith("# branch.oid ")), None)
    if head is None or head == "(initial)":  # a repository without commits
        return None, False
    return head, any(ln and not ln.startswith("#") for ln in lines)


def _git(where: Path, *commands: List[str]) -> List[Optional[str]]:
    """stdout of each git command that succeeded, else None (no git, not a repo, timeout);
    the commands run side by side."""
    # optional locks off: `git status` must never take the index lock of a repository in use
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    procs: List[Optional[subprocess.Popen]] = []
    for args in commands:
        try:
            procs.append(
                subprocess.Popen(
                    ["git", "-C", str(where), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    env=env,
                )
            )
        except OSError:
            procs.append(None)
    deadline = time.monotonic() + GIT_TIMEOUT_S
    return [_output(p, deadline) for p in procs]


def _output(proc: Optional[subprocess.Popen], deadline: float) -> Optional[str]:
    if proc is None:
        return None
    try:
        out, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 0.01))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return out if proc.returncode == 0 else None
