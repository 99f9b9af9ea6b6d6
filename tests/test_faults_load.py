"""Sustained load with faults, on demand only: ``pytest -m load tests/test_faults_load.py -s``.

100,000 trials, 1% of them raising, on a LocalCluster of two workers, while
one worker process is SIGKILLed every 30 seconds. The run must end with exactly
one row per trial: the raising ones `failed`, all others `ok`. The figures
(wall time, rows, kills, attempts) are printed for the README.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import psutil
import pytest

from tests.conftest import write_experiment

LOAD_PY = """
import time


def work(x=0, delay=0.002):
    if x % 100 == 7:
        raise ValueError(f"trial {x} raises, as 1% do")
    time.sleep(delay)
    return {"y": x * 2}
"""

N = 100_000
KILL_EVERY_S = 30.0


def _workers(driver: psutil.Process):
    """The LocalCluster's worker processes (spawned children running spawn_main)."""
    out = []
    for p in driver.children(recursive=True):
        try:
            if any("spawn_main" in part for part in p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


@pytest.mark.load
@pytest.mark.timeout(3600)
def test_100k_trials_with_failures_and_a_worker_killed_every_30s(user_dir):
    (user_dir / "loadtrials.py").write_text(LOAD_PY)
    write_experiment(
        user_dir / "conf",
        "load",
        f"""
        name: load
        trial: {{_target_: loadtrials.work, delay: 0.002}}
        sweep: {{params: {{trial.x: 'range(0,{N})'}}}}
        results: {{report: false}}
    """,
    )
    args = [
        sys.executable,
        "-m",
        "daskbench",
        "--config-dir",
        "conf",
        "+experiment=load",
        "cluster.n_workers=2",
        "cluster.dashboard_address=null",
        "runner.progress=plain",
        "runner.progress_interval_s=15",
    ]
    t0 = time.monotonic()
    driver = subprocess.Popen(
        args,
        cwd=user_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    kills = []
    stop = threading.Event()

    def killer():
        rng = random.Random(1)
        me = psutil.Process(driver.pid)
        while not stop.wait(KILL_EVERY_S):
            workers = _workers(me)
            if workers and driver.poll() is None:
                victim = rng.choice(workers)
                try:
                    os.kill(victim.pid, signal.SIGKILL)
                    kills.append(round(time.monotonic() - t0, 1))
                except ProcessLookupError:
                    pass

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    out, _ = driver.communicate(timeout=3000)
    wall = time.monotonic() - t0
    stop.set()
    t.join(5)
    assert driver.returncode == 1, out[-3000:]  # 1% failed
    df = pd.read_parquet(user_dir / "results/load/trials")
    failed = df[df.status == "failed"]
    figures = {
        "trials": N,
        "rows": len(df),
        "unique_ids": int(df.trial_id.nunique()),
        "ok": int((df.status == "ok").sum()),
        "failed": len(failed),
        "wall_s": round(wall, 1),
        "kills": len(kills),
        "kill_times_s": kills,
        "attempts_total": int(df.attempts.sum()),
        "trials_with_attempts_gt_1": int((df.attempts > 1).sum()),
        "max_attempts": int(df.attempts.max()),
        "trials_per_s": round(N / wall, 1),
    }
    print("\nload figures: " + json.dumps(figures))
    (user_dir / "load-figures.json").write_text(json.dumps(figures, indent=2))
    assert len(df) == N and df.trial_id.is_unique
    assert sorted(failed["trial.x"]) == [x for x in range(N) if x % 100 == 7]
    assert failed.error.str.startswith("ValueError: trial").all()
    ok = df[df.status == "ok"]
    assert len(ok) == N - N // 100 and (ok.y == ok["trial.x"] * 2).all()
    assert len(kills) >= 1, "the sweep ended before the first kill"
    assert (df.attempts > 1).sum() >= 1  # the runs lost with the killed workers are counted
