"""The Python API: run a sweep from a script or a notebook, and load its results."""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, AbstractSet, Any, Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:  # pandas costs ~0.4 s to import; only load() and to_xarray() need it
    import pandas as pd

from .cluster.create import prepare
from .cluster.dashboard import dashboard_link
from .cluster.early import ClusterStart
from .config.compose import RunPlan, build_plan
from .config.schema import LocalClusterConfig
from .errors import ObjectiveMissing, ResultsError
from .observe.progress import Counts, make_progress
from .observe.report_background import BackgroundReport
from .observe.report_background import start as start_report
from .results import codeversion, manifest
from .results.dataset import Dataset
from .results.store import ResultStore
from .runner.driver import Runner, RunOutcome
from .runner.spec import make_spec
from .startup_gc import frozen_for_run
from .startup_gc import resume as resume_gc


@dataclass
class RunResult:
    """Outcome of :func:`run`: counts, where the results are, and the exit status."""

    name: str
    path: Path
    counts: Counts
    outcome: RunOutcome
    resume_command: str
    duration_s: float
    #: the report: its page (written before ``run`` returned), or the process drawing it
    #: (``background_report``); None when ``results.report`` is false, no trial ran, or it failed
    report: Union[Path, BackgroundReport, None] = None

    def wait_report(self, timeout: Optional[float] = 120.0) -> Path:
        """The report's page once it is written (``run`` returns while a background report is
        still drawing); :class:`ResultsError` if there is none or it could not be written."""
        if self.report is None:
            raise ResultsError(
                f"{self.name}: this run wrote no report (results.report=false, no trial ran, or it failed: "
                f"see the run's output); write it with: python -m daskbench --report {self.path}"
            )
        return self.report if isinstance(self.report, Path) else self.report.wait(timeout)

    @property
    def exit_code(self) -> int:
        if self.outcome.interrupted:
            return 130
        return 1 if (self.counts.bad or self.outcome.stopped_early) else 0

    def load(self, dataset: str = "trials") -> pd.DataFrame:
        return load(self.path, dataset)


def run(
    experiment: Optional[str] = None,
    overrides: Sequence[str] = (),
    *,
    client: Any = None,
    config_dir: Optional[str] = None,
    progress: Optional[str] = None,
    echo: Callable[[str], None] = print,
    background_report: bool = True,
) -> RunResult:
    """Run (or resume) the sweep of ``experiment`` with Hydra-style ``overrides``.

    With ``client=None`` a cluster is made from the ``cluster`` config group (a
    LocalCluster by default, started while the rest of the config is checked) and
    closed afterwards; pass an existing ``distributed.Client`` to run on it. Trials
    already ``ok`` on disk are skipped. The report (``results.report``) is drawn by a
    process of its own and ``run`` returns without waiting for it, as the command line
    does: plotting costs 1-2.5 s, more than a small sweep (``RunResult.wait_report()``
    waits for the page); ``background_report=False`` draws it before returning.
    """
    with ClusterStart(client) as start:  # a mistake found below closes a cluster started early
        reading = codeversion.Reading()  # git, in a thread while the run gets ready

        def on_cluster(cluster: Any) -> None:
            start.begin(cluster)
            # no thread of ours while this process forks its workers (cluster.start_method=fork)
            reading.in_thread = not (client is None and _forks_driver(cluster))

        rp = build_plan(experiment, list(overrides), config_dir, on_cluster=on_cluster, on_target=reading.start)
        if client is None and not isinstance(rp.cluster, LocalClusterConfig):
            # the driver's folders mean nothing on other hosts: code is shipped instead
            rp.sys_path = []
        target = make_target(rp)

        def code() -> codeversion.CodeVersion:
            return reading.get(target)

        store, done, redo, code_notice = _open_store(rp, code)
        counts = Counts()
        run_info = _run_info(rp, overrides)
        t0 = time.monotonic()
        with _undone_if_objective_missing(rp):  # a search's config mistake found in its first results
            outcome = _sweep(start, rp, store, (run_info, code), counts, (done, redo), code_notice, progress, echo)
    cfg = rp.cfg
    report = _write_report(rp.results_dir, echo, background_report) if cfg.results.report and counts.done else None
    resume = _resume_command(experiment, overrides, config_dir)
    return RunResult(cfg.name, rp.results_dir, counts, outcome, resume, time.monotonic() - t0, report)


def _forks_driver(cluster: Any) -> bool:
    """Whether the run's own cluster forks this process for its workers."""
    return isinstance(cluster, LocalClusterConfig) and cluster.start_method == "fork"


