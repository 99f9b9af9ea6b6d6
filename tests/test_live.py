"""Live metrics reported by running trials, seen on the driver's progress line."""

from __future__ import annotations

import daskbench
from daskbench.observe.live import LiveAggregate, TrialContext, report
from tests.conftest import run_cli, write_experiment


def test_live_line_in_a_subprocess_run(user_dir):
    write_experiment(
        user_dir / "conf",
        "lv",
        """
        name: lv
        trial: {_target_: usertrials.reporting, steps: 12}
        sweep: {params: {trial.x: '1,2'}}
        runner: {progress: plain, progress_interval_s: 0.5}
    """,
    )
    r = run_cli(
        ["--config-dir", "conf", "+experiment=lv", "cluster.n_workers=2", "cluster.dashboard_address=127.0.0.1:0"],
        cwd=user_dir,
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = [l for l in r.stdout.splitlines() if l.startswith("[daskbench]")]
    live = [l for l in lines if "| live (" in l]
    assert live, r.stdout
    assert "loss=" in live[-1] and "progress=" in live[-1]
    # a non-numeric value is named once and the run goes on
    assert r.stdout.count("metric 'phase'") == 1 and "is a str, not a number" in r.stdout
    assert "lv: 2 ok, 0 failed" in r.stdout


def test_aggregate_keeps_latest_per_trial_and_filters_runs():
    agg = LiveAggregate("run1", warn=lambda *_: None)
    agg((0, {"run_id": "run1", "trial_id": "a", "metrics": {"loss": 1.0}}))
    agg((0, {"run_id": "run1", "trial_id": "a", "metrics": {"loss": 0.5}}))
    agg((0, {"run_id": "run1", "trial_id": "b", "metrics": {"loss": 0.25}}))
    agg((0, {"run_id": "other", "trial_id": "c", "metrics": {"loss": 100.0}}))
    assert agg.summary() == "live (2 trials): loss=0.375"


def test_report_outside_a_trial_is_a_no_op():
    report(loss=1.0)  # no running trial: nothing to send, no error
    report(context=TrialContext("e", "r", "t"), loss=1.0)  # not on a worker: nothing to send
    assert daskbench.report is report
