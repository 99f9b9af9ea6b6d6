"""Typed configuration sections and the rules each obeys, checked where the config enters.

The experiment config is free in two places only: ``trial`` (the keyword
arguments of the trial function, checked against its signature) and the
config groups a user adds (e.g. ``model``). Everything else is one of the
dataclasses below, so a misspelled key fails before anything runs.

Each section's ``problems()`` returns one message per bad value (naming the
key and the fix) for the rules its types cannot express; composition calls
them before a cluster starts, so the code that reads a section trusts it. The
defaults here are the shipped ``conf/*.yaml`` ones (``tests/test_defaults.py``
keeps the two equal; the YAML carries the comments a user reads).
"""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from .dask_settings import QUIET_DASK, dask_config_problems

#: values of ``runner.isolation``
ISOLATION = ("auto", "thread", "process")
#: values of ``results.rerun`` (see daskbench.results.codeversion)
RERUN = ("none", "changed")
#: values of ``runner.progress``
PROGRESS = ("auto", "bar", "plain", "none")
#: values of ``cluster.security.mode``
SECURITY_MODES = ("none", "temporary", "files")
#: values of ``cluster.start_method`` (see daskbench.cluster.workers)
START_METHODS = ("forkserver", "fork", "spawn")
#: schemes a running scheduler's address may use
_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_ADDRESS = re.compile(r"^(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:]+\]|[^\s/:\[\]]+):(?P<port>\d{1,5})$")


def _at_least(key: str, value: Optional[float], low: float) -> List[str]:
    """``key`` is unset (None) or a finite number >= ``low``."""
    if value is None:
        return []
    if not math.isfinite(value):  # nan compares false with everything: it would pass `< low`
        return [f"{key}={value}: must be a finite number >= {low}"]
    return [f"{key}={value}: must be >= {low}"] if value < low else []


def _positive(key: str, value: Optional[float], unset: str = "") -> List[str]:
    """``key`` is unset (None) or a finite number > 0; ``unset`` says what null means."""
    if value is None:
        return []
    if not math.isfinite(value):  # `timeout_s=nan` would otherwise mean no timeout at all
        hint = f"; leave it null for {unset}" if unset else ""
        return [f"{key}={value}: must be a finite number > 0{hint}"]
    return [f"{key}={value}: must be > 0"] if value <= 0 else []


def _amounts(key: str, values: Mapping[str, float]) -> List[str]:
    """Resource amounts: each a finite number > 0."""
    bad = []
    for name, v in values.items():
        if not (math.isfinite(v) and v > 0):
            bad.append(f"{key}.{name}={v:g}: must be > 0")
    return bad


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

    # The rules of this section read the axes too (a design samples interval axes,
    # zip names swept keys), so they are the sweep expansion's own: SweepPlan._check.


@dataclass
class ResultsConfig:
    """Where and how results are written."""

    dir: str = "results/${name}"
    flush_rows: int = 10_000
    flush_seconds: float = 10.0
    compact_parts: int = 64
    report: bool = True  # write report/report.html (plots, failures, timings) after each run
    rerun: str = "none"  # changed: run again the ok trials whose rows were made by other code

    def problems(self) -> List[str]:
        """Bad values of ``results.*``, one message each."""
        bad = []
        if not str(self.dir).strip():
            bad.append(
                "results.dir is empty; give a folder, e.g. results.dir=results/NAME (the default is results/<name>)"
            )
        bad += _at_least("results.flush_rows", self.flush_rows, 1)
        bad += _at_least("results.compact_parts", self.compact_parts, 1)
        bad += _at_least("results.flush_seconds", self.flush_seconds, 0)
        if self.rerun not in RERUN:
            bad.append(f"results.rerun={self.rerun!r}: use {' or '.join(RERUN)}")
        return bad


