"""The daskbench launcher under Hydra's own launcher test suites (shipped in hydra-core),
parametrized as Hydra's launcher plugins do in their own test files."""

from __future__ import annotations

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.daskbench_launcher.launcher import DaskbenchLauncher

# two worker processes, no dashboard (the machine's port 8787 may be taken)
SMALL = ["hydra.launcher.cluster.n_workers=2", "hydra.launcher.cluster.dashboard_address=null"]


@pytest.fixture(autouse=True)
def nothing_left_running():
    """Each in-process multirun closes what the launcher started when it ends, so the tests
    after it (in this process) find no cluster of it, the default client and Dask's log level as they were."""
    import logging

    from distributed.client import _get_global_client  # importing distributed sets its log levels

    level, default = logging.getLogger("distributed").level, _get_global_client()
    yield
    from hydra_plugins.daskbench_launcher._daskbench import _CURRENT

    assert _CURRENT["client"] is None and _get_global_client() is default  # e.g. conftest's, or none
    assert logging.getLogger("distributed").level == level


def test_discovery() -> None:
    assert DaskbenchLauncher.__name__ in [x.__name__ for x in Plugins.instance().discover(Launcher)]


@pytest.mark.parametrize("launcher_name, overrides", [("daskbench", SMALL)])
class TestDaskbenchLauncher(LauncherTestSuite):
    """Hydra's launcher suite; hydra/launcher/daskbench is the plugin's ConfigStore entry."""


@pytest.mark.parametrize(
    "launcher_name, overrides", [("daskbench", ["hydra/sweeper=basic", "hydra.sweeper.max_batch_size=2", *SMALL])]
)
class TestDaskbenchLauncherBatched(BatchedSweeperTestSuite):
    """Several launch() calls per multirun: the cluster is kept between batches, closed at the end."""


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        (
            {
                "defaults": [
                    {"override hydra/launcher": "daskbench"},
                    {"override hydra/hydra_logging": "hydra_debug"},
                    {"override hydra/job_logging": "disabled"},
                ]
            },
            ["-m", "hydra.launcher.cluster.n_workers=1", "hydra.launcher.cluster.dashboard_address=null"],
        )
    ],
)
class TestDaskbenchLauncherIntegration(IntegrationTestSuite):
    """Real apps run as subprocesses: job names, working directories, original cwd."""
