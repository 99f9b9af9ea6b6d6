"""Ship a trial's own code to workers on other hosts.

The top-level package (or single-file module) that holds ``trial._target_`` is
zipped and sent with ``Client.upload_file``, which puts it on every worker's
``sys.path`` and registers it for workers that join later. daskbench itself
(with its shipped experiments, however the driver installed it) and code
installed in site-packages (numpy, ...) are never shipped: they must be
installed on the workers, as the image in ``deploy/`` does.

Why not ``UploadDirectory``: it unpacks into the nanny's folder and updates
the nanny's ``sys.path``, which running workers only see after a restart.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sysconfig
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional

from ..errors import ClusterError

_SKIP_DIRS = {"__pycache__", ".git", ".pytest_cache", "results", "outputs", ".venv"}


def code_root(target: str) -> Optional[Path]:
    """The file or package folder to ship for ``target``, or None if it is installed."""
    top = target.split(".")[0]
    if top == __name__.split(".")[0]:
        # daskbench itself (its shipped experiments too) is installed where the
        # workers run, as in deploy/'s image; an editable install on the driver
        # is not in site-packages, and would otherwise be sent on every run
        return None
    spec = importlib.util.find_spec(top)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0])
    elif spec.origin and spec.origin.endswith(".py"):
        root = Path(spec.origin)
    else:
        return None
    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    if any(str(root).startswith(p) for p in installed):
        return None
    return root


def _zip(root: Path) -> Path:
    """Zip a package folder (keeping its name as the top-level entry)."""
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix != ".pyc" and not (_SKIP_DIRS & set(p.relative_to(root).parts))
    )
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(root)).encode())
        digest.update(p.read_bytes())
    out = Path(tempfile.gettempdir()) / f"daskbench-code-{root.name}-{digest.hexdigest()[:12]}.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for p in files:
            z.write(p, Path(root.name) / p.relative_to(root))
    return out


def ship_code(client: Any, target: str) -> Optional[str]:
    """Send the code behind ``target`` to all workers; returns what was sent."""
    root = code_root(target)
    if root is None:
        return None
    path = root if root.is_file() else _zip(root)
    try:
        # A .py file lands in the worker's folder, which is on its sys.path. A zip
        # goes on sys.path only when distributed loads it (imports its top-level
        # package, on every worker and on those that join later); unloaded, a
        # package sent this way could not be imported there.
        client.upload_file(os.fspath(path), load=root.is_dir())
    except Exception as exc:
        raise ClusterError(
            f"could not send {root} to the workers ({type(exc).__name__}: {exc}); "
            "install the module on the workers and set cluster.upload_code=false"
        ) from None
    return str(root)
