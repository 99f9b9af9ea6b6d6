"""Kubernetes: the ``DaskCluster`` daskbench asks the dask-kubernetes operator for.

Everything here but :func:`make_cluster` works offline. The manifest is first
checked against the operator's CRDs (:mod:`daskbench.cluster.kube_crd`); on top
of the schema, :func:`check_cluster` checks what the operator relies on by
convention (port names, the scheduler's HTTP API routes, the service selector),
and :func:`build_spec` lays the ``cluster.*`` settings over it.

``dask_kubernetes`` is an optional extra; it is imported inside the functions
that need it, never when this module is imported.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..dask_compat import kube_clusters_forgotten_on_failure
from ..errors import ClusterError, ConfigError
from .kube_crd import EXTRA_HINT, load_manifest, require_dask_kubernetes, suggest, validate

#: The scheduler config the operator needs: its HTTP API (to retire workers
#: gracefully, check idleness, read the adaptive target) and /health (probes).
ROUTES_ENV = "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"
NEEDED_ROUTES = ("distributed.http.scheduler.api", "distributed.http.health")
#: Service ports the operator looks up by name (controller and KubeCluster).
SERVICE_PORTS = ("tcp-comm", "http-dashboard")

# --------------------------------------------------------------------------- the DaskCluster


def package_deploy_dir() -> Path:
    """The shipped ``deploy/``: inside the installed package, or the source checkout's."""
    package = Path(__file__).resolve().parents[1]  # src/daskbench, or daskbench in site-packages
    for cand in (package / "deploy", package.parents[1] / "deploy"):
        if (cand / "daskcluster.yaml").is_file():
            return cand
    raise ConfigError(
        "daskbench's own deploy/daskcluster.yaml is missing; reinstall the package "
        "or set cluster.manifest=PATH to a DaskCluster YAML"
    )


def manifest_path(cfg: Any, repo_root: Any = None) -> Path:
    """``cfg.manifest`` (relative to ``repo_root``, default the working directory) or the shipped one."""
    if cfg.manifest is None:
        return package_deploy_dir() / "daskcluster.yaml"
    path = Path(cfg.manifest).expanduser()
    if not path.is_absolute():
        path = Path(repo_root or Path.cwd()) / path
    if not path.is_file():
        raise ConfigError(
            f"cluster.manifest={cfg.manifest}: no such file ({path}); give a DaskCluster "
            "YAML or cluster.manifest=null for the shipped deploy/daskcluster.yaml"
        )
    return path


def _container(spec: Dict[str, Any], role: str, source: str) -> Tuple[str, Dict[str, Any]]:
    """(path, body) of the container named ``role`` (scheduler or worker)."""
    containers = spec["spec"][role]["spec"]["containers"]
    for i, c in enumerate(containers):
        if c.get("name") == role:
            return f"spec.{role}.spec.containers[{i}]", c
    names = ", ".join(repr(c.get("name")) for c in containers)
    raise ConfigError(
        f"{source}: spec.{role}.spec.containers: no container named {role!r} (found {names}); "
        f"daskbench sets image and env on the containers named 'scheduler' and 'worker'"
    )


def _routes(env: List[Dict[str, Any]]) -> Optional[List[str]]:
    """The scheduler's HTTP routes as dask parses ``ROUTES_ENV`` (None: not set)."""
    for item in env:
        if item.get("name") == ROUTES_ENV and "value" in item:
            try:
                value = ast.literal_eval(item["value"])
            except (ValueError, SyntaxError):
                value = item["value"]
            return list(value) if isinstance(value, (list, tuple)) else [value]
    return None


def check_cluster(doc: Dict[str, Any], source: str = "<manifest>") -> None:
    """What the operator relies on beyond the CRD; call after :func:`validate`.

    - the scheduler service selects this cluster's scheduler pod and exposes
      ports named ``tcp-comm`` and ``http-dashboard`` (looked up by name);
    - every named ``targetPort`` and probe port is a port of its container;
    - the scheduler enables the HTTP API (the operator retires workers
      gracefully through ``/api/v1/retire_workers``) and ``/health`` (probes).
    """
    name = doc["metadata"]["name"]
    sched_path, sched = _container(doc, "scheduler", source)
    _container(doc, "worker", source)
    service = doc["spec"]["scheduler"]["service"]
    at = "spec.scheduler.service"
    selector = service.get("selector") or {}
    want = {"dask.org/cluster-name": name, "dask.org/component": "scheduler"}
    if any(selector.get(k) != v for k, v in want.items()):
        raise ConfigError(
            f"{source}: {at}.selector: must select {want} (has {selector}); "
            "otherwise the service reaches no scheduler pod"
        )
    port_names = [p.get("name") for p in service.get("ports") or []]
    missing = [p for p in SERVICE_PORTS if p not in port_names]
    if missing:
        raise ConfigError(
            f"{source}: {at}.ports: no port named {missing[0]!r} (has {port_names}); "
            "the operator finds the scheduler by the names tcp-comm and http-dashboard"
        )
    for role in ("scheduler", "worker"):
        for i, c in enumerate(doc["spec"][role]["spec"]["containers"]):
            named = [p.get("name") for p in c.get("ports") or []]
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
                if isinstance(port, str) and not port.isdigit() and port not in named:
                    raise ConfigError(
                        f"{source}: spec.{role}.spec.containers[{i}].{probe}.httpGet.port: "
                        f"{port!r} names no port of this container{suggest(port, named)}"
                    )
    for j, p in enumerate(service.get("ports") or []):
        target = p.get("targetPort")
        named = [q.get("name") for q in sched.get("ports") or []]
        if isinstance(target, str) and not target.isdigit() and target not in named:
            raise ConfigError(
                f"{source}: {at}.ports[{j}].targetPort: {target!r} names no port of the "
                f"scheduler container{suggest(target, named)}"
            )
    routes = _routes(sched.get("env") or [])
    lacking = [r for r in NEEDED_ROUTES if r not in (routes or [])]
    if lacking:
        raise ConfigError(
            f"{source}: {sched_path}.env: {ROUTES_ENV} must list {', '.join(lacking)} "
            "(the operator retires workers through the scheduler's HTTP API and probes /health); "
            "copy its value from deploy/daskcluster.yaml"
        )


