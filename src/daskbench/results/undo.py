"""Put a results folder back as a run found it, for a config mistake found only once
trials ran (a search whose first results lack ``sweep.objective``).

:class:`Undo` is taken before the run's first write. What a run changes there before
such a mistake shows: the manifest (rewritten whole), the study's journal (appended),
and new part files of the datasets (parts are written whole and never changed in
place). So the two small files are kept as bytes and the rest as a list of names:
:meth:`Undo.restore` writes the kept bytes back, removes what the run created, and
removes the folder itself (and the parents made for it) if it did not exist.
A part a rewrite removed (a failed row of an earlier run replaced, or a compaction
past ``results.compact_parts``) cannot be brought back: before the first result
with the objective, a run writes only such non-ok rows, so this is rare.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Dict, Iterable, Optional, Set

from .files import atomic_write_bytes


class Undo:
    """The state of ``root`` before a run: the bytes of ``keep`` (None: absent) and every path under it."""

    def __init__(self, root: Path, keep: Iterable[str]):
        self.root = Path(root)
        self.existed = self.root.is_dir()
        self.top = self.root  # the outermost folder a run would create (results/ of results/NAME)
        while not self.top.parent.exists() and self.top.parent != self.top.parent.parent:
            self.top = self.top.parent
        self.kept: Dict[str, Optional[bytes]] = {
            name: (self.root / name).read_bytes() if (self.root / name).is_file() else None for name in keep
        }
        self.paths: Set[Path] = set(self.root.rglob("*")) if self.existed else set()

    def restore(self) -> None:
        """Back to the state taken: kept files byte for byte, everything new removed."""
        if not self.existed:
            shutil.rmtree(self.top, ignore_errors=True)
            return
        for name, data in self.kept.items():
            path = self.root / name
            if data is None:
                path.unlink(missing_ok=True)
            elif not path.is_file() or path.read_bytes() != data:
                atomic_write_bytes(path, data)
        new = [p for p in self.root.rglob("*") if p not in self.paths]
        for p in sorted(new, key=lambda p: len(p.parts), reverse=True):  # files before their folders
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()
                else:
                    p.unlink()
