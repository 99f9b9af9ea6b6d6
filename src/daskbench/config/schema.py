"""Typed configuration sections, validated where the config enters.

The experiment config is free in two places only: ``trial`` (the keyword
arguments of the trial function, checked against its signature) and the
config groups a user adds (e.g. ``model``). Everything else is one of the
dataclasses below, so a misspelled key fails before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

#: values of ``runner.isolation``
ISOLATION = ("auto", "thread", "process")
#: values of ``results.rerun`` (see daskbench.results.codeversion)
RERUN = ("none", "changed")


@dataclass
class SweepConfig:
    """How the trials of an experiment are generated.

    params: dotted key -> Hydra sweep expression (``a,b``, ``range(0,10)``,
        ``choice(x,y)``, ``interval(lo,hi)`` for sampled designs).
    zip: groups of keys whose axes move together instead of being crossed.
    design: ``grid`` (cartesian product) or a sampling design over the
        ``interval`` axes: ``random``, ``lhs`` (Latin hypercube), ``sobol``.
    samples: number of points a sampling design draws.
    replicates: runs per point, each with its own seed spawned from ``seed``.
    search: ``none`` (the trials are fixed before the run) or ``optuna``
        (adaptive: each point is asked from an Optuna study as a slot frees;
        see :mod:`daskbench.sweep.search`). With it: ``sampler``, ``budget``
        (Optuna trials to run in all), ``objective`` (a metric, or a list),
        ``direction`` (``minimize``/``maximize``, or a list) and ``pruner``.
    """

    params: Dict[str, Any] = field(default_factory=dict)
    zip: List[List[str]] = field(default_factory=list)
    design: str = "grid"
    samples: Optional[int] = None
    replicates: int = 1
    search: str = "none"
    sampler: str = "tpe"
    budget: Optional[int] = None
    objective: Any = None
    direction: Any = "minimize"
    pruner: str = "none"


@dataclass
class ResultsConfig:
    """Where and how results are written."""

    dir: str = "results/${name}"
    flush_rows: int = 10_000
    flush_seconds: float = 10.0
    compact_parts: int = 64
    report: bool = True  # write report/report.html (plots, failures, timings) after each run
    rerun: str = "none"  # changed: run again the ok trials whose rows were made by other code


@dataclass
class RunnerConfig:
    """How trials are turned into Dask futures.

    chunk_size: ``auto`` batches short trials so that one task lasts about
        ``target_chunk_seconds``; an integer fixes the trials per task.
    max_in_flight: tasks submitted and not yet collected (default: 4 per
        worker thread).
    progress: ``auto`` (a bar on a terminal, plain lines otherwise),
        ``bar``, ``plain`` or ``none``.
    isolation: where a trial runs: ``thread`` (in the worker's thread; a
        ``timeout_s`` cannot stop it), ``process`` (a child process, killed at
        ``timeout_s``), ``auto`` (``process`` when ``timeout_s`` is set).
    crash_retries: a trial whose worker dies is rerun alone in a task, then
        alone in a child process capped at the worker's memory limit; if
        workers still die under it this many more times it is recorded
        ``failed`` (KilledWorker).
    """

    chunk_size: Any = "auto"
    target_chunk_seconds: float = 0.5
    max_chunk_size: int = 1000
    max_in_flight: Optional[int] = None
    progress: str = "auto"
    progress_interval_s: float = 5.0
    isolation: str = "auto"
    crash_retries: int = 2


@dataclass
class SecurityConfig:
    """TLS between the driver, scheduler and workers.

    mode: ``none``; ``temporary`` (self-signed certificates made for one run,
        LocalCluster only); ``files`` (``ca_file``, ``cert_file``, ``key_file``).
    """

    mode: str = "none"
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None


@dataclass
class AdaptConfig:
    """Adaptive scaling between ``minimum`` and ``maximum`` workers (off when maximum is 0)."""

    minimum: int = 0
    maximum: int = 0


@dataclass
class LocalClusterConfig:
    """An embedded ``distributed.LocalCluster``."""

    kind: str = "local"
    n_workers: Optional[int] = None
    threads_per_worker: int = 1
    processes: bool = True
    memory_limit: str = "auto"
    resources: Dict[str, float] = field(default_factory=dict)
    host: str = "127.0.0.1"
    dashboard_address: Optional[str] = "127.0.0.1:8787"  # null: no dashboard
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    resource_wait_s: float = 60.0  # adaptive only: how long to wait for a worker with `resources`


@dataclass
class AddressClusterConfig:
    """A running scheduler started by the user (``dask scheduler``)."""

    kind: str = "address"
    address: str = "???"
    timeout_s: float = 30.0
    security: SecurityConfig = field(default_factory=SecurityConfig)
    upload_code: bool = True  # ship experiments/ and the trial module's folder to the workers
    resource_wait_s: float = 0.0  # >0: wait this long for a worker with `resources` to join


@dataclass
class KubernetesClusterConfig:
    """A ``DaskCluster`` run by the dask-kubernetes operator (``pip install daskbench[kubernetes]``).

    The cluster is built from ``manifest`` (a DaskCluster document, default the
    shipped ``deploy/daskcluster.yaml``) with the values below laid over it.
    """

    kind: str = "kubernetes"
    name: str = "daskbench"
    namespace: Optional[str] = None
    manifest: Optional[str] = None  # None: the shipped deploy/daskcluster.yaml
    image: Optional[str] = None  # None: the manifest's image
    n_workers: Optional[int] = None  # None: the manifest's replicas
    env: Dict[str, str] = field(default_factory=dict)
    adapt: AdaptConfig = field(default_factory=lambda: AdaptConfig(minimum=1, maximum=10))
    resource_wait_s: float = 600.0
    shutdown_on_close: bool = True


CLUSTER_SCHEMAS = {"local": LocalClusterConfig, "address": AddressClusterConfig,
                   "kubernetes": KubernetesClusterConfig}


@dataclass
class ExperimentConfig:
    """The top level of a composed experiment config (sections above nested)."""

    name: str = "???"
    seed: int = 0
    trial: Dict[str, Any] = field(default_factory=dict)
    vars: Dict[str, Any] = field(default_factory=dict)  # the user's own values, for ${vars.x}
    sweep: SweepConfig = field(default_factory=SweepConfig)
    results: ResultsConfig = field(default_factory=ResultsConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    cluster: Dict[str, Any] = field(default_factory=dict)
    resources: Dict[str, float] = field(default_factory=dict)
    priority: int = 0
    retries: int = 0
    timeout_s: Optional[float] = None
    max_failures: Optional[int] = None


def check_values(cfg: ExperimentConfig) -> List[str]:
    """Range checks the types cannot express; returns one message per bad value."""
    bad: List[str] = []
    r = cfg.runner
    if not (str(r.chunk_size) == "auto" or (str(r.chunk_size).isdigit() and int(r.chunk_size) >= 1)):
        bad.append(f"runner.chunk_size={r.chunk_size!r}: use auto or a whole number >= 1")
    for key, value, low in [
        ("runner.max_chunk_size", r.max_chunk_size, 1), ("runner.max_in_flight", r.max_in_flight, 1),
        ("results.flush_rows", cfg.results.flush_rows, 1), ("results.compact_parts", cfg.results.compact_parts, 1),
        ("retries", cfg.retries, 0), ("max_failures", cfg.max_failures, 1),
        ("runner.crash_retries", r.crash_retries, 0),
    ]:
        if value is not None and value < low:
            bad.append(f"{key}={value}: must be >= {low}")
    for key, value in [("runner.target_chunk_seconds", r.target_chunk_seconds), ("timeout_s", cfg.timeout_s),
                       ("runner.progress_interval_s", r.progress_interval_s)]:
        if value is not None and value <= 0:
            bad.append(f"{key}={value}: must be > 0")
    if r.progress not in ("auto", "bar", "plain", "none"):
        bad.append(f"runner.progress={r.progress!r}: use auto, bar, plain or none")
    if cfg.results.rerun not in RERUN:
        bad.append(f"results.rerun={cfg.results.rerun!r}: use {' or '.join(RERUN)}")
    if r.isolation not in ISOLATION:
        bad.append(f"runner.isolation={r.isolation!r}: use {', '.join(ISOLATION[:-1])} or {ISOLATION[-1]}")
    for k, v in cfg.resources.items():
        if v <= 0:
            bad.append(f"resources.{k}={v}: must be > 0")
    return bad
