"""The launcher end to end: real Hydra apps run as subprocesses on real Dask clusters
(LocalCluster; `dask scheduler` / `dask worker` processes), its trials table, resume,
the Optuna sweeper, and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from daskbench.results import codeversion
from tests.procs import DaskProcesses, free_port

APP = """
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg: DictConfig):
    with open(cfg.log, "a") as f:  # one line per job that really ran
        f.write(f"{cfg.x}\\n")
    if cfg.x == 3 and Path(cfg.fail_flag).exists():
        raise ValueError("x=3 fails while the flag file exists")
    assert HydraConfig.get().job.num >= 0
    return {"loss": (cfg.x - 2) ** 2 + cfg.y, "dir": os.getcwd()} if cfg.kind == "dict" else float((cfg.x - 2) ** 2)


if __name__ == "__main__":
    main()
"""

LOCAL = [
    "hydra/launcher=daskbench",
    "hydra.launcher.cluster.n_workers=2",
    "hydra.launcher.cluster.dashboard_address=null",
]


@pytest.fixture
def app(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "config.yaml").write_text(
        textwrap.dedent(f"""
        x: 0
        y: 0.0
        kind: dict
        log: {tmp_path / "ran.txt"}
        fail_flag: {tmp_path / "fail.flag"}
    """)
    )
    return tmp_path


REPO = Path(__file__).resolve().parents[1]


def app_env() -> dict:
    """The app's environment: this checkout's code first (a worktree's, not another
    editable install's), nothing else of the test's PYTHONPATH, Hydra's short errors."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(REPO / "src")
    return env


def run(app: Path, *args: str, timeout: float = 240, python: str = sys.executable) -> subprocess.CompletedProcess:
    env = app_env()
    return subprocess.run(
        [python, "app.py", "-m", *args], cwd=app, capture_output=True, text=True, timeout=timeout, env=env
    )


HYDRA_OPTUNA_VENV = REPO / ".venv-hydra-optuna"


@pytest.fixture(scope="session")
def hydra_optuna_python() -> str:
    """A Python with daskbench and Hydra's optuna sweeper, as a user of that sweeper has it.

    hydra-optuna-sweeper pins Optuna < 3, while daskbench's own adaptive search (the
    `optuna` extra, in the test environment) needs Optuna 4: one environment cannot hold
    both, so this one is made beside the test environment (once; kept between runs).
    """
    python = HYDRA_OPTUNA_VENV / "bin" / "python"
    stamp = HYDRA_OPTUNA_VENV / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(HYDRA_OPTUNA_VENV)], check=True)
        r = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-e", str(REPO), "hydra-optuna-sweeper>=1.2,<1.4"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if r.returncode != 0:
            pytest.fail(f"could not install hydra-optuna-sweeper beside daskbench: {r.stderr[-2000:]}")
        stamp.touch()
    return str(python)


