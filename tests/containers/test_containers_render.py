"""Offline (runs in `make test` too): the objects the operator would create for
daskbench's DaskCluster, and what playing them on one host changes.

test_containers_kube.py runs exactly these objects with ``podman kube play``;
this pins that they are the operator's and that the one-host changes are only
the listed ones.
"""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("dask_kubernetes")

import operator_pods  # noqa: E402

NAME, IMAGE = "dbct-offline", "localhost/daskbench-test:x"


def _objects():
    ids = (f"{i:010d}" for i in itertools.count())
    cluster, groups = operator_pods.shipped(NAME, IMAGE)
    return cluster, groups, operator_pods.render(cluster, groups, new_id=lambda: next(ids))


def test_render_is_what_the_operator_creates_from_the_daskcluster():
    cluster, [gpu], objects = _objects()
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Deployment", f"{NAME}-scheduler"),
        ("Service", f"{NAME}-scheduler"),
        ("Deployment", f"{NAME}-default-worker-0000000000"),
        ("Deployment", f"{NAME}-gpu-worker-0000000001"),
    ]
    sched, service, worker, gpu_worker = objects
    # the pod specs are the DaskCluster's, passed through
    assert sched["spec"]["template"]["spec"] == cluster["spec"]["scheduler"]["spec"]
    assert service["spec"] == cluster["spec"]["scheduler"]["service"]
    assert sched["spec"]["template"]["metadata"]["labels"] == {
        "dask.org/cluster-name": NAME,
        "dask.org/component": "scheduler",
        "sidecar.istio.io/inject": "false",
    }
    assert all(sched["spec"]["template"]["metadata"]["labels"][k] == v for k, v in service["spec"]["selector"].items())
    for w, group in ((worker, cluster["spec"]["worker"]), (gpu_worker, gpu["spec"]["worker"])):
        [c] = w["spec"]["template"]["spec"]["containers"]
        [want] = group["spec"]["containers"]
        env = {e["name"]: e["value"] for e in c["env"]}
        # the operator injects the worker's name and the service's address
        assert env == {
            **{e["name"]: e["value"] for e in want.get("env", [])},
            "DASK_WORKER_NAME": w["metadata"]["name"],
            "DASK_SCHEDULER_ADDRESS": f"tcp://{NAME}-scheduler.default.svc.cluster.local:8786",
        }
        assert {k: v for k, v in c.items() if k != "env"} == {k: v for k, v in want.items() if k != "env"}
        assert c["image"] == IMAGE
    env = {e["name"]: e["value"] for e in sched["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] == "0"
    assert "distributed.http.scheduler.api" in env["DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"]


def _paths(x, at=()):
    """{path: leaf} of a nested document."""
    if isinstance(x, dict):
        return {p: v for k, item in x.items() for p, v in _paths(item, at + (k,)).items()}
    if isinstance(x, list):
        return {p: v for i, item in enumerate(x) for p, v in _paths(item, at + (i,)).items()}
    return {at: x}


def test_one_host_changes_only_networking_probes_expansion_and_gpu_devices():
    _, _, objects = _objects()
    ports = iter(range(18500, 18600))
    played, changes, where = operator_pods.for_one_host(objects, lambda: next(ports))
    allowed = {"hostNetwork", "args", "ports", "env", "livenessProbe", "readinessProbe"}
    for before, after in zip(objects, played):
        a, b = _paths(before), _paths(after)
        changed = {p for p in a.keys() | b.keys() if a.get(p, None) != b.get(p, None)}
        for p in changed:
            assert any(k in allowed for k in p) or "nvidia.com/gpu" in p, (before["metadata"]["name"], p)
        if after["kind"] == "Deployment":
            assert after["spec"]["template"]["spec"]["hostNetwork"] is True
    sched, service, worker, gpu_worker = played
    assert service == objects[1]  # podman plays no Service: workers get the address it leads to
    c = sched["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == [
        "dask",
        "scheduler",
        "--host",
        "127.0.0.1",
        "--port",
        "18500",
        "--dashboard-address",
        "127.0.0.1:18501",
    ]
    assert c["resources"] == objects[0]["spec"]["template"]["spec"]["containers"][0]["resources"]  # limits stay
    assert c["env"][:2] == objects[0]["spec"]["template"]["spec"]["containers"][0]["env"]  # routes, allowed failures
    assert where == {
        "scheduler": "tcp://127.0.0.1:18500",
        "dashboard": "http://127.0.0.1:18501",
        "workers": {
            worker["metadata"]["name"]: "http://127.0.0.1:18502",
            gpu_worker["metadata"]["name"]: "http://127.0.0.1:18503",
        },
    }
    for w in (worker, gpu_worker):
        [c] = w["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["DASK_SCHEDULER_ADDRESS"] == "tcp://127.0.0.1:18500"  # the service, resolved
        assert c["args"][c["args"].index("--name") + 1] == w["metadata"]["name"]  # $(DASK_WORKER_NAME), expanded
    [c] = gpu_worker["spec"]["template"]["spec"]["containers"]
    assert c["args"][c["args"].index("--resources") + 1] == "GPU=1"
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert any("nvidia.com/gpu" in x for x in changes)
    assert (
        f"service {NAME}-scheduler.default.svc.cluster.local -> 127.0.0.1, ports 8786 -> 18500, 8787 -> 18501"
        in changes
    )


def test_expand_is_kubernetes_dependent_variable_expansion():
    env = {"A": "x", "B": "y"}
    assert operator_pods.expand("$(A)-$(B)", env) == "x-y"
    assert operator_pods.expand("$(C)", env) == "$(C)"  # undefined: left as written
    assert operator_pods.expand("$$(A)", env) == "$(A)"  # escaped
    assert operator_pods.expand("$A", env) == "$A"  # not shell syntax
