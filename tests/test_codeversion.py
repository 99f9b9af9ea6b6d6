"""The code behind the rows: recorded per run and row, reported on resume, re-run on request."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import daskbench
from daskbench.results import codeversion
from daskbench.results.codeversion import CodeVersion, notice, why_changed
from daskbench.results.store import ResultStore
from tests.conftest import write_experiment

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

V1 = """
import pandas as pd


def f(x=0, seed=0):
    return {"y": x, "steps": pd.DataFrame({"tick": [0, 1], "v": [x, x]})}
"""
V2 = V1.replace('"y": x', '"y": 10 * x').replace('"v": [x, x]', '"v": [10 * x, 10 * x]')

# a fresh LocalCluster per run (client=None): its new worker processes import the edited module
LOCAL = ["cluster.n_workers=1", "cluster.dashboard_address=127.0.0.1:0", "results.report=false"]


# -- pure: the label and the words --------------------------------------------------
def test_label_and_manifest_entry():
    cv = CodeVersion("m", "a" * 64, "b" * 40, dirty=True)
    assert cv.label == "module:aaaaaaaaaaaa commit:bbbbbbbbbbbb+dirty"
    assert CodeVersion("m", "a" * 64).label == "module:aaaaaaaaaaaa"
    assert CodeVersion("m").label == "module:unknown"
    assert cv.as_dict() == {
        "module": "m",
        "source_sha256": "a" * 64,
        "commit": "b" * 40,
        "dirty": True,
        "label": cv.label,
    }


def test_why_changed():
    now = "module:aaa commit:ccc"
    assert why_changed(now, {"module:bbb commit:ccc": 3}) == "the trial module changed since"
    assert why_changed(now, {"module:aaa commit:ddd": 1, "module:bbb": 1}) == "the trial module changed since"
    same_module = "the trial module is the same, the commit of its repository is not"
    assert why_changed(now, {"module:aaa commit:ddd": 2}) == same_module
    assert why_changed(now, {"module:aaa": 2}) == same_module
    assert why_changed(now, {"module:aaa commit:ccc+dirty": 2}) == (
        "the trial module is the same, its repository's uncommitted changes are not"
    )


def test_notice_words():
    assert notice(312, "the trial module changed since", rerun=False) == (
        "312 ok rows were made by other code (the trial module changed since); they are kept: "
        "set results.rerun=changed to run them again"
    )
    assert notice(1, "r", rerun=False).startswith("1 ok row was made by other code (r)")
    assert "results.rerun=changed: those in this sweep run again" in notice(2, "r", rerun=True)


# -- reading the code ---------------------------------------------------------------
def test_of_target_without_git(tmp_path, monkeypatch):
    (tmp_path / "cv_nogit.py").write_text("def f():\n    return {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cv = codeversion.of_target("cv_nogit.f")
    assert cv.module == "cv_nogit" and cv.commit is None and not cv.dirty
    assert cv.source_sha256 == hashlib.sha256((tmp_path / "cv_nogit.py").read_bytes()).hexdigest()
    assert codeversion.of_target("no_such_module_anywhere.f") == CodeVersion("no_such_module_anywhere")


def _git(repo, *args):
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@needs_git
def test_of_target_in_a_git_repository(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "cv_trials.py").write_text("def f():\n    return {}\n")
    (repo / "README").write_text("a\n")
    (repo / ".gitignore").write_text("venv/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")
    monkeypatch.syspath_prepend(str(repo))
    cv = codeversion.of_target("pkg.cv_trials.f")
    assert cv.commit == _git(repo, "rev-parse", "HEAD") and not cv.dirty
    (repo / "results").mkdir()
    (repo / "results" / "x.parquet").write_text("untracked: results written by a run")
    assert not codeversion.of_target("pkg.cv_trials.f").dirty
    (repo / "README").write_text("b\n")  # a tracked file changed
    dirty = codeversion.of_target("pkg.cv_trials.f")
    assert dirty.dirty and dirty.source_sha256 == cv.source_sha256 and dirty.label.endswith("+dirty")
    # a module the repository ignores (an installed copy in a virtualenv inside it) is not its code
    (repo / "venv").mkdir()
    (repo / "venv" / "cv_installed.py").write_text("def f():\n    return {}\n")
    monkeypatch.syspath_prepend(str(repo / "venv"))
    assert codeversion.of_target("cv_installed.f").commit is None


# -- the store: replacing ok rows of other code ---------------------------------------
def _ok(tid, code, y):
    return {"trial_id": tid, "status": "ok", "y": y, "seed": 0, "code_version": code}


def test_store_redo_replaces_rows_and_steps_but_not_with_cancelled(tmp_path):
    st = ResultStore(tmp_path, code_version="module:old")
    steps = pa.table({"trial_id": ["a", "a", "b", "c"], "v": [1, 1, 2, 3]})
    st.add([_ok("a", None, 1), _ok("b", None, 2), _ok("c", None, 3)], {"steps": steps})
    st.close()
    st = ResultStore(tmp_path, code_version="module:new")
    assert st.open_for_resume() == {"a", "b", "c"}
    assert st.ok_rows_by_other_code("module:new") == ({"a", "b", "c"}, {"module:old": 3})
    assert st.ok_rows_by_other_code("module:old") == (set(), {})
    st.redo({"a", "b"})
    st.add(
        [_ok("a", None, 10), {"trial_id": "b", "status": "cancelled", "error": "cancelled"}],
        {"steps": pa.table({"trial_id": ["a"], "v": [10]})},
    )
    st.close()
    df = pd.read_parquet(tmp_path / "trials").set_index("trial_id").sort_index()
    assert df.index.is_unique and list(df.index) == ["a", "b", "c"]
    assert df.y.to_dict() == {"a": 10, "b": 2, "c": 3} and (df.status == "ok").all()
    assert df.code_version.to_dict() == {"a": "module:new", "b": "module:old", "c": "module:old"}
    got = pd.read_parquet(tmp_path / "steps").sort_values(["trial_id", "v"])
    assert list(zip(got.trial_id, got.v)) == [("a", 10), ("b", 2), ("c", 3)]


# -- through daskbench.run on real clusters -------------------------------------------
@pytest.fixture
def cv_dir(user_dir):
    (user_dir / "codetrials.py").write_text(V1)
    write_experiment(
        user_dir / "conf",
        "cv",
        """
        name: cv
        trial: {_target_: codetrials.f, x: 0}
        sweep: {params: {trial.x: 'range(0,6)'}}
    """,
    )
    return user_dir


def go(overrides=(), client=None):
    lines = []
    res = daskbench.run(
        "cv", [*LOCAL, *overrides], client=client, config_dir="conf", progress="none", echo=lines.append
    )
    return res, [ln for ln in lines if "made by other code" in ln]


def test_changed_code_is_reported_kept_then_rerun(cv_dir):
    first, said = go()
    assert first.counts.ok == 6 and said == []
    label = codeversion.of_target("codetrials.f").label
    df = daskbench.load("results/cv")
    assert set(df.code_version) == {label}
    run = json.loads((cv_dir / "results/cv/manifest.json").read_text())["runs"][0]
    assert run["code"]["source_sha256"] == hashlib.sha256((cv_dir / "codetrials.py").read_bytes()).hexdigest()
    assert run["code"]["module"] == "codetrials" and run["code"]["label"] == label

    (cv_dir / "codetrials.py").write_text(V2)  # the user fixes a bug in the trial
    again, said = go()
    assert said == [
        "6 ok rows were made by other code (the trial module changed since); they are kept: "
        "set results.rerun=changed to run them again"
    ]
    assert again.counts.skipped == 6 and again.counts.done == 0
    assert daskbench.load("results/cv").sort_values("trial.x").y.tolist() == [0, 1, 2, 3, 4, 5]

    more, said = go(["trial.x=range(0,8)"])  # extending still reuses the old rows
    assert more.counts.ok == 2 and more.counts.skipped == 6 and said[0].startswith("6 ok rows")

    redo, said = go(["trial.x=range(0,8)", "results.rerun=changed"])
    assert len(said) == 1 and said[0].startswith("6 ok rows were made by other code (the trial module changed since)")
    assert redo.counts.ok == 6 and redo.counts.skipped == 2
    df = daskbench.load("results/cv").sort_values("trial.x")
    new_label = codeversion.of_target("codetrials.f").label
    assert len(df) == 8 and df.trial_id.is_unique and set(df.code_version) == {new_label} != {label}
    assert df.y.tolist() == [10 * x for x in range(8)]
    steps = pd.read_parquet(cv_dir / "results/cv/steps")
    assert len(steps) == 16 and not steps.duplicated(["trial_id", "tick"]).any()
    assert (steps.v == 10 * steps.trial_id.map(df.set_index("trial_id")["trial.x"])).all()

    last, said = go(["trial.x=range(0,8)", "results.rerun=changed"])
    assert said == [] and last.counts.skipped == 8 and last.counts.done == 0


def test_rows_without_a_code_version_resume_as_unknown(cv_dir, client):
    first, _ = go(client=client)
    assert first.counts.ok == 6
    for part in (cv_dir / "results/cv/trials").glob("part-*.parquet"):  # as an older daskbench wrote them
        table = pq.read_table(part)
        pq.write_table(table.drop(["code_version"]), part)
    (cv_dir / "codetrials.py").write_text(V2)
    again, said = go(["results.rerun=changed"], client=client)
    assert said == [] and again.counts.skipped == 6 and again.counts.done == 0
    assert "code_version" not in daskbench.load("results/cv").columns


@needs_git
def test_reading_in_a_thread_gives_what_of_target_gives_and_its_errors(tmp_path, monkeypatch):
    """A run starts reading its code version in a thread once its trial module is imported
    (``Reading``): the same version as read in line, another target read when asked, no
    thread when held back (beside a fork), and an error raised in the run's own thread."""
    repo = tmp_path / "repo"
    (repo / "rpkg").mkdir(parents=True)
    (repo / "rpkg" / "__init__.py").write_text("")
    (repo / "rpkg" / "trials.py").write_text("def f():\n    return {}\n")
    (repo / "boom").mkdir()
    (repo / "boom" / "__init__.py").write_text("raise RuntimeError('boom: the package fails to import')\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")
    monkeypatch.syspath_prepend(str(repo))
    reading = codeversion.Reading()
    reading.start("rpkg.trials.f")
    assert reading._thread is not None and reading._thread.name == "daskbench-code-version"
    got = reading.get("rpkg.trials.f")
    assert got == codeversion.of_target("rpkg.trials.f") and got.commit == _git(repo, "rev-parse", "HEAD")
    assert reading.get("no_such_module_anywhere.f") == CodeVersion("no_such_module_anywhere")
    held = codeversion.Reading()
    held.in_thread = False
    held.start("rpkg.trials.f")
    assert held._thread is None and held.get("rpkg.trials.f") == got
    failing = codeversion.Reading()
    failing.start("boom.trials.f")
    with pytest.raises(RuntimeError, match="boom: the package fails to import"):
        failing.get("boom.trials.f")
