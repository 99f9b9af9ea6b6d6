"""The results folder fails mid-run: the disk fills, or the folder turns read-only.

A small tmpfs stands in for the disk (mounting needs root; CI runs as root).
The run must stop with one clear line naming the folder and the cause, leave
every Parquet file it wrote readable and no half-written file behind, and the
same command must complete the sweep, with no trial twice, once space (or
write access) is back.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from daskbench.errors import ResultsError
from daskbench.results.store import ResultStore
from tests.conftest import run_cli, write_experiment

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")

N = 30
FAST = [
    "runner.progress=plain",
    "results.report=false",
    "cluster.n_workers=1",
    "cluster.dashboard_address=127.0.0.1:0",
    "runner.chunk_size=1",
    "results.flush_rows=1",
]

TRIALS = '''
"""Trials that break their own results folder at trial `at`, once."""
import errno, os, time
import pandas as pd


def _parts(folder):
    return os.path.isdir(folder) and any(n.startswith("part-") for n in os.listdir(folder))


def fill_at(x=0, at=10, parts="", ballast="", marker="", delay=0.02, seed=0):
    """At x == at (the first time): once some part is on disk, fill the file system."""
    if x == at and not os.path.exists(marker):
        open(marker, "w").close()
        deadline = time.time() + 60
        while time.time() < deadline and not _parts(parts):
            time.sleep(0.05)
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while True:
                os.write(fd, b"\\0" * 65536)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)
    time.sleep(delay)
    # per-step rows too: on resume, those of trials whose row never landed are dropped
    return {"y": x * 2, "steps": pd.DataFrame({"tick": [0, 1, 2], "v": [x, x + 1, x + 2]})}


def wait_read_only(x=0, at=10, path="", ready="", delay=0.02, seed=0):
    """At x == at (the first time): say so (file `ready`), then wait until `path` is
    on a read-only file system."""
    if x == at and not os.path.exists(ready):
        open(ready, "w").close()
        deadline = time.time() + 120
        while time.time() < deadline and not os.statvfs(path).f_flag & os.ST_RDONLY:
            time.sleep(0.05)
    time.sleep(delay)
    return {"y": x * 2}
'''


@pytest.fixture
def disk(tmp_path):
    """A 2 MB tmpfs, unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:  # root without CAP_SYS_ADMIN (some containers)
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def work(tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "faulttrials.py").write_text(TRIALS)
    return wd


def _assert_intact(folder: Path) -> pd.DataFrame:
    """Every Parquet file readable, nothing half-written left; the table as it stands."""
    parts = sorted(folder.rglob("*.parquet"))
    assert parts, f"nothing was written to {folder} before the fault"
    for p in parts:
        pq.read_table(p)  # raises if a part is truncated
    leftovers = [p for p in folder.rglob(".*") if p.name != ".."]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    df = pd.read_parquet(folder / "trials")
    assert df.trial_id.is_unique
    return df


def _one_line_error(r) -> str:
    out = r.stdout + r.stderr
    assert "Traceback (most recent call last)" not in out, out
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("daskbench: error: "), r.stderr
    return errors[0]


def _resume_completes(args, wd: Path, results: Path, done_before: int) -> None:
    r = run_cli(args, cwd=wd)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"{done_before} skipped (already ok)" in r.stdout, r.stdout
    df = pd.read_parquet(results / "trials")
    assert len(df) == N and df.trial_id.is_unique and (df.status == "ok").all()
    assert sorted(df["trial.x"]) == list(range(N))
    if (results / "steps").exists():
        steps = pd.read_parquet(results / "steps")
        assert set(steps.trial_id) == set(df.trial_id)
        assert (steps.groupby("trial_id").size() == 3).all()  # no step row twice


def test_disk_full_mid_run_stops_clearly_and_resumes(disk, work):
    results = disk / "full"
    write_experiment(
        work / "conf",
        "full",
        f"""
        name: full
        trial: {{_target_: faulttrials.fill_at, at: 10, parts: '{results}/trials',
                 ballast: '{disk}/ballast', marker: '{work}/filled'}}
        sweep: {{params: {{trial.x: 'range(0,{N})'}}}}
    """,
    )
    args = ["--config-dir", "conf", "+experiment=full", f"results.dir={results}", *FAST]
    r = run_cli(args, cwd=work)
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = _one_line_error(r)
    assert f"cannot write results to {results}" in line and "No space left on device" in line, line
    assert "free space there or set results.dir=PATH" in line and "run the same command again" in line, line
    df = _assert_intact(results)
    done = int((df.status == "ok").sum())
    assert 0 < done < N
    (disk / "ballast").unlink()  # space is back
    _resume_completes(args, work, results, done)


