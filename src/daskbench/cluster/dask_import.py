"""Importing distributed with PyYAML's C parser for Dask's own config files.

``import dask`` and ``import distributed`` read their defaults (``dask.yaml``,
``distributed.yaml``: ~17 KB) and the user's config files (``~/.config/dask``,
``DASK_CONFIG``...) with ``yaml.safe_load``, PyYAML's pure-Python parser: ~30 ms of
CPU in each process that imports them, and a command has two on its critical path
(the driver and the fork server, both busy until the cluster is up). libyaml gives
the same safe loading (``yaml.CSafeLoader``: PyYAML's own SafeConstructor and
Resolver on libyaml's parser) in ~3 ms. While :func:`import_distributed` imports
distributed, ``yaml.safe_load`` is PyYAML's ``load`` with that loader; the function
is put back as soon as the import returns. Nothing else runs meanwhile: the driver
has started no thread yet, and the fork server never does. Without libyaml, or with
distributed imported already, this is a plain ``import distributed``.

Imported by the fork server first (:data:`.workers.PRELOAD`) and by the command line
before anything else of Dask.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

#: distributed and the parts of it the driver and the fork server import first
MODULES = ("distributed", "distributed.nanny", "distributed.worker")


@contextlib.contextmanager
def _c_safe_load() -> Iterator[None]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:  # PyYAML built without libyaml
        yield
        return
    real = yaml.safe_load

    def safe_load(stream: Any) -> Any:
        return yaml.load(stream, Loader=loader)  # CSafeLoader: the safe loader, in C

    yaml.safe_load = safe_load
    try:
        yield
    finally:
        yaml.safe_load = real


def import_distributed() -> None:
    """Import distributed (and dask), Dask's config files read with libyaml."""
    with _c_safe_load() if "distributed" not in sys.modules else contextlib.nullcontext():
        for name in MODULES:
            importlib.import_module(name)


import_distributed()  # on import: the fork server's preload list names modules
