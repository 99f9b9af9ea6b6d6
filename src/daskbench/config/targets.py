"""The trial function named by ``trial._target_``: importing it, and checking the
``trial.*`` keys and swept keys against its signature, before anything runs."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import ConfigError, TrialImportError
from ..sweep.plan import Axis
from .checks import suggest


def import_roots(dirs: Sequence[Path]) -> List[str]:
    """The working directory, and a user's config folder and its parent."""
    return [os.getcwd()] + [str(d.parent) for d in dirs[:-1]] + [str(d) for d in dirs[:-1]]


def _import_module(target: str, parts: List[str]) -> Tuple[Any, int, Optional[ModuleNotFoundError]]:
    """The longest importable module prefix of ``parts``, how many parts it took, and
    why the next longer prefix did not import (None if it was the longest possible).

    ``pkg.mod.Class.method`` is a module path followed by attributes, so shorter
    prefixes are tried while the missing module is the prefix itself (not a
    module that the user's module imports).
    """
    first: Optional[ModuleNotFoundError] = None
    for n in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:n])
        try:
            return importlib.import_module(name), n, first
        except ModuleNotFoundError as exc:
            if not (exc.name == name or name.startswith(f"{exc.name}.")):
                raise _missing(target, exc) from None  # the user's module imports something not installed
            first = first or exc
        except Exception as exc:  # the user's module raised while importing
            raise TrialImportError(
                f"trial._target_={target!r}: importing {name!r} raised {type(exc).__name__}: {exc}"
            ) from None
    assert first is not None
    raise _missing(target, first)


def _missing(target: str, exc: ModuleNotFoundError) -> TrialImportError:
    return TrialImportError(
        f"trial._target_={target!r}: cannot import module {exc.name!r} "
        f"(searched the working directory {os.getcwd()} and the installed packages); "
        "put the module there or install it"
    )


def import_target(target: str, dirs: Sequence[Path] = ()) -> Any:
    """Import ``pkg.module.function`` (or ``pkg.module.Class.method``), adding the working
    directory and the user's config folder's parent to ``sys.path`` (that is where
    trial modules live)."""
    for p in import_roots(dirs):
        if p not in sys.path:
            sys.path.append(p)
    parts = target.split(".")
    if len(parts) < 2 or not all(parts):
        raise TrialImportError(f"trial._target_={target!r} must be a dotted path like package.module.function")
    obj, n, not_a_module = _import_module(target, parts)
    owner = ".".join(parts[:n])
    for i, attr in enumerate(parts[n:]):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            if i == 0 and not_a_module is not None:  # neither a module nor an attribute: the module is missing
                raise _missing(target, not_a_module) from None
            names = [a for a in dir(obj) if not a.startswith("_")]
            what = "module" if inspect.ismodule(obj) else "class" if inspect.isclass(obj) else type(obj).__name__
            raise TrialImportError(
                f"trial._target_={target!r}: {what} {owner!r} has no {attr!r}{suggest(attr, names)}"
            ) from None
        owner = f"{owner}.{attr}"
    if inspect.ismodule(obj):
        raise TrialImportError(
            f"trial._target_={target!r} is a module, not a function; give the trial function "
            f"itself, e.g. trial._target_={target}.run"
        )
    if not callable(obj):
        raise TrialImportError(
            f"trial._target_={target!r}: {parts[-1]!r} exists in {'.'.join(parts[:-1])!r} but is a "
            f"{type(obj).__name__}, not callable; give the trial function itself"
        )
    return obj


def signature(fn: Any) -> Tuple[bool, Optional[List[str]]]:
    """(takes a seed, argument names or None if it takes **kwargs)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False, None
    params = sig.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return "seed" in sig.parameters, None
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return "seed" in names, names


def check_arguments(target: str, names: Optional[List[str]], trial: Mapping[str, Any], axes: Iterable[Axis]) -> None:
    """Every ``trial.*`` key and swept ``trial.*`` key is an argument of the trial
    function (``names`` None: it takes ``**kwargs``, anything goes)."""
    if names is None:
        return
    for a in axes:
        if a.key.startswith("trial.") and not a.is_group:
            arg = a.key.split(".")[1]
            if arg not in names and not arg.startswith("_"):
                raise ConfigError(
                    f"swept key {a.key!r}: {target} has no argument {arg!r}{suggest(arg, names)}; "
                    f"its arguments: {', '.join(names)}"
                )
    for key in trial:
        arg = str(key)
        if not arg.startswith("_") and arg not in names:
            raise ConfigError(
                f"trial.{arg}: {target} has no argument {arg!r}{suggest(arg, names)}; its arguments: {', '.join(names)}"
            )
