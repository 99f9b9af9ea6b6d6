"""benchmarks/timeline_cli.py: a real command's milestones from every process it starts
(no timing asserted: only that each process reports what the tool says it does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

from tests.conftest import ROOT


def test_the_timeline_has_each_processs_milestones():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "timeline_cli.py"), "20", "--no-report"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    rows = json.loads(proc.stdout.strip().splitlines()[-1])["median_rows"]
    seen = Counter((role, what.split("  [")[0]) for _, _, role, what in rows)
    assert seen["forkserver", "preloaded daskbench.cluster.dask_import"] == 1
    assert seen["forkserver", "preloaded daskbench.cluster.server_exit"] == 1
    assert seen["scheduler", "scheduler listening"] == 1
    assert seen["worker", "worker registered"] == 2  # cluster.n_workers=2
    assert seen["worker", "chunk end"] >= 2
    assert seen["driver", "Runner.run done"] == 1 and seen["parent", "exit seen (process ended, output closed)"] == 1
    times = [t for t, _, _, _ in rows]
    assert times == sorted(times) and times[0] >= 0
