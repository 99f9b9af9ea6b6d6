"""The Optuna study of an adaptive search, kept in the results folder beside ``trials/``.

``results/<name>/study.journal`` is Optuna's journal storage (one JSON line per
change, appended and flushed as it happens), so the study survives Ctrl-C or a
SIGKILL of the driver and the same command continues it. It is a file, not a
folder: the folders of a results folder are datasets. The study records its
search space, objectives and directions (study user attributes) so a resumed run
with another space is refused before anything runs, never mixed in.

This is the one module that opens the storage; :mod:`daskbench.runner.adaptive`
asks and tells through the study it returns.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Dict, Generator, List, Optional, Tuple

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from ..errors import ResultsError

STUDY_FILE = "study.journal"
#: study user attributes daskbench sets when it creates a study
SPACE_ATTR, OBJECTIVES_ATTR = "daskbench.space", "daskbench.objectives"
#: numbers of the Optuna trials that were in flight when a run stopped: failed in
#: the study (Optuna has no other way to close them) but not counted in the budget
REQUEUED_ATTR = "daskbench.requeued"


def study_path(results_dir: Path) -> Path:
    return Path(results_dir) / STUDY_FILE


class _Journal(JournalFileBackend):
    """Optuna's journal file, for the one driver that writes it.

    Optuna's own backend takes a file lock, appends and fsyncs on every change, and
    re-reads the file before every read: ~5 changes and ~16 reads per trial cost
    2-15 ms, past the driver's budget of 1 ms per trial. One driver runs a results
    folder at a time (the trials table assumes it too), so this backend reads the
    file once, keeps its lines in memory, and appends each change without a lock
    or an fsync. A line written reaches the operating system at once, so it
    survives the driver being stopped or killed (and no lock is left behind by a
    SIGKILL); after a machine crash a lost tail is rebuilt from the trials table,
    whose parts are synced (:meth:`AdaptiveSource.reconcile`).
    """

    def __init__(self, file_path: str):
        super().__init__(file_path)
        self._lines: Optional[List[Dict[str, Any]]] = None
        self._out: Optional[BinaryIO] = None

    def read_logs(self, log_number_from: int) -> Generator[Dict[str, Any], None, None]:
        if self._lines is None:
            self._lines = list(super().read_logs(0))
        yield from self._lines[log_number_from:]

    def append_logs(self, logs: List[Dict[str, Any]]) -> None:
        texts = [json.dumps(log, separators=(",", ":")) for log in logs]
        if self._out is None:  # kept open: the run appends a few lines per trial
            self._out = open(self._file_path, "ab")  # noqa: SIM115
        self._out.write(("\n".join(texts) + "\n").encode("utf-8"))
        self._out.flush()  # to the operating system now: a killed driver loses nothing
        if self._lines is not None:  # as a reader of the file would see them
            self._lines.extend(json.loads(t) for t in texts)


def _storage(path: Path) -> JournalStorage:
    return JournalStorage(_Journal(str(path)))


def _load(path: Path, name: str) -> Optional[optuna.Study]:
    """The stored study, or None if the file holds none of that name. Reads only."""
    try:
        storage = _storage(path)
        names = [s.study_name for s in storage.get_all_studies()]
        if name not in names:
            return None
        return optuna.load_study(study_name=name, storage=storage)
    except (ValueError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(
            f"{path} is not an Optuna journal daskbench can read ({type(exc).__name__}: {exc}); "
            "move it away or set results.dir=PATH"
        ) from None


def read_all(path: Path) -> List[optuna.Study]:
    """Every study in a journal file (reads only)."""
    storage = _storage(path)
    return [optuna.load_study(study_name=s.study_name, storage=storage) for s in storage.get_all_studies()]


def stored_search(results_dir: Path, name: str) -> Optional[Tuple[Dict[str, str], List[str], List[str]]]:
    """The search space, objectives and directions a stored study was run with, or None
    if there is none yet. Reads only: called before a cluster starts."""
    path = study_path(results_dir)
    if not path.is_file():
        return None
    study = _load(path, name)
    if study is None:
        return None
    attrs = study.user_attrs
    return (
        dict(attrs.get(SPACE_ATTR) or {}),
        list(attrs.get(OBJECTIVES_ATTR) or []),
        [d.name.lower() for d in study.directions],
    )


def make_sampler(search: Any) -> optuna.samplers.BaseSampler:
    """The sampler named by ``sweep.sampler`` (``search``: a sweep.search.Search), seeded from the root seed."""
    s, seed = search.sampler, search.seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if s == "tpe":
            # constant liar: points still running count as bad ones, so asks made while others
            # run spread out instead of piling onto the same spot
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        if s == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed)
        if s == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if s == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if s == "qmc":
            return optuna.samplers.QMCSampler(seed=seed)
        return optuna.samplers.NSGAIISampler(seed=seed)


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """The pruner named by ``sweep.pruner``."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def open_study(results_dir: Path, name: str, search: Any, space: Dict[str, str]) -> optuna.Study:
    """The study of this experiment (``search``: a sweep.search.Search), created on the
    first run and loaded after (writes)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial would drown the progress line
    path = study_path(results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=_storage(path),
            load_if_exists=True,
            directions=list(search.directions),
            sampler=make_sampler(search),
            pruner=make_pruner(search.pruner),
        )
    except OSError as exc:
        raise ResultsError(
            f"cannot write the study to {path}: {exc.strerror or exc}; free space there or set results.dir=PATH"
        ) from None
    if SPACE_ATTR not in study.user_attrs:
        study.set_user_attr(SPACE_ATTR, space)
        study.set_user_attr(OBJECTIVES_ATTR, list(search.objectives))
    return study


def discard(study: optuna.Study) -> None:
    """Delete a study this run created and told nothing (a config mistake found in the
    first results): the next run starts a new one, with whatever was fixed."""
    optuna.delete_study(study_name=study.study_name, storage=study._storage)


def requeued(study: optuna.Study) -> List[int]:
    """Numbers of the trials closed because their run stopped (not counted in the budget)."""
    return [int(n) for n in study.user_attrs.get(REQUEUED_ATTR, [])]


def mark_requeued(study: optuna.Study, numbers: List[int]) -> None:
    study.set_user_attr(REQUEUED_ATTR, sorted(set(requeued(study)) | set(numbers)))


def summary(study: optuna.Study) -> Dict[str, Any]:
    """Best trial (one objective) or Pareto front (several), for the summary and report."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return {"best": [], "complete": 0}
    best = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    return {
        "complete": len(done),
        "best": [{"number": t.number, "values": list(t.values or []), "params": dict(t.params)} for t in best],
    }


def known_objectives(trials: Any, objectives: List[str]) -> Dict[str, Tuple[float, ...]]:
    """trial id -> objectives of the ``ok`` rows of a trials table (a ``pyarrow.Table``)."""
    names = set(trials.column_names)
    if not {"trial_id", "status", *objectives} <= names:
        return {}
    out: Dict[str, Tuple[float, ...]] = {}
    for r in trials.select(["trial_id", "status", *objectives]).to_pylist():
        vals = [r[o] for o in objectives]
        if r["status"] == "ok" and all(isinstance(v, (int, float)) for v in vals):
            out[r["trial_id"]] = tuple(float(v) for v in vals)
    return out
