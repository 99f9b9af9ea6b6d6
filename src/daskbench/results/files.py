"""Files in a results folder written whole or not at all, and what to say when a write fails.

Every file is written under a hidden temporary name next to its final one,
synced, and renamed into place, so a reader never sees half a file; a write that
fails removes its temporary file. Used by the Parquet store and the manifest.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import ResultsError

#: the causes of a failed write a user can fix, as the OS words them
CAUSES = {
    errno.ENOSPC: "No space left on device",
    errno.EROFS: "Read-only file system",
    errno.EDQUOT: "Disk quota exceeded",
    errno.EACCES: "Permission denied",
}
_FIXES = {
    errno.ENOSPC: "free space there or set results.dir=PATH",
    errno.EDQUOT: "free space there (disk quota) or set results.dir=PATH",
    errno.EROFS: "remount it read-write or set results.dir=PATH",
    errno.EACCES: "make it writable or set results.dir=PATH",
    errno.EPERM: "make it writable or set results.dir=PATH",
}


def write_error(folder: Path, exc: BaseException) -> ResultsError:
    """A write under ``folder`` failed: say where, why, and what to do."""
    code = getattr(exc, "errno", None)
    cause = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    if code not in CAUSES:  # pyarrow re-raises OS errors as text: find the cause in it
        for c, text in CAUSES.items():
            if text in str(exc):
                code, cause = c, text
    fix = _FIXES.get(code or 0, "check the folder or set results.dir=PATH")
    return ResultsError(
        f"cannot write results to {folder}: {cause}; {fix}. What was written before is kept: "
        "run the same command again to resume"
    )


@contextlib.contextmanager
def tmp_file(final: Path) -> Iterator[BinaryIO]:
    """Open a hidden temporary file next to ``final``; on success sync and rename it
    into place, on any failure remove it, so no partial file is ever left."""
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all."""
    with tmp_file(path) as f:
        f.write(data)