def _sweep(
    start: ClusterStart,
    rp: RunPlan,
    store: ResultStore,
    run: Tuple[Dict[str, Any], Callable[[], codeversion.CodeVersion]],
    counts: Counts,
    resume: Tuple[AbstractSet[str], AbstractSet[str]],
    code_notice: Optional[str],
    progress: Optional[str],
    echo: Callable[[str], None],
) -> RunOutcome:
    """Ready the cluster, record the run, run its trials; the manifest says how it ended."""
    cfg = rp.cfg
    run_info, code = run  # the manifest entry, and the code version it waits for
    done, redo = resume  # ids already ok; of those, the ones to run again (other code made them)
    outcome = None
    recorded = False
    try:
        with start.client(rp.cluster) as cl:
            _prepare(cl, rp, own=start.own, echo=echo)
            version = code()  # read while the cluster got ready: every row and the manifest name it
            store.code_version = version.label
            run_info["code"] = version.as_dict()
            # the first write: only once the cluster is up and can run trials
            store.record_run(dict(run_info, outcome="running"), rp.config_yaml, cfg.name)
            recorded = True
            echo(f"{cfg.name}: {len(rp.plan)} trials, {len(done)} already ok in {rp.results_dir}")
            if code_notice:
                echo(code_notice)
            resume_gc()  # the command line paused it for its start-up (startup_gc): on before the trials
            counts.started = time.monotonic()
            counts.total = len(rp.plan)
            bar = make_progress(progress or cfg.runner.progress, counts, cfg.name, cfg.runner.progress_interval_s)
            src = _adaptive_source(rp, echo)
            runner = Runner(cl, rp, store, counts, bar, run_id=run_info["id"], echo=echo, source=src)
            with frozen_for_run():  # a script's or a notebook's heap is not rescanned while trials run
                outcome = runner.run(done - redo)
            return outcome
    finally:
        if recorded and store.broken is None:  # a broken store has said why already
            _record_end(store, rp, run_info, outcome, counts)


def _run_info(rp: RunPlan, overrides: Sequence[str]) -> Dict[str, Any]:
    """The run's manifest entry as it starts: its id, when, how it was asked for (its code
    is added once read: ``_sweep``)."""
    return {
        "id": uuid.uuid4().hex[:12],
        "started_at": _now(),
        "argv": list(sys.argv),
        "overrides": list(overrides),
        "axes": [a.key for a in rp.plan.axes],
    }


def _prepare(cl: Any, rp: RunPlan, own: bool, echo: Callable[[str], None]) -> None:
    """Say where the dashboard is and ready the cluster for the run: on a cluster made
    for it (``own``) its full setup, on the user's own client plugins and resources only."""
    # the scheduler's id: what this process already knows of it (its dashboard, its plugins)
    # is kept by id, so a process running sweep after sweep on one client asks once
    sid = str(cl.scheduler_info(n_workers=0).get("id") or "") or None
    link = dashboard_link(cl, sid)  # None: the scheduler serves no dashboard (only /metrics)
    if link:
        echo(f"Dask dashboard: {link}")
    if not own:  # the user's own client: plugins and resources only
        prepare(cl, None, "", dict(rp.cfg.resources), echo, scheduler_id=sid)
    else:
        prepare(cl, rp.cluster, make_target(rp), dict(rp.cfg.resources), echo, scheduler_id=sid)


def _adaptive_source(rp: RunPlan, echo: Callable[[str], None]) -> Any:
    """The study as the source of trials (None without a search); writes: the cluster is up."""
    if rp.plan.search is None:
        return None
    from .runner import adaptive  # Optuna is imported by a search only (an optional extra)

    return adaptive.open_source(rp, echo)


@contextlib.contextmanager
def _undone_if_objective_missing(rp: RunPlan) -> Iterator[None]:
    """A search whose first results lack its objective leaves its results folder as it found it."""
    if rp.plan.search is None:
        yield
        return
    from .results.study import STUDY_FILE
    from .results.undo import Undo

    undo = Undo(rp.results_dir, keep=(manifest.FILE, STUDY_FILE))  # before the run's first write
    try:
        yield
    except ObjectiveMissing:
        undo.restore()
        raise


def _record_end(
    store: ResultStore, rp: RunPlan, run_info: Dict[str, Any], outcome: Optional[RunOutcome], counts: Counts
) -> None:
    """The run's final manifest entry: how it ended and its counts."""
    state = (
        "interrupted"
        if outcome is None or outcome.interrupted
        else ("stopped" if outcome.stopped_early else "finished")
    )
    store.record_run(
        dict(
            run_info,
            outcome=state,
            ended_at=_now(),
            counts={
                "total": counts.total,
                "skipped": counts.skipped,
                "ok": counts.ok,
                "failed": counts.failed,
                "timeout": counts.timeout,
                "cancelled": counts.cancelled,
            },
        ),
        rp.config_yaml,
        rp.cfg.name,
    )


