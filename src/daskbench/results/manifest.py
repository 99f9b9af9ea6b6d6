"""``manifest.json``: an experiment folder's run history, and its one reader and writer.

It holds the experiment's ``name`` (so a folder is never resumed by another
experiment), the composed ``config`` of the latest run, the package
``versions``, and one entry per run under ``runs`` (id, start and end, outcome,
counts, the swept keys ``axes``, the ``code`` that ran). A run writes it when its
cluster is up and again when it ends; everything else only reads it.

Two ways to read: :func:`read` / :func:`check` are strict (a run will write the
file again, so a damaged one stops it with a clear message rather than being
overwritten), :func:`peek` is lenient (loading results or drawing a report must
work on a folder whose manifest is gone or damaged).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import ResultsError
from .files import atomic_write_bytes

FILE = "manifest.json"

#: packages whose versions a result depends on
_PACKAGES = ("daskbench", "dask", "distributed", "hydra-core", "omegaconf", "pyarrow", "pandas", "numpy", "scipy")


def read(root: Path) -> Dict[str, Any]:
    """The folder's manifest ({} if there is none); a ResultsError if it is damaged."""
    path = Path(root) / FILE
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise ResultsError(
            f"{path} is not valid JSON ({str(exc).splitlines()[0]}); daskbench keeps its run history "
            "there and will not overwrite it: move the file away (a new one is written), or set "
            "results.dir=PATH"
        ) from None
    return manifest


def check(root: Path, name: Optional[str]) -> Dict[str, Any]:
    """:func:`read`, and a ResultsError if the folder holds another experiment than ``name``."""
    manifest = read(root)
    other = manifest.get("name")
    if name is not None and other is not None and other != name:
        raise ResultsError(
            f"{root} holds the results of experiment {other!r} (see its manifest.json), not {name!r}; "
            "set results.dir=PATH to a folder of its own"
        )
    return manifest


def peek(root: Path) -> Dict[str, Any]:
    """The manifest if it can be read, else {}: for readers of finished results."""
    try:
        return read(root)
    except ResultsError:
        return {}


def runs(root: Path) -> List[Dict[str, Any]]:
    """The run entries, oldest first (lenient)."""
    found = peek(root).get("runs")
    return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []


def axes(root: Path) -> List[str]:
    """The swept keys of the latest run (lenient; [] if unknown)."""
    every = runs(root)
    return [str(a) for a in every[-1].get("axes", [])] if every else []


def all_axes(root: Path) -> List[str]:
    """The swept keys of every run, each once, in the order they first appear: a later
    run may have fixed a key an earlier one swept."""
    keys: List[str] = []
    for run in runs(root):
        keys += [str(a) for a in run.get("axes", []) if str(a) not in keys]
    return keys


def experiment_name(root: Path) -> Optional[str]:
    """The experiment the folder belongs to, if its manifest says (lenient)."""
    name = peek(root).get("name")
    return str(name) if name else None


def record_run(root: Path, run: Dict[str, Any], config_yaml: str, name: str) -> None:
    """Add (or update, by ``run['id']``) a run's entry; rewrites the file atomically.

    Raises ResultsError if the manifest is damaged or another experiment's, and
    lets an OSError of the write through for the caller to report.
    """
    manifest = check(root, name)
    manifest["name"] = name
    manifest["config"] = config_yaml
    manifest["versions"] = versions()
    entries = [r for r in manifest.get("runs", []) if r.get("id") != run.get("id")]
    entries.append(run)
    manifest["runs"] = entries
    Path(root).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(root) / FILE, json.dumps(manifest, indent=2, default=str).encode())


def versions() -> Dict[str, str]:
    """Versions of the packages a result depends on."""
    return dict(_versions())


@functools.cache
def _versions() -> Dict[str, str]:
    # once per process: a run writes the manifest twice, and the packages it runs are
    # the ones it imported, whatever is installed meanwhile
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
