"""The job's ``.hydra/*.yaml`` files, byte for byte as Hydra writes them, with libyaml.

Hydra writes them with ``OmegaConf.to_yaml``, whose dumper is PyYAML's
pure-Python emitter: for a no-op job, ``hydra.yaml`` alone takes longer than
the rest of the job. PyYAML's C emitter with OmegaConf's one representer
(quotes on strings that would read back as numbers or booleans) writes the
same text; ``tests/test_launcher_compose.py`` checks it against ``to_yaml``.
Without libyaml, OmegaConf's own dumper is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Type

import yaml
from omegaconf import OmegaConf
from omegaconf._utils import get_omega_conf_dumper


def _dumper() -> Type[Any]:
    base = get_omega_conf_dumper()
    if not getattr(yaml, "__with_libyaml__", False):
        return base

    class FastDumper(yaml.CDumper):  # type: ignore[misc, name-defined]
        pass

    FastDumper.add_representer(str, base.str_representer)
    return FastDumper


_DUMPER = _dumper()


def to_yaml(cfg: Any) -> str:
    """``OmegaConf.to_yaml(cfg)`` (interpolations kept, keys in order)."""
    container = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    return yaml.dump(container, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=_DUMPER)


def save_config(cfg: Any, filename: str, output_dir: Path) -> None:
    """``hydra.core.utils._save_config`` with the faster emitter."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(str(output_dir / filename), "w", encoding="utf-8") as file:
        file.write(to_yaml(cfg))