def _remount(mnt: Path, mode: str) -> None:
    """Remount, retrying while a file there is open for writing (EBUSY)."""
    deadline = time.time() + 60
    while True:
        r = subprocess.run(["mount", "-o", f"remount,{mode}", str(mnt)], capture_output=True, text=True)
        if r.returncode == 0:
            return
        assert time.time() < deadline, r.stderr
        time.sleep(0.05)


def test_folder_turns_read_only_mid_run(disk, work):
    results = disk / "ro"
    write_experiment(
        work / "conf",
        "ro",
        f"""
        name: ro
        trial: {{_target_: faulttrials.wait_read_only, at: 10, path: '{disk}', ready: '{work}/ready'}}
        sweep: {{params: {{trial.x: 'range(0,{N})'}}}}
    """,
    )
    args = ["--config-dir", "conf", "+experiment=ro", f"results.dir={results}", *FAST]
    proc = subprocess.Popen(
        [sys.executable, "-m", "daskbench", *args],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (work / "ready").exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        _remount(disk, "ro")
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert r.returncode == 2, (out, err)
    line = _one_line_error(r)
    assert f"cannot write results to {results}" in line and "Read-only file system" in line, line
    assert "remount it read-write or set results.dir=PATH" in line, line
    df = _assert_intact(results)
    done = int((df.status == "ok").sum())
    assert 0 < done < N
    _remount(disk, "rw")
    _resume_completes(args, work, results, done)


# -- the store alone, no cluster: each kind of write fails cleanly -------------------


def _rows(start: int, n: int, status: str = "ok"):
    return [
        dict(
            trial_id=f"t{i}",
            status=status,
            attempts=1,
            error=None if status == "ok" else "E: x",
            blob=os.urandom(2_000).hex(),
        )
        for i in range(start, start + n)
    ]


def _fill(path: Path) -> None:
    """Write `path` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


@pytest.mark.parametrize("rerun", [False, True], ids=["append-part", "rewrite-folder"])
def test_store_disk_full_keeps_old_rows_and_leaves_no_partial_file(disk, rerun):
    """Appending a part, and rewriting the folder (a re-run replacing failed rows),
    fail with a ResultsError, leave no partial file or folder and keep the old rows."""
    root = disk / "r"
    st = ResultStore(root, flush_rows=10)
    st.add(_rows(0, 10, status="failed" if rerun else "ok"), {})
    st.close()
    before = {p.name: p.read_bytes() for p in (root / "trials").glob("part-*")}
    st = ResultStore(root, flush_rows=10)
    ok = st.open_for_resume()
    _fill(disk / "ballast")
    with pytest.raises(ResultsError, match=r"r: No space left on device; free space there or set results.dir"):
        st.add(_rows(0, 10) if rerun else _rows(10, 10), {})  # t0..t9 again: a rewrite
    assert st.broken is not None
    st.close()  # a broken store has reported already: closing writes nothing, raises nothing
    assert not [p for p in root.rglob(".*")], "a partial file or folder was left"
    assert {p.name: p.read_bytes() for p in (root / "trials").glob("part-*")} == before
    (disk / "ballast").unlink()
    st = ResultStore(root, flush_rows=10)
    ok = st.open_for_resume()
    st.add([r for r in _rows(0, 20) if r["trial_id"] not in ok], {})
    st.close()
    df = pd.read_parquet(root / "trials")
    assert len(df) == 20 and df.trial_id.is_unique and (df.status == "ok").all()


def test_store_read_only_on_manifest(disk):
    root = disk / "m"
    st = ResultStore(root)
    st.record_run({"id": "a"}, "", "m")
    st.add(_rows(0, 3), {})
    st.flush()
    _remount(disk, "ro")
    try:
        with pytest.raises(ResultsError, match=r"Read-only file system; remount it read-write or set results.dir=PATH"):
            st.record_run({"id": "a", "outcome": "finished"}, "", "m")
    finally:
        _remount(disk, "rw")
    assert len(pd.read_parquet(root / "trials")) == 3
    assert pa.__version__  # pyarrow read the parts back above
