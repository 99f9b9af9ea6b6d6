"""The plugin class Hydra finds: thin; the work is in :mod:`._core`."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class CloseAtMultirunEnd(Callback):
    """Added to the multirun's callbacks: the cluster the launcher started closes when the
    multirun ends, not at interpreter exit (an app or a test may run many multiruns)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from ._daskbench import close_cluster

        close_cluster()


class DaskbenchLauncher(Launcher):
    """Runs each batch of a multirun as Dask futures and records a row per job."""

    def __init__(self, **params: Any) -> None:
        self.params = params  # hydra.launcher.* without _target_
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None
        self.planner: Any = None
        self.code: Any = None  # daskbench's code version of the task function, once per multirun

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from ._loader import install

        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context
        callbacks = getattr(hydra_context.callbacks, "callbacks", None)
        if isinstance(callbacks, list) and not any(isinstance(c, CloseAtMultirunEnd) for c in callbacks):
            callbacks.insert(0, CloseAtMultirunEnd())  # on_multirun_end runs them last to first: after the user's
        # the sweeper composes every job before each batch to check it: once per group choice instead
        self.planner = install(hydra_context, config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from . import _core  # Dask and pyarrow are imported only when a multirun uses this launcher

        return _core.launch(self, job_overrides, initial_job_idx)
