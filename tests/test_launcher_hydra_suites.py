"""The daskbench launcher under Hydra's own launcher test suites (shipped in hydra-core),
parametrized as Hydra's launcher plugins do in their own test files."""

from __future__ import annotations

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.daskbench_launcher.launcher import DaskbenchLauncher

# two worker processes, no dashboard (the machine's port 8787 may be taken); the
# cluster is started once and kept for every in-process sweep of this module
SMALL = ["hydra.launcher.cluster.n_workers=2", "hydra.launcher.cluster.dashboard_address=null"]


def test_discovery() -> None:
    assert DaskbenchLauncher.__name__ in [x.__name__ for x in Plugins.instance().discover(Launcher)]


@pytest.mark.parametrize("launcher_name, overrides", [("daskbench", SMALL)])
class TestDaskbenchLauncher(LauncherTestSuite):
    """Hydra's launcher suite; hydra/launcher/daskbench is the plugin's ConfigStore entry."""


@pytest.mark.parametrize(
    "launcher_name, overrides", [("daskbench", ["hydra/sweeper=basic", "hydra.sweeper.max_batch_size=2", *SMALL])]
)
class TestDaskbenchLauncherBatched(BatchedSweeperTestSuite):
    """Several launch() calls per multirun: the cluster is kept between batches."""


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
