"""The launcher's typed config, registered in Hydra's ConfigStore as ``hydra/launcher=daskbench``.

Every key can be set on the command line as ``hydra.launcher.KEY=VALUE``; an
unknown key is Hydra's own error. The cluster section holds the keys of all of
daskbench's cluster kinds (``local``, ``address``, ``kubernetes``); a key left
``null`` takes daskbench's default for the chosen kind, and a key the kind does
not have is refused with a message naming it.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class AdaptConf:
    """Adaptive scaling (``local`` and ``kubernetes``): off while ``maximum`` is 0."""

    minimum: Optional[int] = None
    maximum: Optional[int] = None


@dataclass
class SecurityConf:
    """TLS: ``none``, ``temporary`` (local only) or ``files`` with the three paths."""

    mode: Optional[str] = None
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None


@dataclass
class ClusterConf:
    """Where the jobs run; the same keys as daskbench's ``cluster.*``: a key left at
    the default below takes daskbench's default for the kind (null is "unset" except
    for ``dashboard_address``, where null turns the dashboard off). Hydra closes the
    dicts (``resources``, ``env``): add keys with ``+``, e.g. ``+hydra.launcher.cluster.resources.GPU=1``.

    kind=local: n_workers, threads_per_worker, processes, memory_limit, resources,
    host, dashboard_address, adapt, security, resource_wait_s, start_method
    (forkserver | fork | spawn: how worker processes start), dask_config (Dask settings
    for the cluster's processes, over daskbench's: ``+hydra.launcher.cluster.dask_config.
    distributed.worker.profile.interval=10ms``).
    kind=address: address, timeout_s, security, upload_code, resource_wait_s.
    kind=kubernetes: name, namespace, manifest, image, n_workers, env, adapt,
    resource_wait_s, shutdown_on_close.
    """

    kind: str = "local"
    address: Optional[str] = None
    timeout_s: Optional[float] = None
    n_workers: Optional[int] = None
    threads_per_worker: Optional[int] = None
    processes: Optional[bool] = None
    memory_limit: Optional[str] = None
    start_method: Optional[str] = None
    resources: Dict[str, float] = field(default_factory=dict)  # `+hydra.launcher.cluster.resources.GPU=1`
    host: Optional[str] = None
    dashboard_address: Optional[str] = "127.0.0.1:8787"
    adapt: AdaptConf = field(default_factory=AdaptConf)
    security: SecurityConf = field(default_factory=SecurityConf)
    upload_code: Optional[bool] = None
    resource_wait_s: Optional[float] = None
    name: Optional[str] = None
    namespace: Optional[str] = None
    manifest: Optional[str] = None
    image: Optional[str] = None
    env: Dict[str, str] = field(default_factory=dict)
    shutdown_on_close: Optional[bool] = None
    dask_config: Dict[str, Any] = field(default_factory=dict)  # nested as in Dask's YAML; over daskbench's


@dataclass
class DaskbenchLauncherConf:
    """``hydra.launcher.*``.

    resources / priority / retries / timeout_s: as daskbench's own keys: each
        job's Dask resources (``{GPU: 1}``), its scheduling priority, how many
        more times a job whose task function raised is run again, and the
        seconds a job may run (null: no limit). With ``timeout_s`` each job
        runs in a child process of its own (an interpreter start per job),
        killed at the deadline: the job fails, its row says ``timeout``.
    max_in_flight: jobs submitted and not yet collected (null: 4 per worker thread).
    chunk_size: jobs per Dask task (null: sized so every worker gets several tasks).
    resume: skip the jobs whose row in the trials table is ``ok`` (same content
        hash) and hand their stored return values back to the sweeper.
    results_dir: where the trials table goes (``<results_dir>/trials``).
    name: the table's experiment name (null: ``hydra.job.name``), part of each job's id.
    """

    _target_: str = "hydra_plugins.daskbench_launcher.launcher.DaskbenchLauncher"
    cluster: ClusterConf = field(default_factory=ClusterConf)
    # a closed dict in Hydra's struct mode: set with `+hydra.launcher.resources.GPU=1`
    # or `++hydra.launcher.resources={GPU: 1}`
    resources: Dict[str, float] = field(default_factory=dict)
    priority: int = 0
    retries: int = 0
    timeout_s: Optional[float] = None
    max_in_flight: Optional[int] = None
    chunk_size: Optional[int] = None
    resume: bool = False
    results_dir: str = "${hydra.sweep.dir}/results"
    name: Optional[str] = None


ConfigStore.instance().store(
    group="hydra/launcher",
    name="daskbench",
    node=DaskbenchLauncherConf,
    provider="daskbench",
)
