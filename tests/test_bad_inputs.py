"""Bad input, as a table: every user mistake gives one clear line, a non-zero exit,
no traceback, and leaves the results folder exactly as it was.

Each case runs ``python -m daskbench`` in a subprocess from its own working
folder, as a user would. Usage errors (exit 2) fail before anything runs: nothing is
printed on stdout (no cluster, no trial count), simulation settings included. Cases that need a
real run share it: one earlier run seeds the results folders the results-folder
cases start from, and one sweep holds every bad trial return value (those are
per-trial failures, so they are checked in the table, not as exit-2 errors).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import pandas as pd
import pytest

from tests.conftest import run_cli, write_experiment

FAST = ["runner.progress=plain", "results.report=false"]
SEARCH = ["sweep.search=optuna", "sweep.budget=4", "sweep.objective=f"]  # a valid adaptive search
FAST_LOCAL = ["cluster.n_workers=1", "cluster.dashboard_address=127.0.0.1:0"]  # only for cluster=local


def cli_args(args: Sequence[str]) -> List[str]:
    """The case's words after the fast settings, so that the case's own values win."""
    local = not any(a.startswith("cluster=") for a in args)
    return ["--config-dir", "conf", *FAST, *(FAST_LOCAL if local else []), *args]


TRIALS = '''
"""Trial functions for the bad-input table."""
import pandas as pd


def quad(x=0.0, seed=0):
    return {"f": (x - 1) ** 2}


class Holder:
    value = 3


def returns(kind="ok", seed=0):
    """Returns a bad value of the given kind (a user's buggy trial)."""
    if kind == "list":
        return [1, 2]
    if kind == "nonscalar":
        return {"v": [1, 2, 3]}
    if kind == "reserved":
        return {"status": "mine"}
    if kind == "table_named_trials":
        return {"trials": pd.DataFrame({"a": [1]})}
    if kind == "none":
        return None
    return {"f": 1.0}
'''

GOOD = """
    name: bad
    trial: {_target_: badtrials.quad, x: 0.0}
    sweep: {params: {trial.x: '0,1'}}
"""

SIM = """
    name: bad
    trial:
      _target_: daskbench.sim.trial
      model: daskbench.experiments.boltzmann.Boltzmann
      params: {n_agents: 20}
      ticks: 5
      clock: {tick_seconds: 1.0}
"""


@dataclass
class Case:
    """One bad input: what to run, what must come back, where results would go."""

    id: str
    args: List[str]
    needles: Sequence[str]  # all must appear in the one error line
    yaml: Optional[str] = GOOD  # the experiment file `bad` in the config folder
    code: int = 2
    setup: Optional[Callable[[Path], None]] = None  # prepares the working folder
    seeded: Optional[str] = None  # results folder (relative) to seed with a real run first
    results: str = "results"  # what must be byte-for-byte unchanged
    root: bool = False  # needs root (mounts)


def _file_at(rel: str, text: str = "") -> Callable[[Path], None]:
    def make(wd: Path) -> None:
        p = wd / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    return make


def _latin1(rel: str, text: str) -> Callable[[Path], None]:
    """A config file saved in Latin-1, as an editor on another system might."""

    def make(wd: Path) -> None:
        p = wd / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode("latin-1"))

    return make


def _corrupt_part(wd: Path) -> None:
    (wd / "results" / "bad" / "trials" / "part-99999999999999999999-deadbeef.parquet").write_bytes(
        b"PAR1 this is not parquet at all"
    )


def _foreign_dataset(wd: Path) -> None:
    # someone else's Parquet data (no daskbench columns) in the folder results.dir names
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = wd / "elsewhere" / "trials"
    d.mkdir(parents=True)
    pq.write_table(pa.table({"price": [1.0, 2.0], "ticker": ["A", "B"]}), d / "part-0.parquet")


def _other_manifest(wd: Path) -> None:
    p = wd / "results" / "bad" / "manifest.json"
    import json

    m = json.loads(p.read_text())
    m["name"] = "someone_else"
    p.write_text(json.dumps(m))


def _corrupt_manifest(wd: Path) -> None:
    (wd / "results" / "bad" / "manifest.json").write_text('{"name": "bad", "runs": [')


def _ro_mount(wd: Path) -> None:
    """Seeded results on a tmpfs remounted read-only: root cannot write there either."""
    mnt = wd / "ro"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:  # root without CAP_SYS_ADMIN (some containers)
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    shutil.copytree(wd / "results", mnt / "results")
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)


BAD_DEPLOY = "apiVersion: kubernetes.dask.org/v1\nkind: DaskCluster\nmetadata: {name: x\nspec: [\n"

CASES: List[Case] = [
    # -- experiment configs --------------------------------------------------
    Case(
        "config-missing-name",
        ["+experiment=bad"],
        ["no `name`", "name: my_experiment"],
        yaml="trial: {_target_: badtrials.quad}\n",
    ),
    Case(
        "config-missing-target",
        ["+experiment=bad"],
        ["no trial._target_", "import path"],
        yaml="name: bad\ntrial: {x: 1}\n",
    ),
    Case(
        "config-unknown-module",
        ["+experiment=bad"],
        ["cannot import module 'nosuchmod'", "install it"],
        yaml="name: bad\ntrial: {_target_: nosuchmod.run}\n",
    ),
    Case(
        "config-unknown-function",
        ["+experiment=bad"],
        ["has no 'qaud'", "did you mean 'quad'"],
        yaml="name: bad\ntrial: {_target_: badtrials.qaud}\n",
    ),
    Case(
        "config-not-a-dotted-path",
        ["+experiment=bad"],
        ["trial._target_='quad'", "package.module.function"],
        yaml="name: bad\ntrial: {_target_: quad}\n",
    ),
    Case(
        "config-target-is-module",
        ["+experiment=bad"],
        ["trial._target_='os.path' is a module", "trial function"],
        yaml="name: bad\ntrial: {_target_: os.path}\n",
    ),
    Case(
        "config-negative-seed",
        ["+experiment=bad"],
        ["seed=-1", ">= 0"],
        yaml="name: bad\nseed: -1\ntrial: {_target_: badtrials.quad}\n",
        seeded="results",
    ),
    Case(
        "config-unknown-trial-arg",
        ["+experiment=bad"],
        ["trial.z", "has no argument 'z'", "x, seed"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad, z: 1}\n",
    ),
    Case(
        "config-unknown-top-key",
        ["+experiment=bad"],
        ["unknown top-level key 'sweeps'", "did you mean 'sweep'"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad}\nsweeps: {params: {trial.x: '1,2'}}\n",
    ),
    Case(
        "config-yaml-syntax",
        ["+experiment=bad"],
        ["bad.yaml:4:", "not valid YAML", "brace must be closed"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad, x: 0.0\n",
    ),
    Case("config-trial-is-list", ["+experiment=bad"], ["trial", "mapping"], yaml="name: bad\ntrial: [1, 2]\n"),
    Case(
        "config-seed-type",
        ["+experiment=bad"],
        ["seed", "'abc'", "integer"],
        yaml="name: bad\nseed: abc\ntrial: {_target_: badtrials.quad}\n",
    ),
    Case(
        "config-replicates-type",
        ["+experiment=bad"],
        ["sweep.replicates", "'many'", "integer"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad}\nsweep: {replicates: many}\n",
    ),
    Case(
        "config-resources-type",
        ["+experiment=bad"],
        ["resources.GPU", "'lots'", "number"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad}\nresources: {GPU: lots}\n",
    ),
    Case(
        "config-resources-negative",
        ["+experiment=bad"],
        ["resources.GPU=-1", "> 0"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad}\nresources: {GPU: -1}\n",
    ),
    Case(
        "config-priority-type",
        ["+experiment=bad"],
        ["priority", "'high'", "integer"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad}\npriority: high\n",
    ),
    Case(
        "config-retries-negative",
        ["+experiment=bad"],
        ["retries=-1", ">= 0"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad}\nretries: -1\n",
    ),
    Case(
        "config-timeout-zero",
        ["+experiment=bad"],
        ["timeout_s=0", "> 0"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad}\ntimeout_s: 0\n",
    ),
    Case(
        "config-timeout-type",
        ["+experiment=bad"],
        ["timeout_s", "'soon'", "number"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad}\ntimeout_s: soon\n",
    ),
    Case(
        "config-bad-interpolation",
        ["+experiment=bad"],
        ["trial.x: Interpolation key 'vars.nn' not found", "vars:"],
        yaml="name: bad\nvars: {n: 1.0}\ntrial: {_target_: badtrials.quad, x: '${vars.nn}'}\n",
    ),
    Case(
        "config-not-utf8",
        ["+experiment=bad"],
        ["bad.yaml: not UTF-8 text", "byte 0xe9", "save it with UTF-8"],
        setup=_latin1(
            "conf/experiment/bad.yaml", "# @package _global_\nname: bad  # café\ntrial: {_target_: badtrials.quad}\n"
        ),
    ),
    Case(
        "config-group-not-utf8",
        ["+experiment=bad"],
        ["not UTF-8 text", "byte 0xe9", "save it with UTF-8"],
        yaml="defaults:\n  - /model: small\nname: bad\ntrial: {_target_: badtrials.quad, x: '${model.x}'}\n",
        setup=_latin1("conf/model/small.yaml", "x: 1.0  # café\n"),
    ),
    Case(
        "config-timeout-nan",
        ["+experiment=bad"],
        ["timeout_s=nan", "finite number > 0", "null for no timeout"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad}\ntimeout_s: .nan\n",
    ),
    Case(
        "config-target-not-callable",
        ["+experiment=bad"],
        ["trial._target_='badtrials.Holder.value'", "'value' exists in 'badtrials.Holder'", "not callable"],
        yaml="name: bad\ntrial: {_target_: badtrials.Holder.value}\n",
    ),
    Case(
        "config-flow-style-comma",
        ["+experiment=bad"],
        ["unknown key sweep.2", "a comma ends the entry"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad}\nsweep: {params: {trial.x: 1,2}}\n",
    ),
    # -- command-line overrides ---------------------------------------------
    Case("cli-unknown-experiment", ["+experiment=nope"], ["unknown experiment 'nope'", "--config-dir"]),
    Case("cli-no-experiment", ["trial.x=1"], ["no experiment given", "+experiment=NAME"]),
    Case(
        "cli-unknown-section-key",
        ["+experiment=bad", "sweep.desing=lhs"],
        ["unknown key sweep.desing", "did you mean 'design'"],
    ),
    Case(
        "cli-unknown-runner-key",
        ["+experiment=bad", "runner.chunksize=5"],
        ["unknown key runner.chunksize", "did you mean 'chunk_size'"],
    ),
    Case("cli-unknown-trial-key", ["+experiment=bad", "trial.nope=1"], ["trial.nope", "x, seed"], seeded="results"),
    Case(
        "cli-config-dir-missing",
        ["--config-dir", "nosuch", "+experiment=bad"],
        ["--config-dir nosuch", "no such folder"],
    ),
    Case("cli-report-not-results", ["--report", "conf"], ["no results in conf", "python -m daskbench"]),
    Case(
        "cli-empty-results-dir",
        ["+experiment=bad", "results.dir="],
        ["results.dir is empty", "results.dir=results/NAME"],
    ),
    Case("cli-unknown-option", ["+experiment=bad", "--bogus"], ["unrecognized arguments: --bogus", "--help"]),
    Case(
        "cli-bad-interpolation",
        ["+experiment=bad", "results.dir=${nosuch}/r"],
        ["results.dir: Interpolation key 'nosuch' not found"],
    ),
    Case(
        "cli-bad-syntax",
        ["+experiment=bad", "trial.x=0.5,,0.9"],
        ["cannot parse 'trial.x=0.5,,0.9'", "Hydra's grammar"],
    ),
    Case("cli-bad-type", ["+experiment=bad", "retries=lots"], ["retries", "'lots'", "integer"]),
    Case("cli-bad-chunk-size", ["+experiment=bad", "runner.chunk_size=big"], ["runner.chunk_size='big'", "auto"]),
    Case(
        "cli-bad-rerun",
        ["+experiment=bad", "results.rerun=always"],
        ["results.rerun='always'", "none or changed"],
        seeded="results",
    ),
    Case("cli-sweep-experiments", ["+experiment=bad,other"], ["sweeping over experiments"]),
    Case("cli-timeout-nan", ["+experiment=bad", "timeout_s=nan"], ["timeout_s=nan", "finite number > 0"]),
    Case(
        "cli-flush-seconds-inf",
        ["+experiment=bad", "results.flush_seconds=inf"],
        ["results.flush_seconds=inf", "finite number >= 0"],
    ),
    Case(
        "cli-sweep-run-section",
        ["+experiment=bad", "runner=1,2"],
        ["cannot sweep 'runner'", "run setting", "sweep keys under trial"],
        seeded="results",
    ),
    Case(
        "cli-sweep-trial-section", ["+experiment=bad", "trial=1,2"], ["cannot sweep 'trial'", "section", "trial.x=1,2"]
    ),
    Case(
        "cli-section-set-to-value",
        ["+experiment=bad", "runner=process"],
        ["runner='process'", "section of keys", "runner.isolation=process"],
    ),
    # -- simulation settings: checked when planned, before a cluster starts ----------
    Case(
        "sim-shards-zero",
        ["+experiment=bad", "trial.shards=0"],
        ["trial.shards=0", ">= 1"],
        yaml=SIM + "      shards: null\n",
    ),
    Case(
        "sim-unknown-allocation",
        ["+experiment=bad", "+trial.allocation=round_robin,nearest"],
        ["trial.allocation='nearest'", "round_robin, community", "swept key trial.allocation"],
        yaml=SIM,
    ),
    Case(
        "sim-bad-clock",
        ["+experiment=bad", "trial.clock.tick_seconds=0"],
        ["trial.clock.tick_seconds=0", "positive"],
        yaml=SIM,
        seeded="results",
    ),
    Case(
        "sim-unknown-clock-key",
        ["+experiment=bad", "+trial.clock.speed=2"],
        ["trial.clock.speed", "tick_seconds"],
        yaml=SIM,
    ),
    Case(
        "sim-lookahead-zero",
        ["+experiment=bad", "+trial.clock.lookahead=0"],
        ["trial.clock.lookahead=0", "whole number of ticks >= 1"],
        yaml=SIM,
    ),
    Case(
        "sim-lookahead-not-whole",
        ["+experiment=bad", "+trial.clock.lookahead=1.5"],
        ["trial.clock.lookahead=1.5", "whole number of ticks >= 1"],
        yaml=SIM,
    ),
    Case(
        "sim-lookahead-no-message-delay",
        ["+experiment=bad", "+trial.clock.lookahead=2"],
        ["trial.clock.lookahead=2", "Boltzmann declares no message_delay", "clock.lookahead=1"],
        yaml=SIM,
    ),
    Case(
        "sim-unknown-model-param",
        ["+experiment=bad", "+trial.params.n_agnets=5"],
        ["n_agnets", "trial.params"],
        yaml=SIM,
    ),
    # -- sweep expressions ----------------------------------------------------
    Case(
        "sweep-empty-range",
        ["+experiment=bad", "trial.x=range(0,0)"],
        ["axis 'trial.x' is empty", "at least one value"],
    ),
    Case(
        "sweep-range-zero-step",
        ["+experiment=bad", "trial.x=range(0,10,0)"],
        ["'trial.x=range(0,10,0)'", "must not be zero", "range(0,10,2)"],
        seeded="results",
    ),
    Case("sweep-bad-range-args", ["+experiment=bad", "trial.x=range(a,b)"], ["'trial.x=range(a,b)'", "range(0,10)"]),
    Case("sweep-empty-choice", ["+experiment=bad", "trial.x=choice()"], ["'trial.x=choice()'", "empty choice"]),
    Case("sweep-unbalanced-bracket", ["+experiment=bad", "trial.x=[1,2"], ["'trial.x=[1,2'", "Hydra's grammar"]),
    Case(
        "sweep-unbalanced-paren-in-config",
        ["+experiment=bad"],
        ["'trial.x=range(0,'", "Hydra's grammar"],
        yaml="name: bad\ntrial: {_target_: badtrials.quad}\nsweep: {params: {trial.x: 'range(0,'}}\n",
    ),
    Case(
        "sweep-interval-on-grid",
        ["+experiment=bad", "trial.x=interval(0,1)"],
        ["'trial.x' is an interval", "sweep.design="],
    ),
    Case(
        "sweep-bad-interval",
        ["+experiment=bad", "sweep.design=lhs", "sweep.samples=4", "trial.x=interval(1,0)"],
        ["interval(1.0,0.0)", "lo < hi"],
        seeded="results",
    ),
    Case(
        "sweep-design-no-samples",
        ["+experiment=bad", "sweep.design=sobol", "trial.x=interval(0,1)"],
        ["sweep.design=sobol needs sweep.samples=N"],
    ),
    Case(
        "sweep-unknown-design",
        ["+experiment=bad", "sweep.design=magic"],
        ["sweep.design='magic'", "grid, random, lhs, sobol"],
    ),
    Case(
        "sweep-zip-unequal",
        ["+experiment=bad", "trial.x=1,2", "trial.seed=1,2,3", "sweep.zip=[[trial.x,trial.seed]]"],
        ["same number of values", "trial.x has 2"],
    ),
    Case("sweep-unknown-swept-key", ["+experiment=bad", "trial.xx=1,2"], ["swept key 'trial.xx'", "did you mean 'x'"]),
    # -- adaptive search (sweep.search=optuna) -------------------------------------
    Case(
        "search-unknown-sampler",
        ["+experiment=bad", *SEARCH, "sweep.sampler=annealing"],
        ["sweep.sampler='annealing' is not a sampler", "tpe, cmaes, gp, random, qmc, nsga2"],
    ),
    Case(
        "search-unknown-pruner",
        ["+experiment=bad", *SEARCH, "sweep.pruner=mean"],
        ["sweep.pruner='mean' is not a pruner", "none, median, hyperband, successive_halving"],
    ),
    Case(
        "search-unknown-search",
        ["+experiment=bad", "sweep.search=hyperopt"],
        ["sweep.search='hyperopt' is unknown", "none or optuna"],
    ),
    Case(
        "search-directions-mismatch",
        ["+experiment=bad", *SEARCH, "sweep.objective=[f,g]", "sweep.direction=[minimize,maximize,minimize]"],
        ["sweep.direction has 3 entries for 2 objectives (f, g)", "one per objective"],
    ),
    Case(
        "search-bad-direction",
        ["+experiment=bad", *SEARCH, "sweep.direction=lowest"],
        ["sweep.direction='lowest'", "minimize or maximize"],
    ),
    Case(
        "search-budget-zero",
        ["+experiment=bad", *SEARCH, "sweep.budget=0"],
        ["sweep.budget=0", "whole number >= 1"],
        seeded="results",
    ),
    Case("search-no-budget", ["+experiment=bad", "sweep.search=optuna", "sweep.objective=f"], ["needs sweep.budget=N"]),
    Case(
        "search-no-objective",
        ["+experiment=bad", "sweep.search=optuna", "sweep.budget=3"],
        ["needs sweep.objective=METRIC"],
    ),
    Case(
        "search-nothing-to-tune",
        ["+experiment=bad", *SEARCH, "trial.x=0.5"],
        ["nothing to tune", "trial.x=interval(0,1)"],
        seeded="results",
    ),
    Case(
        "search-with-design",
        ["+experiment=bad", *SEARCH, "sweep.design=lhs", "sweep.samples=4"],
        ["sweep.design=lhs and sweep.search=optuna", "use one of them"],
    ),
    Case(
        "search-log-nonpositive",
        ["+experiment=bad", *SEARCH, "trial.x=tag(log,interval(0,1))"],
        ["tag(log, interval(0.0,1.0)) needs lo > 0"],
    ),
    Case(
        "search-pruner-multi",
        ["+experiment=bad", *SEARCH, "sweep.objective=[f,g]", "sweep.pruner=median"],
        ["cannot prune a multi-objective study", "sweep.pruner=none"],
    ),
    # -- results folders --------------------------------------------------------
    Case(
        "results-dir-is-file",
        ["+experiment=bad", "results.dir=afile"],
        ["cannot write results to afile", "results.dir=PATH"],
        setup=_file_at("afile", "not a folder"),
        results="afile",
    ),
    Case(
        "results-dir-under-file",
        ["+experiment=bad", "results.dir=afile/x"],
        ["afile/x", "results.dir=PATH"],
        setup=_file_at("afile", "not a folder"),
        results="afile",
    ),
    Case(
        "results-read-only",
        ["+experiment=bad", "results.dir=ro/results/bad"],
        ["ro/results/bad", "Read-only file system", "results.dir=PATH"],
        seeded="results",
        setup=_ro_mount,
        results="ro",
        root=True,
    ),
    Case(
        "results-corrupt-part",
        ["+experiment=bad"],
        ["part-99999999999999999999-deadbeef.parquet", "not a Parquet", "results.dir"],
        seeded="results",
        setup=_corrupt_part,
    ),
    Case(
        "results-foreign-dataset",
        ["+experiment=bad", "results.dir=elsewhere"],
        ["elsewhere", "trial_id", "results.dir"],
        setup=_foreign_dataset,
        results="elsewhere",
    ),
    Case(
        "results-other-experiment",
        ["+experiment=bad"],
        ["someone_else", "results.dir"],
        seeded="results",
        setup=_other_manifest,
    ),
    Case(
        "results-corrupt-manifest",
        ["+experiment=bad"],
        ["manifest.json", "not valid JSON", "results.dir"],
        seeded="results",
        setup=_corrupt_manifest,
    ),
    # -- cluster settings ---------------------------------------------------------
    Case(
        "cluster-unknown-group", ["+experiment=bad", "cluster=nowhere"], ["unknown cluster 'nowhere'", "cluster=local"]
    ),
    Case("cluster-bad-kind", ["+experiment=bad", "cluster.kind=weird"], ["cluster.kind='weird'", "cluster=address"]),
    Case("cluster-address-missing", ["+experiment=bad", "cluster=address"], ["cluster.address=tcp://HOST:8786"]),
    Case(
        "cluster-bad-address",
        ["+experiment=bad", "cluster=address", "cluster.address=notanaddress"],
        ["cluster.address=notanaddress", "tcp://HOST:8786"],
    ),
    Case(
        "cluster-unreachable",
        ["+experiment=bad", "cluster=address", "cluster.address=tcp://127.0.0.1:9", "cluster.timeout_s=2"],
        ["tcp://127.0.0.1:9", "dask scheduler"],
        code=3,
        seeded="results",
    ),
    Case(
        "cluster-unknown-security",
        ["+experiment=bad", "cluster.security.mode=magic"],
        ["cluster.security.mode='magic'", "none, temporary or files"],
    ),
    Case(
        "cluster-missing-certs",
        [
            "+experiment=bad",
            "cluster=address",
            "cluster.address=tls://127.0.0.1:9",
            "cluster.security.mode=files",
            "cluster.security.ca_file=ca.pem",
            "cluster.security.cert_file=cert.pem",
            "cluster.security.key_file=key.pem",
        ],
        ["cluster.security.ca_file=ca.pem", "no such file"],
        seeded="results",
    ),
    Case("cluster-zero-workers", ["+experiment=bad", "cluster.n_workers=0"], ["cluster.n_workers=0", ">= 1"]),
    Case("cluster-negative-workers", ["+experiment=bad", "cluster.n_workers=-2"], ["cluster.n_workers=-2", ">= 1"]),
    Case(
        "cluster-key-of-other-kind",
        ["+experiment=bad", "cluster=address", "cluster.address=tcp://127.0.0.1:9", "cluster.n_workers=2"],
        ["unknown key cluster.n_workers", "cluster=address", "timeout_s"],
    ),
    Case(
        "cluster-bad-memory-limit",
        ["+experiment=bad", "cluster.memory_limit=lots"],
        ["cluster.memory_limit=lots", "4GB"],
        seeded="results",
    ),
    Case(
        "cluster-zero-threads",
        ["+experiment=bad", "cluster.threads_per_worker=0"],
        ["cluster.threads_per_worker=0", ">= 1"],
    ),
    # -- manifests ------------------------------------------------------------------
    Case(
        "deploy-manifest-corrupt",
        ["+experiment=bad", "cluster=kubernetes", "cluster.manifest=deploy.yaml"],
        ["deploy.yaml", "not valid YAML"],
        setup=_file_at("deploy.yaml", BAD_DEPLOY),
    ),
    Case(
        "deploy-manifest-missing",
        ["+experiment=bad", "cluster=kubernetes", "cluster.manifest=nosuch.yaml"],
        ["cluster.manifest=nosuch.yaml", "no such file"],
        seeded="results",
    ),
    Case(
        "deploy-manifest-wrong-kind",
        ["+experiment=bad", "cluster=kubernetes", "cluster.manifest=deploy.yaml"],
        ["deploy.yaml", "DaskCluster"],
        setup=_file_at("deploy.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"),
    ),
]


def _snapshot(path: Path) -> Dict[str, str]:
    """Every file's bytes (hashed) and every folder under ``path``; {} if absent."""
    if not path.exists() and not path.is_symlink():
        return {}
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


def _workdir(tmp: Path, case: Case) -> Path:
    wd = tmp / "wd"
    wd.mkdir()
    (wd / "badtrials.py").write_text(TRIALS)
    conf = wd / "conf"
    (conf / "experiment").mkdir(parents=True)
    write_experiment(conf, "other", GOOD.replace("name: bad", "name: other"))
    if case.yaml is not None:
        write_experiment(conf, "bad", textwrap.dedent(case.yaml))
    return wd


@pytest.fixture(scope="module")
def seeded_results(tmp_path_factory) -> Path:
    """A real earlier run's results folder (results/bad), to copy into cases."""
    wd = tmp_path_factory.mktemp("seed")
    (wd / "badtrials.py").write_text(TRIALS)
    write_experiment(wd / "conf", "bad", GOOD)
    r = run_cli(cli_args(["+experiment=bad"]), cwd=wd)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert len(pd.read_parquet(wd / "results" / "bad" / "trials")) == 2
    return wd / "results"


def _unmount_all(wd: Path) -> None:
    for m in sorted((p for p in wd.iterdir() if p.is_dir() and os.path.ismount(p)), reverse=True):
        subprocess.run(["umount", "-l", str(m)], check=False)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(tmp_path, case, request):
    if case.root and os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only tmpfs (root ignores file modes)")
    wd = _workdir(tmp_path, case)
    request.addfinalizer(lambda: _unmount_all(wd))
    if case.seeded:
        shutil.copytree(request.getfixturevalue("seeded_results"), wd / case.seeded)
    if case.setup:
        case.setup(wd)
    watched = wd / case.results
    before = _snapshot(watched)
    if case.seeded:
        assert before, "the seeded results folder should not be empty"
    r = run_cli(cli_args(case.args), cwd=wd, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == case.code, out
    assert "Traceback (most recent call last)" not in out
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("daskbench: error: "), r.stderr
    for needle in case.needles:
        assert needle in errors[0], (needle, errors[0])
    if case.code == 2:  # a usage error is found before anything runs: no cluster, no trial count
        assert r.stdout.strip() == "", r.stdout
    assert _snapshot(watched) == before, f"{watched} changed"


# -- trial return values: per-trial failures, recorded, the sweep goes on -----------

RETURN_CASES = {
    "list": ["trial returned list [1, 2]", "return a mapping of metric name to scalar"],
    "nonscalar": ["metric 'v' is list", "metrics must be scalars"],
    "reserved": ["metric 'status' clashes with a column daskbench writes", "rename it"],
    "table_named_trials": ["table 'trials'", "name tables with"],
    "none": ["trial returned NoneType", "return a mapping"],
}


@pytest.fixture(scope="module")
def returns_run(tmp_path_factory):
    """One real sweep over every bad return kind, plus a good trial."""
    wd = tmp_path_factory.mktemp("returns")
    (wd / "badtrials.py").write_text(TRIALS)
    kinds = ",".join(["ok", *RETURN_CASES])
    write_experiment(
        wd / "conf",
        "ret",
        f"""
        name: ret
        trial: {{_target_: badtrials.returns}}
        sweep: {{params: {{trial.kind: '{kinds}'}}}}
    """,
    )
    r = run_cli(cli_args(["+experiment=ret"]), cwd=wd)
    return r, pd.read_parquet(wd / "results" / "ret" / "trials")


@pytest.mark.parametrize("kind", list(RETURN_CASES), ids=[f"return-{k}" for k in RETURN_CASES])
def test_bad_trial_return(returns_run, kind):
    r, df = returns_run
    out = r.stdout + r.stderr
    assert r.returncode == 1, out  # some trial failed; not a usage error
    assert "Traceback (most recent call last)" not in out
    assert len(df) == len(RETURN_CASES) + 1 and df.trial_id.is_unique
    assert (df.loc[df["trial.kind"] == "ok", "status"] == "ok").all()  # the sweep went on
    row = df[df["trial.kind"] == kind].iloc[0]
    assert row.status == "failed"
    for needle in RETURN_CASES[kind]:
        assert needle in row.error, (needle, row.error)
    assert row.traceback and "Traceback" in row.traceback  # kept in the table, not printed
