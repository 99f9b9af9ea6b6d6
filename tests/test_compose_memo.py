"""The in-process memo of Hydra compositions (config.memo): what it gives is what Hydra
gives, and whatever Hydra's compose reads, changed between two runs, is seen."""

from __future__ import annotations

import io
import os
import shutil

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

import daskbench
from daskbench.config import compose, memo, yamlload
from tests.conftest import write_experiment

EXP = """
defaults:
  - /model: small
  - optional /extra: more
name: e
trial: {_target_: usertrials.quad, x: 1.0, y: 2.0}
"""


@pytest.fixture
def conf(user_dir):
    c = user_dir / "conf"
    (c / "model").mkdir()
    (c / "model" / "small.yaml").write_text("size: 1\n")
    (c / "model" / "large.yaml").write_text("size: 100\n")
    write_experiment(c, "e", EXP)
    memo.clear()
    return c


def composed(words, conf_dir="conf"):
    """Everything the composition gives: its YAML (the hydra node with it) and flags, or its error."""
    dirs = compose.search_dirs(conf_dir)
    try:
        cfg = compose._compose(dirs, list(words), conf_dir)
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("ok", OmegaConf.to_yaml(cfg), cfg._get_flag("struct"), cfg.hydra._get_flag("readonly"))


def uncached(words, monkeypatch, conf_dir="conf"):
    with monkeypatch.context() as m:
        m.setenv("DASKBENCH_COMPOSE_MEMO", "0")
        return composed(words, conf_dir)


def test_a_stored_composition_is_used_and_gives_what_hydra_gives(conf, monkeypatch):
    words = [
        ["+experiment=e"],
        ["+experiment=e", "trial.x=3", "results.dir=/elsewhere"],
        ["trial.x=3", "+experiment=e", "model=large"],
        ["+experiment=e", "model.size=7", "+trial.z=1", "++trial.y=5"],
        ["+experiment=e", "trial.x='a,b'", "trial.y=[1,2]", "name=${trial.x}"],
        ["+experiment=e", "hydra.job.config.override_dirname.kv_sep=:", "trial.x=4"],
        ["+experiment=e", "~trial.y"],
        # mistakes: the same message either way
        ["+experiment=e", "trial.nosuch=1"],
        ["+experiment=e", "+trial.x=5"],
        ["+experiment=e", "runner.nosuch=1"],
        ["+experiment=e", "model@foo=large"],
        ["+experiment=e", "model=nosuch"],
    ]
    for w in words:
        expected = uncached(w, monkeypatch)
        assert [composed(w) for _ in range(4)] == [expected] * 4, w
    assert memo.stored() >= 3  # +experiment=e alone, with model=large, with ~trial.y


def test_what_is_given_is_a_copy(conf):
    dirs = compose.search_dirs("conf")
    for _ in range(3):
        cfg = compose._compose(dirs, ["+experiment=e"], "conf")
        assert cfg.trial.x == 1.0
        cfg.trial.x = 99.0
        cfg.model.size = -1
    assert memo.stored() == 1


def _warm(words=("+experiment=e",)):
    for _ in range(3):
        composed(words)
    assert memo.stored() >= 1


