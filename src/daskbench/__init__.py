"""daskbench: parameter sweeps and agent simulations on Dask, results in Parquet.

Public API::

    import daskbench
    result = daskbench.run("sweep", ["trial.rho=0.5,0.9"])      # on a LocalCluster
    result = daskbench.run("sweep", client=client)                # on your own Client
    df = daskbench.load("results/sweep")                          # pandas
    ds = daskbench.to_xarray(df)                                  # one dim per swept key
"""

from .api import RunResult, load, plan, run, to_xarray
from .errors import ClusterError, ConfigError, DaskbenchError, ExperimentNotFound, ResultsError, SweepError, TrialImportError

__all__ = [
    "run", "load", "to_xarray", "plan", "RunResult",
    "DaskbenchError", "ConfigError", "ExperimentNotFound", "SweepError", "TrialImportError",
    "ResultsError", "ClusterError",
]
__version__ = "0.1.0"
