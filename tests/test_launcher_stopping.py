"""Jobs that end early, end to end (real Hydra apps as subprocesses on a LocalCluster):
``hydra.launcher.timeout_s`` and Ctrl-C in the middle of a multirun, then resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
import yaml

from tests.test_launcher import LOCAL, app_env, ran, run

APP = """
import os
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg: DictConfig):
    with open(cfg.log, "a") as f:  # one line per job that started
        f.write(f"{cfg.x}\\n")
    assert HydraConfig.get().job.num == cfg.x  # Hydra's state is there, also in a job's own process
    if cfg.x == cfg.hang:
        with open(cfg.pid_file, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(3600)
    time.sleep(cfg.sleep)
    return {"loss": float(cfg.x)}


if __name__ == "__main__":
    main()
"""


@pytest.fixture
def app(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "config.yaml").write_text(
        textwrap.dedent(f"""
        x: 0
        hang: -1
        sleep: 0.0
        log: {tmp_path / "ran.txt"}
        pid_file: {tmp_path / "hung.pid"}
    """)
    )
    return tmp_path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_job_past_its_timeout_is_a_failed_job_and_its_process_is_killed(app):
    r = run(
        app,
        *LOCAL,
        "hydra.launcher.timeout_s=3",
        "hydra.launcher.retries=1",
        "hang=2",
        "x=range(0,4)",
        "hydra.sweep.dir=multirun",
    )
    # the basic sweeper stops with the job's error once the batch is done, as for any failed job
    assert r.returncode == 1, r.stderr
    assert "Error executing job with overrides: ['hang=2', 'x=2']" in r.stderr
    assert "TrialTimeout: the job ran longer than hydra.launcher.timeout_s=3; its process was killed" in r.stderr
    df = pd.read_parquet(app / "multirun" / "results" / "trials").set_index("x").sort_index()
    assert list(df.status) == ["ok", "ok", "timeout", "ok"]  # the other jobs ran to their end
    assert df.loc[2, "failure_kind"] == "timeout" and df.failure_kind.isna().sum() == 3
    assert df.loc[2, "error"].startswith("TrialTimeout: the job ran longer than hydra.launcher.timeout_s=3")
    assert df.loc[2, "attempts"] == 1  # a timeout is not retried (it would most likely time out again)
    assert list(df.loss.dropna()) == [0.0, 1.0, 3.0]
    assert not _alive(int((app / "hung.pid").read_text()))  # killed, not left running on its worker
    for num in range(4):  # each job, the timed-out one too, has Hydra's folder and files
        hydra_dir = app / "multirun" / str(num) / ".hydra"
        assert yaml.safe_load((hydra_dir / "overrides.yaml").read_text()) == ["hang=2", f"x={num}"]


def test_ctrl_c_stops_at_once_and_resume_runs_only_the_rest(app):
    args = [*LOCAL, "hydra.launcher.chunk_size=1", "sleep=0.3", "x=range(0,30)", "hydra.sweep.dir=ms"]
    env = app_env()
    proc = subprocess.Popen(
        [sys.executable, "app.py", "-m", *args],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        while len(ran(app)) < 8 and proc.poll() is None:  # mid-multirun: several jobs done, most to do
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole group, the cluster's workers too
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "daskbench launcher: interrupted; the rows of the jobs that finished are in" in err
    assert "run the same command with hydra.launcher.resume=true to run only the rest" in err
    assert "Traceback" not in err
    first = pd.read_parquet(app / "ms" / "results" / "trials")
    assert len(first) == 30 and first.trial_id.is_unique and set(first.status) <= {"ok", "cancelled"}
    ok = set(first.x[first.status == "ok"])
    assert ok and ok <= set(ran(app)) and len(ok) < 30
    assert (first.failure_kind[first.status == "cancelled"] == "cancelled").all()
    (app / "ran.txt").unlink()
    second = run(app, *args, "hydra.launcher.resume=true")
    assert second.returncode == 0, second.stderr
    assert sorted(ran(app)) == sorted(set(range(30)) - ok)  # only the rest ran
    df = pd.read_parquet(app / "ms" / "results" / "trials")
    assert len(df) == 30 and df.trial_id.is_unique and (df.status == "ok").all()