def _check_name(name: str) -> None:
    from dask_kubernetes.constants import MAX_CLUSTER_NAME_LEN, VALID_CLUSTER_NAME

    if not isinstance(name, str) or not VALID_CLUSTER_NAME.match(name):
        raise ConfigError(
            f"cluster.name={name!r}: not a valid DaskCluster name (lower-case letters, digits and "
            f"'-', starting and ending with a letter or digit, at most {MAX_CLUSTER_NAME_LEN} "
            "characters); e.g. cluster.name=daskbench"
        )


def build_spec(cfg: Any, repo_root: Any = None) -> Dict[str, Any]:
    """The ``DaskCluster`` daskbench creates for ``cfg`` (a ``KubernetesClusterConfig``).

    The manifest (``cfg.manifest`` or the shipped ``deploy/daskcluster.yaml``)
    is validated as written, then ``metadata.name`` and the service selector
    become ``cfg.name``; ``cfg.namespace``, ``cfg.image`` (scheduler and
    worker containers), ``cfg.n_workers`` (``spec.worker.replicas``) and
    ``cfg.env`` (added to or replacing the containers' variables of the same
    name) are laid over it; the result is validated again and returned as plain
    dicts and lists.
    """
    require_dask_kubernetes()
    path = manifest_path(cfg, repo_root)
    doc = load_manifest(path, "DaskCluster")
    validate(doc)
    _check_name(cfg.name)
    spec: Dict[str, Any] = copy.deepcopy(dict(doc))
    spec["metadata"]["name"] = cfg.name
    if cfg.namespace:
        spec["metadata"]["namespace"] = cfg.namespace
    spec["spec"]["scheduler"]["service"].setdefault("selector", {})["dask.org/cluster-name"] = cfg.name
    if cfg.n_workers is not None:
        if not isinstance(cfg.n_workers, int) or cfg.n_workers < 0:
            raise ConfigError(
                f"cluster.n_workers={cfg.n_workers!r}: must be a whole number >= 0 (or null: the manifest's replicas)"
            )
        spec["spec"]["worker"]["replicas"] = cfg.n_workers
    for role in ("scheduler", "worker"):
        c = _container(spec, role, doc.source)[1]
        if cfg.image:
            c["image"] = cfg.image
        env = c.setdefault("env", [])
        for key, value in (cfg.env or {}).items():
            for item in env:
                if item.get("name") == key:
                    item.clear()
                    item.update(name=key, value=str(value))
                    break
            else:
                env.append({"name": str(key), "value": str(value)})
        if not env:
            del c["env"]
    source = f"{doc.source} with the cluster.* settings"
    validate(spec, source)
    check_cluster(spec, source)
    return spec


def make_cluster(cfg: Any, repo_root: Any = None, quiet: bool = False) -> Any:
    """Create the ``DaskCluster`` through the operator and return its ``KubeCluster``.

    Create-only: if a DaskCluster of that name exists already, this fails
    instead of connecting to it (connecting would ignore our spec, and
    ``shutdown_on_close`` would then delete a cluster we did not make). Needs
    kubectl access to a Kubernetes cluster running the operator; the tests only
    exercise its failure without one.
    """
    spec = build_spec(cfg, repo_root)
    try:
        from dask_kubernetes.operator import KubeCluster
        from dask_kubernetes.operator.kubecluster.kubecluster import CreateMode
    except ImportError:
        raise ConfigError(EXTRA_HINT) from None
    try:
        # dask-kubernetes' exit hook would "close" (delete) the DaskCluster named
        # like a half-made one, which may be someone else's (e.g. "already
        # exists"); KubeCluster deletes what it created on the failures it detects.
        with kube_clusters_forgotten_on_failure():
            return KubeCluster(
                custom_cluster_spec=spec,
                namespace=spec["metadata"].get("namespace"),
                shutdown_on_close=cfg.shutdown_on_close,
                create_mode=CreateMode.CREATE_ONLY,
                quiet=quiet,
            )
    except Exception as exc:  # kr8s, httpx, operator timeouts: all mean "no cluster"
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ClusterError(
            f"cannot create DaskCluster {cfg.name!r} ({type(exc).__name__}: {first}); check "
            "`kubectl get daskclusters,pods` (delete a leftover with `kubectl delete daskcluster "
            f"{cfg.name}` or set another cluster.name), that the dask-kubernetes operator is "
            "installed (deploy/README.md) and the cluster.* settings"
        ) from None
