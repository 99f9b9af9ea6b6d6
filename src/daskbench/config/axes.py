"""The sweep's axes: ``sweep.params`` first, the command line wins, and each swept
key checked against the composed config (a trial parameter or a config group,
never a run setting or a whole section)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from ..sweep import identity
from ..sweep.plan import Axis, axis_from_override, axis_from_param, merge_axes

#: top-level keys that are one value for the whole run, never an axis
_NOT_SWEPT = identity.RUN_KEYS | {"name"}


def is_group(key: str, choices: Dict[str, Any], dirs: Sequence[Path]) -> bool:
    """``key`` names a config group (chosen in the defaults, or a folder of the search path)."""
    return key in choices or any((d / key).is_dir() for d in dirs)


def build_axes(
    cfg0: DictConfig,
    plain: Sequence[Override],
    sweeps: Sequence[Override],
    choices: Dict[str, Any],
    dirs: Sequence[Path],
) -> Tuple[List[Axis], List[Axis]]:
    """(axes, fixed): the swept axes, and the one-value ones that belong to the base config."""
    params = OmegaConf.to_container(cfg0.sweep.params, resolve=False) if "sweep" in cfg0 else {}
    assert isinstance(params, dict)
    for k, v in params.items():
        k = str(k)
        if v is None:
            raise ConfigError(
                f"sweep.params.{k} has no value. If you wrote {{trial.x: 1,2}} in YAML flow style, "
                "the comma ended the entry: quote it, {trial.x: '1,2'}, or use block style"
            )
    config_axes = [axis_from_param(str(k), v, is_group=is_group(str(k), choices, dirs)) for k, v in params.items()]
    cli_axes = [axis_from_override(o, is_group=is_group(o.key_or_group, choices, dirs)) for o in sweeps]
    axes = merge_axes(config_axes, cli_axes, [o.key_or_group for o in plain])
    for a in axes:
        _check_kind(cfg0, a)
    fixed = [a for a in axes if a.values is not None and len(a.values) == 1]
    axes = [a for a in axes if a not in fixed]
    for a in axes:
        if (
            not a.is_group
            and not a.key.startswith("trial.")
            and not a.add
            and OmegaConf.select(cfg0, a.key, default=None) is None
        ):
            raise ConfigError(
                f"swept key {a.key!r} is not in the config; to add a new key write +{a.key}=..., "
                "or sweep a key under trial."
            )
    return axes, fixed


def _check_kind(cfg0: DictConfig, a: Axis) -> None:
    """A run setting is one value per run: sweeping it would run every trial once per
    value with the same setting. A top-level section is a mapping of keys: a single
    value cannot replace it."""
    root = a.key.split(".")[0]
    if a.is_group and a.values is None:
        raise ConfigError(
            f"cannot sweep the config group {a.key!r} over {a.expr}: a group takes the names "
            f"of its options, e.g. {a.key}=small,large"
        )
    node = None if a.is_group else OmegaConf.select(cfg0, a.key, default=None, throw_on_resolution_failure=False)
    section = isinstance(node, DictConfig)
    if root in _NOT_SWEPT:
        example = f"{a.key}.KEY=VALUE" if section else f"{a.key}={_first(a)}"
        raise ConfigError(
            f"cannot sweep {a.key!r}: `{root}` is a run setting (one value for the whole run), not a "
            f"trial parameter; give it one value, e.g. {example}, and sweep keys under trial"
        )
    # only a whole top-level section: below it a mapping may well take a value
    # (e.g. the market model's `trial.params.strategies: cost` or `{cost: 0.5, ...}`)
    if section and "." not in a.key and (a.values is None or not all(isinstance(v, dict) for v in a.values)):
        raise ConfigError(
            f"cannot sweep {a.key!r} over {a.expr}: `{a.key}` is a section of keys (a mapping), not a "
            f"single value; sweep one of its keys instead, e.g. {a.key}.x=1,2"
        )


def _first(a: Axis) -> Any:
    return a.values[0] if a.values else "VALUE"