def ran(app: Path) -> list:
    path = app / "ran.txt"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_rows_job_folders_and_a_failing_job(app):
    (app / "fail.flag").touch()
    r = run(app, *LOCAL, "x=range(0,5)", "y=0.5", "hydra.sweep.dir=ms")
    assert r.returncode == 1, r.stderr  # Hydra's basic sweeper raises the failed job's error, as with any launcher
    assert "Error executing job with overrides: ['x=3', 'y=0.5']" in r.stderr and "ValueError: x=3 fails" in r.stderr
    df = pd.read_parquet(app / "ms" / "results" / "trials").set_index("x").sort_index()
    assert list(df.index) == [0, 1, 2, 3, 4] and df.trial_id.is_unique
    assert list(df.status) == ["ok", "ok", "ok", "failed", "ok"]
    assert df.loc[4, "loss"] == 4.5 and (df.y == 0.5).all() and df.loc[0, "hydra.job.num"] == 0
    assert df.loc[3, "error"].startswith("ValueError: x=3 fails") and "Traceback" in df.loc[3, "traceback"]
    # daskbench's own row columns: the kind of failure, and the code that made the row (the app's file)
    assert df.loc[3, "failure_kind"] == "raised" and df.failure_kind.isna().sum() == 4
    code = df.code_version.unique()
    assert len(code) == 1 and code[0] == codeversion.of_file("app", app / "app.py").label
    assert not code[0].startswith("module:unknown")
    assert (df.attempts == 1).all() and df.worker.notna().all() and (df.duration_s > 0).all()
    for num in range(5):  # each job has its folder and Hydra's .hydra files, as with the basic launcher
        hydra_dir = app / "ms" / str(num) / ".hydra"
        assert {p.name for p in hydra_dir.iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
        assert yaml.safe_load((hydra_dir / "overrides.yaml").read_text()) == [f"x={num}", "y=0.5"]
    assert (app / "ms" / "multirun.yaml").exists()


def test_spawned_workers_run_the_jobs(app):
    """``hydra.launcher.cluster.start_method=spawn`` (a user whose code cannot be forked)."""
    r = run(app, *LOCAL, "hydra.launcher.cluster.start_method=spawn", "x=range(0,3)", "hydra.sweep.dir=ms")
    assert r.returncode == 0, r.stderr
    df = pd.read_parquet(app / "ms" / "results" / "trials")
    assert sorted(df.x) == [0, 1, 2] and (df.status == "ok").all()


def test_resume_skips_ok_jobs_and_reruns_failed_ones(app):
    args = [*LOCAL, "hydra.launcher.resume=true", "hydra.launcher.results_dir=results/sweep"]
    (app / "fail.flag").touch()
    first = run(app, *args, "x=range(0,4)", "hydra.sweep.dir=ms1")
    assert first.returncode == 1 and sorted(ran(app)) == [0, 1, 2, 3]
    (app / "fail.flag").unlink()  # the bug is fixed
    (app / "ran.txt").unlink()
    second = run(app, *args, "x=range(0,6)", "hydra.sweep.dir=ms2")
    assert second.returncode == 0, second.stderr
    assert sorted(ran(app)) == [3, 4, 5]  # only the failed and the new jobs ran
    assert "3 jobs already ok" in second.stdout + second.stderr
    df = pd.read_parquet(app / "results" / "sweep" / "trials")
    assert len(df) == 6 and df.trial_id.is_unique and (df.status == "ok").all()
    # without resume the same jobs run again and their rows are replaced, never doubled
    (app / "ran.txt").unlink()
    third = run(app, *LOCAL, "hydra.launcher.results_dir=results/sweep", "x=0,1", "hydra.sweep.dir=ms3")
    assert third.returncode == 0 and sorted(ran(app)) == [0, 1]
    df = pd.read_parquet(app / "results" / "sweep" / "trials")
    assert len(df) == 6 and df.trial_id.is_unique


def test_optuna_sweeper_batches_and_resume(app, hydra_optuna_python):
    args = [
        *LOCAL,
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.sampler.seed=7",
        "kind=float",
        "x=range(0,6)",
        "hydra.launcher.resume=true",
        "hydra.launcher.results_dir=results/opt",
    ]
    first = run(app, *args, "hydra.sweep.dir=opt1", python=hydra_optuna_python)
    assert first.returncode == 0, first.stderr
    best = yaml.safe_load((app / "opt1" / "optimization_results.yaml").read_text())
    df = pd.read_parquet(app / "results" / "opt" / "trials")
    assert df.status.eq("ok").all() and df.value.min() == best["best_value"]
    # one row per point; a point the sampler proposes again in a later batch is handed back, not run
    assert df.trial_id.is_unique and len(df) == df.x.nunique() and set(ran(app)) == set(df.x)
    assert len(df) <= len(ran(app)) <= 6
    # the same study again: every job is handed back from the table, none runs, the same best is found
    (app / "ran.txt").unlink()
    second = run(app, *args, "hydra.sweep.dir=opt2", python=hydra_optuna_python)
    assert second.returncode == 0, second.stderr
    assert ran(app) == []
    assert yaml.safe_load((app / "opt2" / "optimization_results.yaml").read_text()) == best


def test_address_cluster_with_resources(app, tmp_path_factory):
    procs = DaskProcesses(tmp_path_factory.mktemp("hosts"))
    procs.env = app_env()  # the workers run this checkout's launcher, as the driver does
    procs.start_scheduler()
    procs.start_worker("plain")
    procs.start_worker("gpu", resources="GPU=1")
    try:
        names = procs.wait_for_workers(2)
        r = run(
            app,
            "hydra/launcher=daskbench",
            "hydra.launcher.cluster.kind=address",
            f"hydra.launcher.cluster.address={procs.address}",
            "+hydra.launcher.resources.GPU=1",
            "x=range(0,6)",
            "hydra.sweep.dir=ms",
        )
        assert r.returncode == 0, r.stderr
        df = pd.read_parquet(app / "ms" / "results" / "trials")
        assert len(df) == 6 and (df.status == "ok").all()
        assert set(df.worker) == {"gpu"} and "gpu" in names  # tagged jobs ran on the tagged worker only
        # the workers run elsewhere; each job still ran in the app's folder, as Hydra's launchers do
        assert {Path(d) for d in df["dir"]} == {app}
        assert all((app / "ms" / str(i) / ".hydra" / "config.yaml").exists() for i in range(6))
        # resources no worker of the scheduler has: one line naming what the workers have, nothing run
        (app / "ran.txt").unlink()
        bad = run(
            app,
            "hydra/launcher=daskbench",
            "hydra.launcher.cluster.kind=address",
            f"hydra.launcher.cluster.address={procs.address}",
            "+hydra.launcher.resources.TPU=1",
            "x=1,2",
            "hydra.sweep.dir=ms-bad",
        )
        assert bad.returncode == 3, bad.stderr
        assert "no worker has the resources this experiment asks for (TPU=1)" in bad.stderr
        assert "GPU=1" in bad.stderr and "Traceback" not in bad.stderr and ran(app) == []
    finally:
        procs.stop()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["hydra.launcher.nope=1"], 1, "Key 'nope' not in 'DaskbenchLauncherConf'"),
        (
            ["hydra.launcher.cluster.address=tcp://127.0.0.1:1"],
            2,
            "hydra.launcher.cluster.address is a setting of cluster kind address, not local",
        ),
        (["hydra.launcher.retries=-1"], 2, "hydra.launcher.retries=-1: must be >= 0"),
        (["hydra.launcher.timeout_s=0"], 2, "hydra.launcher.timeout_s=0: must be > 0 seconds, or null for no timeout"),
        (["hydra.launcher.cluster.kind=cloud"], 2, "hydra.launcher.cluster.kind=cloud: use local, address, kubernetes"),
        (
            ["hydra.launcher.cluster.threads_per_worker=0"],
            2,
            "hydra.launcher.cluster.threads_per_worker=0: must be >= 1",
        ),
        (
            ["hydra.launcher.cluster.start_method=vfork"],
            2,
            "hydra.launcher.cluster.start_method=vfork: choose one of forkserver | fork | spawn (default forkserver)",
        ),
        (["++hydra.launcher.resources={TPU: 1}"], 3, "no worker has the resources this experiment asks for (TPU=1)"),
        (
            ["+hydra.launcher.cluster.resources.GPU=1", "+hydra.launcher.resources.TPU=1"],
            3,
            "(TPU=1); the workers have: GPU=1",
        ),
        (
            [
                "hydra.launcher.cluster.kind=address",
                "hydra.launcher.cluster.address=tcp://127.0.0.1:PORT",
                "hydra.launcher.cluster.timeout_s=2",
            ],
            3,
            "cannot reach the Dask scheduler at tcp://127.0.0.1:PORT",
        ),
    ],
)
def test_bad_input_is_one_clear_line(app, args, code, message):
    port = str(free_port())
    args = [a.replace("PORT", port) for a in args]
    local = (
        []
        if "hydra.launcher.cluster.kind=address" in args
        else ["hydra.launcher.cluster.n_workers=1", "hydra.launcher.cluster.dashboard_address=null"]
    )
    r = run(app, "hydra/launcher=daskbench", *local, *args, "x=1,2", "hydra.sweep.dir=ms")
    assert r.returncode == code, (r.stdout, r.stderr)
    assert message.replace("PORT", port) in r.stderr
    assert "Traceback" not in r.stderr and ran(app) == []


