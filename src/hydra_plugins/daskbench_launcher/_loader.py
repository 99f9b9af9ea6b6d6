"""Hydra's config loader with a faster ``load_sweep_config``, for the sweepers.

Before each batch, Hydra's sweepers check every job's overrides by composing
the job's whole config in the driver (``Sweeper.validate_batch_is_legal``:
``load_sweep_config`` per job, 60-340 ms each here, more than half of a 200-job
multirun with Hydra's own launchers). The launcher hands the sweeper, through
the ``HydraContext`` they share, this loader: everything is Hydra's loader
except ``load_sweep_config``, which composes once per combination of
config-group choices and applies each job's value overrides to a copy
(:meth:`.Planner.compose`; equal to Hydra's, ``tests/test_launcher_compose.py``),
so a bad override still fails the batch before anything runs.
"""

from __future__ import annotations

from typing import Any, List

from omegaconf import DictConfig

from ._plan import Planner


class FastSweepLoader:
    """Delegates to Hydra's ``ConfigLoader``; ``load_sweep_config`` goes through :attr:`planner`."""

    def __init__(self, loader: Any, master: DictConfig):
        self._loader = loader
        self.planner = Planner(loader, master, name="")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # pickling and copying look for these: not the loader's
            raise AttributeError(name)
        return getattr(self._loader, name)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: List[str]) -> DictConfig:
        if master_config is not self.planner.master:
            return self._loader.load_sweep_config(master_config, sweep_overrides)
        return self.planner.compose(sweep_overrides)


def install(hydra_context: Any, config: DictConfig) -> Planner:
    """Put a :class:`FastSweepLoader` in ``hydra_context`` (shared with the sweeper); its planner."""
    loader = hydra_context.config_loader
    if not isinstance(loader, FastSweepLoader) or loader.planner.master is not config:
        loader = FastSweepLoader(getattr(loader, "_loader", loader), config)
        hydra_context.config_loader = loader
    return loader.planner