def test_a_file_edited_between_runs_gives_its_new_value(conf, monkeypatch):
    _warm()
    small = conf / "model" / "small.yaml"
    stat = small.stat()
    small.write_text("size: 2\n")  # the same size, and the modification time kept too
    os.utime(small, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "size: 2" in composed(["+experiment=e"])[1]
    assert composed(["+experiment=e"]) == uncached(["+experiment=e"], monkeypatch)


def test_a_new_file_in_a_config_group_is_seen(conf):
    _warm()
    assert "flag" not in composed(["+experiment=e"])[1]
    (conf / "extra").mkdir()
    (conf / "extra" / "more.yaml").write_text("# @package _global_\nflag: 1\n")  # the optional default appears
    assert "flag: 1" in composed(["+experiment=e"])[1]


def test_a_new_config_group_folder_changes_what_a_word_means(conf, monkeypatch):
    _warm(["+experiment=e", "+db=x"])
    assert "\ndb: x\n" in composed(["+experiment=e", "+db=x"])[1]  # a value while db/ does not exist
    (conf / "db").mkdir()
    (conf / "db" / "x.yaml").write_text("host: h\n")
    out = composed(["+experiment=e", "+db=x"])
    assert "\ndb:\n  host: h\n" in out[1]  # now the config group's choice
    assert out == uncached(["+experiment=e", "+db=x"], monkeypatch)


def test_a_configstore_entry_added_or_stored_again_is_seen(conf):
    from hydra.core.config_store import ConfigStore

    _warm()
    cs = ConfigStore.instance()
    try:
        cs.store(group="extra", name="more", node={"flag": 7}, package="_global_")
        assert "flag: 7" in composed(["+experiment=e"])[1]
        _warm()
        cs.store(group="extra", name="more", node={"flag": 8}, package="_global_")  # the same name again
        assert "flag: 8" in composed(["+experiment=e"])[1]
    finally:
        cs.repo.pop("extra", None)
    assert "flag" not in composed(["+experiment=e"])[1]


def test_a_composition_that_cannot_be_pickled_is_stored_as_a_copy(conf, monkeypatch):
    from dataclasses import dataclass

    from hydra.core.config_store import ConfigStore

    @dataclass
    class Local:  # defined in a function: pickle cannot name it
        flag: int = 3

    cs = ConfigStore.instance()
    cs.store(group="extra", name="more", node=Local, package="_global_")
    try:
        _warm()
        assert not any(isinstance(e.stored, bytes) for e in memo._entries.values() if e.stored is not None)
        assert [composed(["+experiment=e"]) for _ in range(2)] == [uncached(["+experiment=e"], monkeypatch)] * 2
    finally:
        cs.repo.pop("extra", None)


def test_a_changed_working_directory_is_seen(conf, tmp_path, monkeypatch):
    _warm(["+experiment=e"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert f"cwd: {elsewhere}" in composed(["+experiment=e"], str(conf))[1]


def test_a_changed_environment_is_seen(conf, monkeypatch):
    write_experiment(conf, "env", EXP.replace("- /model: small", "- /model: ${oc.env:MODEL,small}"))
    _warm(["+experiment=env"])
    assert "size: 1\n" in composed(["+experiment=env"])[1]
    monkeypatch.setenv("MODEL", "large")  # read by the defaults list while Hydra composes
    assert "size: 100" in composed(["+experiment=env"])[1]


def test_the_memo_is_bounded(conf):
    for i in range(memo.MAX_ENTRIES + 5):
        for _ in range(2):  # stored the second time
            composed(["+experiment=e", f"hydra.job.name=j{i}"])  # a hydra.* word: a key of its own
    assert memo.stored() == memo.MAX_ENTRIES
    assert len(memo._entries) == memo.MAX_ENTRIES


def test_sound_in_a_forked_child(conf):
    """The kept cluster's zygote composes before it forks a command's process: what it
    stored is checked against the child's own files, folder and environment."""
    _warm()
    pid = os.fork()
    if pid == 0:  # the child: change what the zygote composed from, then compose
        code = 1
        try:
            (conf / "model" / "small.yaml").write_text("size: 3\n")
            code = 0 if "size: 3" in composed(["+experiment=e"])[1] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_results_of_a_memoised_run_are_those_of_an_unmemoised_one(conf, client, monkeypatch):
    varying = ["started_at", "duration_s", "worker", "cpu_s", "run_id", "attempts", "pid"]

    def run(where, memo_on):
        with monkeypatch.context() as m:
            m.setenv("DASKBENCH_COMPOSE_MEMO", "1" if memo_on else "0")
            res = daskbench.run(
                "e",
                ["trial.x=1,2,3", "trial.y=0.5", f"results.dir={where}"],
                client=client,
                config_dir="conf",
                progress="none",
                echo=lambda *_: None,
            )
        assert res.exit_code == 0 and res.counts.ok == 3
        df = daskbench.load(where)
        return df.drop(columns=[c for c in varying if c in df.columns]).sort_values("trial_id").reset_index(drop=True)

    tables = [run(f"results/r{i}", memo_on=True) for i in range(3)]
    assert memo.stored() >= 1
    plain = run("results/plain", memo_on=False)
    for t in tables:
        pd.testing.assert_frame_equal(t, plain)
    shutil.rmtree("results", ignore_errors=True)


TRICKY = [
    "a: 1e3\nb: 1.5e-3\nc: .inf\nd: -.inf\ne: .nan\nf: yes\ng: no\nh: on\ni: off\nj: 2024-01-02\n"
    "k: 2001-12-14t21:59:43.10-05:00\nl: 0x1f\nm: 0o17\nn: 017\no: 1_000\np: 1:30\nq: ~\nt: 1.\nu: .5\n"
    "v: +1\nw: 6.8523015e+5\ny: 190:20:30.15\nz: 1e-3\n",
    "a: !!python/object/apply:pathlib.Path [x, y]\nb: &x 1\nc: *x\n<<: {m: 1}\n",
    "\ufeffa: |\n  multi\n  line\nb: 日本\nc: \U0001f600\n",
    "{1: a, 2.5: b, true: c}\n",
    "- 1\n- 2.0\n",
    "",
]


@pytest.mark.skipif(not yamlload.available(), reason="PyYAML built without libyaml")
@pytest.mark.parametrize("text", TRICKY)
def test_libyaml_loads_what_omegaconf_loads(text):
    plain = OmegaConf.load(io.StringIO(text))
    with yamlload.libyaml_loader():
        fast = OmegaConf.load(io.StringIO(text))
    assert repr(OmegaConf.to_container(fast)) == repr(OmegaConf.to_container(plain))
    assert type(fast) is type(plain)


@pytest.mark.skipif(not yamlload.available(), reason="PyYAML built without libyaml")
def test_libyaml_keeps_omegaconfs_duplicate_key_error():
    with yamlload.libyaml_loader(), pytest.raises(yaml.constructor.ConstructorError, match="found duplicate key a"):
        OmegaConf.load(io.StringIO("a: 1\nb: 2\na: 3\n"))


def test_a_broken_group_file_gets_omegaconfs_own_message(conf, monkeypatch):
    (conf / "model" / "small.yaml").write_text("size: [1, 2\n")  # libyaml words this error otherwise
    out = composed(["+experiment=e"])
    assert out[0] == "error" and "expected ',' or ']', but got '<stream end>'" in out[2], out
    assert out == uncached(["+experiment=e"], monkeypatch)