def test_the_launchers_cluster_dask_config_goes_over_daskbenchs():
    """``+hydra.launcher.cluster.dask_config...``: the keys given, over daskbench's own quieter
    profiler and event-loop check; none given: daskbench's; a key Dask lacks: one clear line."""
    import dataclasses

    from daskbench.config.dask_settings import QUIET_DASK, flat_dask_config
    from daskbench.errors import ConfigError
    from hydra_plugins.daskbench_launcher._daskbench import cluster_config
    from hydra_plugins.daskbench_launcher.config import ClusterConf

    plain = dataclasses.asdict(ClusterConf())
    assert flat_dask_config(cluster_config(plain).dask_config) == flat_dask_config(QUIET_DASK)
    asked = dict(plain, dask_config={"distributed": {"worker": {"profile": {"interval": "10ms"}}}})
    got = flat_dask_config(cluster_config(asked).dask_config)
    assert got == {"distributed.worker.profile.interval": "10ms", "distributed.admin.tick.interval": "100ms"}
    wrong = dict(plain, dask_config={"distributed": {"worker": {"profile": {"intervl": "10ms"}}}})
    with pytest.raises(
        ConfigError, match=r"^hydra\.launcher\.cluster\.dask_config\.distributed\.worker\.profile\.intervl: Dask"
    ):
        cluster_config(wrong)
