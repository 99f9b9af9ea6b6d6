"""Configs as the YAML ``OmegaConf.to_yaml`` writes, byte for byte, with libyaml.

``OmegaConf.to_yaml``'s dumper is PyYAML's pure-Python emitter with one representer
of OmegaConf's own (quotes on strings that would read back as numbers or booleans).
PyYAML's C emitter with that same representer writes the same text several times
faster: a run's manifest (``config_yaml``) and the Hydra launcher's ``.hydra/*.yaml``
files are written with it (``tests/test_launcher_compose.py`` and
``tests/test_compose.py`` check it against ``to_yaml``). Without libyaml, OmegaConf's
own dumper is used.
"""

from __future__ import annotations

from typing import Any, Type

import yaml
from omegaconf._utils import get_omega_conf_dumper


def _dumper() -> Type[Any]:
    base = get_omega_conf_dumper()
    if not getattr(yaml, "__with_libyaml__", False):
        return base

    class FastDumper(yaml.CDumper):  # type: ignore[misc, name-defined]
        pass

    # OmegaConf types its representer for its own Dumper class; the C one takes it as it is
    FastDumper.add_representer(str, base.str_representer)  # type: ignore[arg-type]
    return FastDumper


DUMPER = _dumper()


def dump(container: Any) -> str:
    """A plain config tree (``OmegaConf.to_container(resolve=False)``) as ``to_yaml`` writes it."""
    return yaml.dump(container, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=DUMPER)