def _open_store(
    rp: RunPlan, code: Callable[[], codeversion.CodeVersion]
) -> Tuple[ResultStore, AbstractSet[str], AbstractSet[str], Optional[str]]:
    """The results store, opened to resume: (store, ids already ok, ok ids to run again
    because other code made them, the line that says so). Reads only: a bad results
    folder fails here, before a cluster starts. The code version is waited for here only
    if the folder holds ok rows to compare it with (else before the first write: ``_sweep``)."""
    cfg = rp.cfg
    store = ResultStore(
        rp.results_dir,
        cfg.results.flush_rows,
        cfg.results.flush_seconds,
        cfg.results.compact_parts,
        first_columns=[a.key for a in rp.plan.axes],
    )
    done = store.open_for_resume(cfg.name)
    redo: AbstractSet[str] = set()
    notice = None
    if done:
        version = code()
        store.code_version = version.label
        redo, notice = codeversion.on_resume(store, version, rerun=cfg.results.rerun == "changed")
    if rp.plan.search is not None:
        from .runner import adaptive

        adaptive.check_resume(rp)  # a stored study of another search space is refused here
    return store, done, redo, notice


def _write_report(
    results_dir: Path, echo: Callable[[str], None], background: bool
) -> Union[Path, BackgroundReport, None]:
    """Plots and tables next to the results; a report problem never fails the run."""
    try:
        if background:
            job = start_report(results_dir)
            echo(f"report: {job.page} (being written in the background; its log: {job.log})")
            return job
        from .observe.report import write_report

        page = write_report(results_dir)
        echo(f"report: {page}")
        return page
    except Exception as exc:  # the results are safe on disk whatever happens here
        echo(f"report: not written ({type(exc).__name__}: {exc})")
        return None


def make_target(rp: RunPlan) -> str:
    """The import path of the experiment's trial function."""
    return make_spec(rp).target


def plan(experiment: Optional[str] = None, overrides: Sequence[str] = (), config_dir: Optional[str] = None) -> RunPlan:
    """Compose and check an experiment without running it (``--dry-run``)."""
    return build_plan(experiment, list(overrides), config_dir)


def _resume_command(experiment: Optional[str], overrides: Sequence[str], config_dir: Optional[str]) -> str:
    words = ["python", "-m", "daskbench"]
    if config_dir:
        words += ["--config-dir", config_dir]
    if experiment:
        words.append(f"+experiment={experiment}")
    words += list(overrides)
    return " ".join(shlex.quote(w) for w in words)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _dataset_dir(path: Union[str, Path], dataset: str) -> Path:
    p = Path(path)
    if (p / dataset).is_dir():
        return p / dataset
    if p.name == dataset and p.is_dir():
        return p
    raise ResultsError(
        f"no {dataset!r} results under {p}; run `python -m daskbench +experiment=NAME` first, "
        "or pass the folder that holds trials/ (e.g. results/NAME)"
    )


def load(path: Union[str, Path], dataset: str = "trials") -> pd.DataFrame:
    """Load a results dataset (``trials``, ``steps``, ...) as a pandas DataFrame.

    ``path`` is an experiment's results folder (``results/NAME``) or the dataset
    folder itself. The swept keys are kept in ``df.attrs['daskbench_dims']``.
    """
    folder = _dataset_dir(path, dataset)
    df = Dataset(folder, writer=False).read().to_pandas()
    df.attrs["daskbench_dims"] = manifest.axes(folder.parent)
    return df


def to_xarray(
    data: Union[str, Path, pd.DataFrame], dims: Optional[Sequence[str]] = None, metrics: Optional[Sequence[str]] = None
):
    """The ``ok`` trials as an ``xarray.Dataset``: one dimension per swept key (plus
    ``replicate`` when there are several), one variable per numeric metric."""
    import pandas as pd

    df = data if isinstance(data, pd.DataFrame) else load(data)
    dims = list(dims or df.attrs.get("daskbench_dims") or [])
    if not dims:
        raise ResultsError("cannot tell the swept keys; pass dims=[...] (e.g. ['trial.rho'])")
    missing = [d for d in dims if d not in df.columns]
    if missing:
        raise ResultsError(f"dims {missing} are not columns of the table; columns: {list(df.columns)}")
    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    if "replicate" in ok.columns and ok["replicate"].nunique() > 1 and "replicate" not in dims:
        dims.append("replicate")
    from .results.row import RESERVED

    if metrics is None:
        metrics = [
            c for c in ok.columns if c not in dims and c not in RESERVED and pd.api.types.is_numeric_dtype(ok[c])
        ]
    table = ok[dims + list(metrics)].groupby(dims, dropna=False).last()
    return table.to_xarray()
