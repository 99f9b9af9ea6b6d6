"""The job's ``.hydra/*.yaml`` files, byte for byte as Hydra writes them, with libyaml.

Hydra writes them with ``OmegaConf.to_yaml``, whose dumper is PyYAML's
pure-Python emitter: for a no-op job, ``hydra.yaml`` alone takes longer than
the rest of the job. :mod:`daskbench.config.yamldump` writes the same text with
PyYAML's C emitter; ``tests/test_launcher_compose.py`` checks it against ``to_yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from daskbench.config import yamldump


def to_yaml(cfg: Any) -> str:
    """``OmegaConf.to_yaml(cfg)`` (interpolations kept, keys in order)."""
    return yamldump.dump(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))


def save_config(cfg: Any, filename: str, output_dir: Path) -> None:
    """``hydra.core.utils._save_config`` with the faster emitter."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(str(output_dir / filename), "w", encoding="utf-8") as file:
        file.write(to_yaml(cfg))
