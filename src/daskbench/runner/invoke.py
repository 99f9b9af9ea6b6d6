"""Calling a trial's function with its keyword arguments: the one thing the worker's
thread (:mod:`daskbench.runner.execute`) and a trial's child process
(:mod:`daskbench.runner.isolate`) both do, so neither imports the other for it."""

from __future__ import annotations

import functools
import importlib
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple


@functools.lru_cache(maxsize=64)
def resolve_target(target: str) -> Any:
    """The object at the import path ``package.module.attr`` (cached: a chunk calls it per trial)."""
    mod, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(mod), attr)


@functools.lru_cache(maxsize=1024)
def _parts(key: str) -> Tuple[str, ...]:
    """``trial.a.b`` -> ``("a", "b")``: the path below ``trial`` (cached: every trial sets the same keys)."""
    return tuple(key.split(".")[1:])


def swept_names(keys: Iterable[str]) -> Optional[Dict[str, str]]:
    """The keyword argument each swept key sets (``trial.x`` -> ``x``), when every one
    sets a keyword of its own (none a key below one, ``trial.a.b``); else None."""
    out = {}
    for key in keys:
        parts = _parts(key)
        if len(parts) != 1:
            return None
        out[key] = parts[0]
    return out


def _set_path(tree: Dict[str, Any], parts: Sequence[str], value: Any) -> None:
    node = tree
    for p in parts[:-1]:
        child = node.get(p)
        # copy on the way down: the base is shared by every trial of the chunk
        node[p] = child = dict(child) if isinstance(child, dict) else {}
        node = child
    node[parts[-1]] = value


def call_trial(base: Mapping[str, Any], params: Mapping[str, Any], fast: bool) -> Any:
    """Call one trial and return what it returned.

    ``fast``: ``base`` is the trial's keyword arguments with ``_target_``, and each
    swept ``trial.a.b`` key of ``params`` is set in a copy of them. Otherwise ``base``
    is the whole unresolved config (interpolations or nested targets), resolved for
    this trial as Hydra would (``hydra.utils.call(cfg.trial)``).
    """
    if fast:
        kwargs = dict(base)
        target = kwargs.pop("_target_")
        for key, value in params.items():
            parts = _parts(key)
            if len(parts) == 1:  # trial.x: a keyword of its own (the common case, per trial)
                kwargs[parts[0]] = value
            else:
                _set_path(kwargs, parts, value)
        return resolve_target(target)(**kwargs)
    import hydra.utils
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(dict(base))
    for key, value in params.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    return hydra.utils.call(cfg.trial)
