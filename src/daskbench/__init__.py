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

from .errors import (
    ClusterError,
    ConfigError,
    DaskbenchError,
    ExperimentNotFound,
    ResultsError,
    SweepError,
    TrialImportError,
)

TYPE_CHECKING = False  # not typing's: `python -m daskbench` imports this first, typing costs ~10 ms
if TYPE_CHECKING:
    from typing import Any

    from .api import RunResult, load, plan, run, to_xarray
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
_TRIAL = {"report": "observe.live", "should_stop": "runner.prune", "TrialPruned": "runner.prune"}


def __getattr__(name: str) -> Any:
    # Imported on first use: workers unpickle daskbench objects, and importing
    # pandas, pyarrow and Hydra there for nothing costs a third of a second each;
    # and a command on a kept cluster's driver (cluster/keep_client.py) needs none of them.
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in _TRIAL:
        import importlib

        value = getattr(importlib.import_module(f".{_TRIAL[name]}", __name__), name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module 'daskbench' has no attribute {name!r}")
