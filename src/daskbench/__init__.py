"""daskbench: parameter sweeps and agent simulations on Dask, results in Parquet.

Public API::

    import daskbench
    result = daskbench.run("sweep", ["trial.rho=0.5,0.9"])      # on a LocalCluster
    result = daskbench.run("sweep", client=client)                # on your own Client
    df = daskbench.load("results/sweep")                          # pandas
    ds = daskbench.to_xarray(df)                                  # one dim per swept key
    daskbench.report(loss=0.3)                # inside a trial: a live metric
    daskbench.should_stop()                   # inside a trial: pruned by the search (sweep.pruner)?
"""

from __future__ import annotations

from typing import Any

from .errors import (
    ClusterError,
    ConfigError,
    DaskbenchError,
    ExperimentNotFound,
    ResultsError,
    SweepError,
    TrialImportError,
)
from .observe.live import report
from .runner.prune import TrialPruned, should_stop

__all__ = [
    "run",
    "load",
    "to_xarray",
    "plan",
    "RunResult",
    "report",
    "should_stop",
    "TrialPruned",
    "DaskbenchError",
    "ConfigError",
    "ExperimentNotFound",
    "SweepError",
    "TrialImportError",
    "ResultsError",
    "ClusterError",
]
__version__ = "0.1.0"

_API = {"run", "load", "to_xarray", "plan", "RunResult"}


def __getattr__(name: str) -> Any:
    # Imported on first use: workers unpickle daskbench objects, and importing
    # pandas, pyarrow and Hydra there for nothing costs a third of a second each.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'daskbench' has no attribute {name!r}")
