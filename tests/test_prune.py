"""The worker side of pruning (daskbench.runner.prune), without a cluster."""

from __future__ import annotations

import pytest

from daskbench.runner import prune


def test_a_marked_trial_raises_at_its_next_report_and_ends_pruned_with_its_step():
    prune.start("t1")
    prune.on_report("t1", {"step": 3.0, "loss": 1.0})
    assert not prune.stopped("t1")
    prune.mark(["t1"])
    assert prune.stopped("t1")
    with pytest.raises(prune.TrialPruned, match="step 4"):
        prune.on_report("t1", {"step": 4.0, "loss": 0.9})
    assert prune.finish("t1") == 4
    assert prune.finish("t1") is None  # forgotten once ended


def test_a_trial_not_marked_ends_unpruned_and_a_stale_mark_is_dropped_at_start():
    prune.start("t2")
    prune.on_report("t2", {"step": 1.0})
    assert prune.finish("t2") is None
    prune.mark(["t3"])  # came after an earlier run of t3 ended
    prune.start("t3")
    prune.on_report("t3", {"loss": 2.0})
    assert prune.finish("t3") is None
    prune.mark(["t4"])
    assert prune.finish("t4") == -1  # pruned before it reported any step
