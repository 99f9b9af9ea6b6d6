"""Checks of a composed config that go beyond its types, and the messages they give.

Everything here runs before a cluster starts or a results folder is touched:
a mistake costs a second and changes nothing on disk. Each message names the
bad key or token and says how to fix it.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationKeyError, OmegaConfBaseException

from ..errors import ConfigError
from ..sweep.plan import Axis
from . import schema


def suggest(word: str, options: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or nothing."""
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def yaml_message(exc: yaml.YAMLError, path: Optional[Path] = None) -> str:
    """One line for a YAML syntax error: file, line, problem, what to look at."""
    mark = getattr(exc, "problem_mark", None)
    where = str(path) if path else (getattr(mark, "name", None) or "a config file")
    line = f":{mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return (
        f"{where}{line}: not valid YAML ({problem}); fix the brackets, indentation or quoting there "
        "(in flow style {a: 1, b: 2} every brace must be closed)"
    )


def utf8_message(exc: UnicodeDecodeError, path: Optional[Path] = None) -> str:
    """One line for a config file that is not UTF-8 text."""
    where = str(path) if path else "a config file (the experiment's, or one of its config groups')"
    return (
        f"{where}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
        "save it with UTF-8 encoding"
    )


def check_experiment_file(name: str, dirs: Sequence[Path]) -> None:
    """Read ``experiment/NAME.yaml`` before Hydra does, to name its file and line in errors."""
    for d in dirs:
        path = d / "experiment" / f"{name}.yaml"
        if path.is_file():
            break
    else:
        return  # Hydra reports an unknown experiment with the names it knows
    try:
        text = path.read_text(encoding="utf-8")
        if text in _CHECKED_FILES:  # the same text passed before (a process that runs many sweeps)
            return
        doc = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(utf8_message(exc, path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_message(exc, path)) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    _check_experiment_doc(doc, path)
    _CHECKED_FILES[text] = None
    while len(_CHECKED_FILES) > 16:
        del _CHECKED_FILES[next(iter(_CHECKED_FILES))]


#: texts of experiment files that passed :func:`check_experiment_file`, oldest first
_CHECKED_FILES: Dict[str, None] = {}


def _check_experiment_doc(doc: Any, path: Path) -> None:
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{path}: an experiment config must be a mapping (key: value lines), not a {type(doc).__name__}"
        )
    for key in schema.MAPPING_KEYS:
        value = doc.get(key)
        if value is not None and not isinstance(value, dict):
            hint = "; e.g. trial: {_target_: mymodule.run, alpha: 0.1}" if key == "trial" else ""
            raise ConfigError(
                f"{path}: `{key}` must be a mapping (key: value lines, or {{k: v}}), not a "
                f"{type(value).__name__} ({value!r:.60}){hint}"
            )


_CONVERT = re.compile(r"Value '(.*)' of type '\w+' could not be converted to (\w+)")
_KINDS = {
    "Integer": "an integer (a whole number)",
    "Float": "a number",
    "Boolean": "true or false",
    "String": "a string",
}


def value_message(exc: Exception, where: str) -> str:
    """'bad value for KEY: ...' with what was given and what is expected."""
    detail = (getattr(exc, "msg", None) or str(exc)).splitlines()[0]
    m = _CONVERT.match(detail)
    if m:
        return (
            f"bad value for {where}: {m.group(1)!r} is not {_KINDS.get(m.group(2), m.group(2))}; "
            f"fix {where} in the experiment config or on the command line"
        )
    return f"bad value for {where}: {detail}"


def interpolation_message(exc: Exception) -> str:
    key = getattr(exc, "full_key", None)
    detail = (getattr(exc, "msg", None) or str(exc)).splitlines()[0]
    if isinstance(exc, InterpolationKeyError):
        return (
            f"{key or 'a config value'}: {detail}; define that key (your own values go under vars:) "
            "or fix the ${...} reference"
        )
    return f"bad value for {key}: {detail}" if key else f"bad value: {detail}"


def resolved_trials(bases: Dict[Any, Dict[str, Any]], axes: Sequence[Axis]) -> Dict[Any, Optional[Dict[str, Any]]]:
    """Resolve each base's ``trial`` once (with each axis at its first value), so a
    ``${...}`` naming no key fails here, not in every trial; None where it needs a
    resolver only a trial's own process has (e.g. ``${hydra:...}``)."""
    out: Dict[Any, Optional[Dict[str, Any]]] = {}
    for g, tree in bases.items():
        out[g] = None
        if "trial" not in tree:
            continue
        plain = _without_interpolation(tree["trial"], axes)
        if plain is not None:
            out[g] = plain
            continue
        cfg = OmegaConf.create({k: v for k, v in tree.items() if k != "hydra"})
        for a in axes:
            if not a.is_group:
                first = a.values[0] if a.values is not None else (a.interval or (None,))[0]
                OmegaConf.update(cfg, a.key, first, force_add=True)
        try:
            out[g] = OmegaConf.to_container(cfg.trial, resolve=True)  # type: ignore[assignment]
        except InterpolationKeyError as exc:
            raise ConfigError(interpolation_message(exc)) from None
        except OmegaConfBaseException:
            pass  # left to the trial
    return out


def _without_interpolation(trial: Any, axes: Sequence[Axis]) -> Optional[Dict[str, Any]]:
    """What :func:`resolved_trials` gives for a ``trial`` section holding no ``${...}``,
    without OmegaConf (resolving it changes nothing but the swept keys' values); None
    when it holds one, or a value axis lies outside it or under a key that holds no keys."""
    if not isinstance(trial, dict) or "${" in repr(trial):
        return None
    out = copy.deepcopy(trial)
    for a in axes:
        if a.is_group:
            continue
        parts = a.key.split(".")
        if parts[0] != "trial" or len(parts) < 2:
            return None
        node = out
        for p in parts[1:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                return None
        node[parts[-1]] = a.values[0] if a.values is not None else (a.interval or (None,))[0]
    return out
