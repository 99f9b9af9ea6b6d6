"""OmegaConf's YAML loader on libyaml's parser, for Hydra's compose.

``OmegaConf.load`` (which Hydra calls for each config file) parses with PyYAML's
pure-Python parser through a loader class it builds anew on every call. The class
here is the same loader, built once: OmegaConf's own class (its float resolver,
no timestamps, its duplicate-key error, its ``pathlib`` constructors, all inherited
from it) with libyaml's parser (PyYAML's ``CParser``, what ``yaml.CSafeLoader`` is
made of) in front of it. :func:`libyaml_loader` lends it to OmegaConf while Hydra
composes; where PyYAML was built without libyaml, nothing changes.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator, Optional

import yaml
from omegaconf import _utils
from yaml.cyaml import CParser  # type: ignore[attr-defined]

_lock = threading.Lock()
_depth = 0


def _build() -> Optional[type]:
    if not getattr(yaml, "__with_libyaml__", False):
        return None
    omegaconf_loader = _utils.get_yaml_loader()

    class OmegaConfCLoader(CParser, omegaconf_loader):  # type: ignore[misc,valid-type,name-defined]
        """libyaml's parser and composer, then OmegaConf's constructor and resolver."""

        def __init__(self, stream: Any) -> None:
            CParser.__init__(self, stream)  # type: ignore[attr-defined]
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    return OmegaConfCLoader


_LOADER = _build()
_original = _utils.get_yaml_loader


def available() -> bool:
    """Whether PyYAML has libyaml (else :func:`libyaml_loader` changes nothing)."""
    return _LOADER is not None


def _get_loader() -> Any:
    return _LOADER


@contextlib.contextmanager
def libyaml_loader() -> Iterator[None]:
    """OmegaConf's YAML loads parse with libyaml inside this block (re-entrant)."""
    global _depth
    if _LOADER is None:
        yield
        return
    with _lock:
        _depth += 1
        _utils.get_yaml_loader = _get_loader
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _utils.get_yaml_loader = _original
