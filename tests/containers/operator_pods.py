"""The Deployments and Service the dask-kubernetes operator creates for a DaskCluster,
rendered with the operator's own builders, and made runnable by ``podman kube play``.

:func:`render` follows the operator's handlers (``daskcluster_create_components``
and ``daskworkergroup_replica_update`` in ``dask_kubernetes.operator.controller``)
step by step, calling the same ``build_*_spec`` functions on the DaskCluster
daskbench would create (``kube.build_spec``, the path ``cluster=kubernetes``
and the offline tests take). What it leaves out needs an API server:
``kopf.adopt`` (owner references for garbage collection) and the operator's
status updates.

:func:`for_one_host` then changes only what a Kubernetes cluster provides and
one host with podman 4.3 does not, and lists every change it made:

- no pod network: pods share the host's (``hostNetwork``), so each server binds
  127.0.0.1 on a port of its own instead of 0.0.0.0 on the shipped numbers,
  and the ``ports`` lists go (podman 4.3 turns them into port mappings, which
  the host's network refuses; their names are resolved first);
- no Service and no cluster DNS: workers get the address the service's name
  and port lead to, 127.0.0.1 and its ``targetPort`` (podman 4.3 drops
  ``hostAliases`` for pods on the host's network, so the name cannot be kept);
- no kubelet: ``$(VAR)`` in ``args`` is expanded from the container's ``env``
  (podman expands it only from 4.7 on);
- podman runs an ``httpGet`` probe with curl inside the container (the image
  has none): the same GET is made by the image's ``daskbench-healthcheck``;
- no GPU device plugin: ``nvidia.com/gpu`` requests are dropped (the Dask
  resource ``GPU=1`` that daskbench schedules against stays).
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

Obj = Dict[str, Any]

HOST = "127.0.0.1"
GPU_DEVICE = "nvidia.com/gpu"


def shipped(name: str, image: str) -> Tuple[Obj, List[Obj]]:
    """The DaskCluster ``cluster=kubernetes cluster.name=NAME cluster.image=IMAGE`` creates, and
    deploy/gpu-workergroup.yaml pointed at it (as its comments tell a user to)."""
    import daskbench
    from daskbench.cluster import kube  # the spec builder cluster=kubernetes itself uses

    cfg = daskbench.plan("sweep", ["cluster=kubernetes", f"cluster.name={name}", f"cluster.image={image}"]).cluster
    cluster = kube.build_spec(cfg)
    gpu = json.loads(
        json.dumps(kube.load_manifest(kube.package_deploy_dir() / "gpu-workergroup.yaml", "DaskWorkerGroup"))
    )
    gpu["metadata"]["name"] = f"{name}-gpu"
    gpu["spec"]["cluster"] = name
    for c in gpu["spec"]["worker"]["spec"]["containers"]:
        c["image"] = image
    kube.validate(gpu, "deploy/gpu-workergroup.yaml for this cluster")
    return cluster, [gpu]


def _meta(body: Obj) -> Tuple[Dict[str, str], Dict[str, str]]:
    """(annotations, labels) of an object, filtered as the operator filters them."""
    import kopf
    from dask_kubernetes.operator.controller import controller as op

    meta = kopf.Body(copy.deepcopy(body)).meta
    return op._get_annotations(meta), op._get_labels(meta)


def _with_template_meta(annotations: Dict[str, str], labels: Dict[str, str], spec: Obj) -> Tuple[Dict, Dict]:
    """The operator's merge of a scheduler's or worker's own ``metadata`` into the owner's."""
    annotations, labels = dict(annotations), dict(labels)
    extra = spec.get("metadata") or {}
    annotations.update(extra.get("annotations") or {})
    labels.update(extra.get("labels") or {})
    return annotations, labels


def render(
    cluster: Obj, workergroups: List[Obj] = (), new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:10]
) -> List[Obj]:
    """The objects the operator creates for ``cluster`` (a DaskCluster) and extra DaskWorkerGroups.

    In order: the scheduler Deployment, the scheduler Service, then one worker
    Deployment per replica of the default worker group and of each group in
    ``workergroups``.
    """
    import kopf
    from dask_kubernetes.operator.controller import controller as op

    name = cluster["metadata"]["name"]
    namespace = cluster["metadata"].get("namespace") or "default"
    annotations, labels = _meta(cluster)
    scheduler = cluster["spec"]["scheduler"]
    s_ann, s_lab = _with_template_meta(annotations, labels, scheduler)
    out = [
        op.build_scheduler_deployment_spec(name, copy.deepcopy(scheduler.get("spec")), s_ann, s_lab),
        op.build_scheduler_service_spec(name, copy.deepcopy(scheduler.get("service")), s_ann, s_lab),
    ]
    w_ann, w_lab = _with_template_meta(annotations, labels, cluster["spec"]["worker"])
    default = op.build_default_worker_group_spec(name, copy.deepcopy(cluster["spec"]["worker"]), w_ann, w_lab)
    for group in [default, *workergroups]:
        g_ann, g_lab = _meta(group)
        g_ann, g_lab = _with_template_meta(g_ann, g_lab, group["spec"]["worker"])
        for _ in range(int(group["spec"]["worker"].get("replicas", 1))):
            data = op.build_worker_deployment_spec(
                worker_group_name=group["metadata"]["name"],
                namespace=namespace,
                cluster_name=group["spec"]["cluster"],
                uuid=new_id(),
                pod_spec=group["spec"]["worker"]["spec"],
                annotations=g_ann,
                labels=g_lab,
            )
            kopf.label(data, labels=cluster["metadata"].get("labels") or {})  # as the operator labels them
            out.append(data)
    return out


# --------------------------------------------------------------------------- one host


def _pod(obj: Obj) -> Obj:
    return obj["spec"]["template"]["spec"]


def _container(obj: Obj, name: str) -> Obj:
    [c] = [c for c in _pod(obj)["containers"] if c["name"] == name]
    return c


def _set_flag(args: List[str], flag: str, value: str) -> Optional[str]:
    """Set ``flag value`` in a command line; returns the old value (None: it was added)."""
    if flag in args:
        i = args.index(flag) + 1
        old, args[i] = args[i], value
        return old
    args += [flag, value]
    return None


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: Dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` is a literal ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


def _http_probe_to_exec(probe: Obj, port: int) -> Obj:
    # the image's own health check program: podman 4.3 joins an exec probe's
    # words into a shell command, so the URL must be one plain word
    get = probe.pop("httpGet")
    probe["exec"] = {"command": ["daskbench-healthcheck", f"http://{HOST}:{port}{get.get('path', '/')}"]}
    return probe


def for_one_host(objects: List[Obj], free_port: Callable[[], int]) -> Tuple[List[Obj], List[str], Dict[str, Any]]:
    """(objects to play, the changes made, where things listen) for one host without Kubernetes.

    The last item has ``scheduler`` (the comm address clients and workers use),
    ``dashboard`` (its HTTP base URL) and ``workers`` ({deployment name:
    dashboard URL}).
    """
    objects = copy.deepcopy(objects)
    changes: List[str] = []
    [sched] = [
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["labels"].get("dask.org/component") == "scheduler"
    ]
    [service] = [o for o in objects if o["kind"] == "Service"]
    workers = [
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["labels"].get("dask.org/component") == "worker"
    ]
    where: Dict[str, Any] = {"workers": {}}

    # The scheduler: the host's network, 127.0.0.1, a port of its own for each named port.
    c = _container(sched, "scheduler")
    _pod(sched)["hostNetwork"] = True
    ports = {}
    for p in c.get("ports") or []:
        ports[p["name"]] = free_port()
        changes.append(f"scheduler port {p['name']}: {p['containerPort']} -> {ports[p['name']]}")
    old = _set_flag(c["args"], "--host", HOST)
    changes.append(f"scheduler --host {old} -> {HOST}")
    _set_flag(c["args"], "--port", str(ports["tcp-comm"]))
    _set_flag(c["args"], "--dashboard-address", f"{HOST}:{ports['http-dashboard']}")
    changes.append("scheduler --port/--dashboard-address: the tcp-comm/http-dashboard ports above")

    # The Service: a name for the scheduler and its ports, forwarded to targetPort.
    namespace = sched["metadata"].get("namespace") or "default"
    dns = f"{service['metadata']['name']}.{namespace}.svc.cluster.local"
    forwarded = {}
    for p in service["spec"]["ports"]:
        target = p["targetPort"]
        forwarded[p["port"]] = ports[target] if isinstance(target, str) else int(target)
    changes.append(f"service {dns} -> {HOST}, ports " + ", ".join(f"{a} -> {b}" for a, b in sorted(forwarded.items())))
    where["scheduler"] = f"tcp://{HOST}:{forwarded[8786]}"
    where["dashboard"] = f"http://{HOST}:{ports['http-dashboard']}"

    for obj in [sched, *workers]:
        _pod(obj)["hostNetwork"] = True
    changes.append("every pod: hostNetwork true")

    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if "httpGet" in (c.get(probe) or {}):
            port = c[probe]["httpGet"]["port"]
            _http_probe_to_exec(c[probe], ports[port] if isinstance(port, str) else int(port))
            changes.append(f"scheduler {probe}: httpGet -> the same GET by daskbench-healthcheck")
    # podman 4.3 turns declared ports into port mappings, which the host's network
    # refuses; with hostNetwork a containerPort is where the process listens anyway
    # (named ports were resolved above: service targetPorts and probes)
    del c["ports"]
    changes.append("scheduler ports: removed (podman maps declared ports, the host network has none)")
    env = c.setdefault("env", [])
    env.append({"name": "DASKBENCH_HEALTH_URL", "value": f"{where['dashboard']}/health"})

    for w in workers:
        c = _container(w, "worker")
        env = c.setdefault("env", [])
        for item in env:
            if item["name"] == "DASK_SCHEDULER_ADDRESS":
                m = re.fullmatch(r"tcp://(.+):(\d+)", item["value"])
                assert m and m.group(1) == dns, item
                item["value"] = f"tcp://{HOST}:{forwarded[int(m.group(2))]}"
        values = {e["name"]: e["value"] for e in env if "value" in e}
        expanded = [expand(a, values) for a in c["args"]]
        if expanded != c["args"]:
            changes.append(f"{w['metadata']['name']}: $(VAR) in args expanded")
        c["args"] = expanded
        port = free_port()
        if c.pop("ports", None):
            changes.append(f"{w['metadata']['name']}: ports removed (as for the scheduler)")
        old = _set_flag(c["args"], "--dashboard-address", f"{HOST}:{port}")
        _set_flag(c["args"], "--host", HOST)
        changes.append(f"{w['metadata']['name']}: --dashboard-address {old} -> {HOST}:{port}, --host {HOST}")
        env.append({"name": "DASKBENCH_HEALTH_URL", "value": f"http://{HOST}:{port}/health"})
        where["workers"][w["metadata"]["name"]] = f"http://{HOST}:{port}"
        for kind in ("limits", "requests"):
            if (c.get("resources") or {}).get(kind, {}).pop(GPU_DEVICE, None) is not None:
                changes.append(f"{w['metadata']['name']}: resources.{kind}.{GPU_DEVICE} dropped (no device plugin)")
    changes.append("scheduler and workers: DASKBENCH_HEALTH_URL for the image's HEALTHCHECK")
    return objects, changes, where