@dataclass
class RunnerConfig:
    """How trials are turned into Dask futures.

    chunk_size: ``auto`` batches short trials so that one task lasts about
        ``target_chunk_seconds``; an integer fixes the trials per task.
    max_chunk_size: the most trials ``auto`` puts in one task (5000 no-op trials
        are ~20 ms of a worker's time: fewer would make tasks mostly Dask's cost).
    max_in_flight: tasks submitted and not yet collected (default: 4 per
        worker thread, deeper for short tasks on a small cluster: see
        ``ChunkSizer.depth``).
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
    max_chunk_size: int = 5000
    max_in_flight: Optional[int] = None
    progress: str = "auto"
    progress_interval_s: float = 5.0
    isolation: str = "auto"
    crash_retries: int = 2

    def problems(self) -> List[str]:
        """Bad values of ``runner.*``, one message each."""
        bad = []
        size = str(self.chunk_size)
        if not (size == "auto" or (size.isdigit() and int(size) >= 1)):
            bad.append(f"runner.chunk_size={self.chunk_size!r}: use auto or a whole number >= 1")
        bad += _at_least("runner.max_chunk_size", self.max_chunk_size, 1)
        bad += _at_least("runner.max_in_flight", self.max_in_flight, 1)
        bad += _at_least("runner.crash_retries", self.crash_retries, 0)
        bad += _positive("runner.target_chunk_seconds", self.target_chunk_seconds)
        bad += _positive("runner.progress_interval_s", self.progress_interval_s)
        if self.progress not in PROGRESS:
            bad.append(f"runner.progress={self.progress!r}: use {', '.join(PROGRESS[:-1])} or {PROGRESS[-1]}")
        if self.isolation not in ISOLATION:
            bad.append(f"runner.isolation={self.isolation!r}: use {', '.join(ISOLATION[:-1])} or {ISOLATION[-1]}")
        return bad


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

    def problems(self, local: bool) -> List[str]:
        """Bad ``cluster.security.*``; ``local``: for a LocalCluster daskbench starts."""
        if self.mode not in SECURITY_MODES:
            return [f"cluster.security.mode={self.mode!r}: use none, temporary or files"]
        if self.mode == "temporary" and not local:
            return [
                "cluster.security.mode=temporary makes self-signed certificates for a LocalCluster "
                "only; for a running scheduler set mode=files with ca_file, cert_file and key_file"
            ]
        bad: List[str] = []
        if self.mode != "files":
            return bad
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, key)
            if not path:
                bad.append(f"cluster.security.mode=files needs cluster.security.{key}=PATH")
            elif not os.path.isfile(os.path.expanduser(path)):
                bad.append(
                    f"cluster.security.{key}={path}: no such file; give the path of the "
                    "PEM file (the same ones the scheduler was started with)"
                )
        return bad


@dataclass
class AdaptConfig:
    """Adaptive scaling between ``minimum`` and ``maximum`` workers (off when maximum is 0)."""

    minimum: int = 0
    maximum: int = 0

    def problems(self) -> List[str]:
        """Bad ``cluster.adapt.*`` bounds."""
        if self.minimum < 0 or self.maximum < 0 or (self.maximum > 0 and self.minimum > self.maximum):
            return [
                f"cluster.adapt.minimum={self.minimum}, cluster.adapt.maximum={self.maximum}: "
                "need 0 <= minimum <= maximum (maximum=0 turns adaptive scaling off)"
            ]
        return []


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
    start_method: str = "forkserver"  # how worker processes start: forkserver | fork | spawn
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    resource_wait_s: float = 60.0  # adaptive only: how long to wait for a worker with `resources`
    # Dask settings for this cluster's scheduler and workers, nested as in Dask's YAML (null: none)
    dask_config: Optional[Dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(QUIET_DASK))

    def problems(self) -> List[str]:
        """Bad ``cluster.*`` values of a LocalCluster."""
        bad = []
        if self.n_workers is not None and self.n_workers < 1 and self.adapt.maximum <= 0:
            bad.append(
                f"cluster.n_workers={self.n_workers}: must be >= 1 (or null: one worker per core; "
                "for scaling from zero set cluster.adapt.maximum)"
            )
        if self.threads_per_worker < 1:
            bad.append(f"cluster.threads_per_worker={self.threads_per_worker}: must be >= 1")
        if str(self.memory_limit) != "auto":
            from dask.utils import parse_bytes  # dask's own parser: what LocalCluster will read

            try:
                parse_bytes(self.memory_limit)
            except (ValueError, TypeError):
                bad.append(
                    f"cluster.memory_limit={self.memory_limit}: give auto, a size per worker such as "
                    "4GB or 512MiB, or 0 for no limit"
                )
        bad += _amounts("cluster.resources", self.resources)
        bad += _at_least("cluster.resource_wait_s", self.resource_wait_s, 0)
        bad += _start_method(self.start_method)
        bad += dask_config_problems(self.dask_config)
        return bad + self.adapt.problems() + self.security.problems(local=True)


def _start_method(method: str) -> List[str]:
    """``cluster.start_method``: one of START_METHODS, and available here."""
    if method not in START_METHODS:
        return [f"cluster.start_method={method}: choose one of {' | '.join(START_METHODS)} (default forkserver)"]
    import multiprocessing

    if method not in multiprocessing.get_all_start_methods():
        return [f"cluster.start_method={method}: not available on this platform; use cluster.start_method=spawn"]
    return []


@dataclass
class AddressClusterConfig:
    """A running scheduler started by the user (``dask scheduler``)."""

    kind: str = "address"
    address: str = "???"
    timeout_s: float = 30.0
    security: SecurityConfig = field(default_factory=SecurityConfig)
    upload_code: bool = True  # ship experiments/ and the trial module's folder to the workers
    resource_wait_s: float = 0.0  # >0: wait this long for a worker with `resources` to join

    def problems(self) -> List[str]:
        """Bad ``cluster.*`` values for a running scheduler (``address`` is set: checked before)."""
        m = _ADDRESS.match(str(self.address).strip())
        if m is None or (m.group("scheme") or "tcp") not in _SCHEMES:
            return [
                f"cluster.address={self.address}: not a scheduler address; write "
                "cluster.address=tcp://HOST:8786 (tls://HOST:8786 with cluster.security)"
            ]
        bad = _positive("cluster.timeout_s", self.timeout_s)
        bad += _at_least("cluster.resource_wait_s", self.resource_wait_s, 0)
        tls = m.group("scheme") == "tls"
        if tls and self.security.mode == "none":
            bad.append(
                f"cluster.address={self.address} uses TLS but cluster.security.mode is none; set "
                "cluster.security.mode=files with ca_file, cert_file and key_file"
            )
        elif not tls and self.security.mode == "files":
            bad.append(
                f"cluster.security is set but cluster.address={self.address} is not tls://; "
                "write cluster.address=tls://HOST:PORT"
            )
        return bad + self.security.problems(local=False)


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

    def problems(self) -> List[str]:
        """Bad ``cluster.*`` values of a DaskCluster (the manifest itself: ``cluster.kube.build_spec``)."""
        return self.adapt.problems() + _at_least("cluster.resource_wait_s", self.resource_wait_s, 0)


CLUSTER_SCHEMAS = {"local": LocalClusterConfig, "address": AddressClusterConfig, "kubernetes": KubernetesClusterConfig}


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

    def problems(self) -> List[str]:
        """Bad top-level values and bad values of the typed sections under them."""
        bad = []
        if not str(self.name).strip():
            bad.append("the experiment config sets no `name`; add `name: my_experiment`")
        if self.seed < 0:
            bad.append(f"seed={self.seed}: must be >= 0 (NumPy's SeedSequence takes non-negative integers)")
        bad += _at_least("retries", self.retries, 0)
        bad += _at_least("max_failures", self.max_failures, 1)
        bad += _positive("timeout_s", self.timeout_s, unset="no timeout")
        bad += _amounts("resources", self.resources)
        return bad + self.results.problems() + self.runner.problems()


#: the top-level sections typed by a dataclass above (``cluster`` is typed by its kind)
SECTIONS = {"sweep": SweepConfig, "results": ResultsConfig, "runner": RunnerConfig}
#: top-level keys whose value is a mapping of keys, never a single value
MAPPING_KEYS = ("trial", "vars", *SECTIONS, "cluster", "resources")
