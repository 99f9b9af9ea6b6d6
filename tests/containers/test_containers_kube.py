"""The pods the dask-kubernetes operator would create for deploy/daskcluster.yaml,
run with ``podman kube play``, serving sweeps, then removed with ``podman kube down``.

The objects come from the operator's own builders (operator_pods.render); the
changes one host needs are operator_pods.for_one_host's, pinned offline by
test_containers_render.py. What only a real Kubernetes cluster shows (the
reconcile loop, the autoscaler, retire_workers called by the operator) is not
tested here: see deploy/README.md.
"""

from __future__ import annotations

import json
import time

import operator_pods
import podman_engine as pe
import yaml
from host_cli import finish, start_cli

import daskbench


def _pods():
    return [
        n for n in pe.podman("pod", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith(f"{pe.PREFIX}-k-")
    ]


def test_operator_pods_under_podman_kube_play_serve_sweeps(image, tmp_path):
    name = f"{pe.PREFIX}-k"
    cluster, groups = operator_pods.shipped(name, image)
    objects = operator_pods.render(cluster, groups)
    played, changes, where = operator_pods.for_one_host(objects, pe.free_port)
    kubefile = tmp_path / "pods.yaml"
    kubefile.write_text(yaml.safe_dump_all(played, sort_keys=False))
    print("\n".join(["changes for one host:", *changes]))
    deployments = [o["metadata"]["name"] for o in played if o["kind"] == "Deployment"]
    try:
        pe.podman("kube", "play", "--build=false", str(kubefile), timeout=180)
        assert sorted(_pods()) == sorted(f"{d}-pod-0" for d in deployments)
        workers = pe.wait_for_workers(where["scheduler"], 2, why="\n".join(_logs(deployments)))
        # each worker is named after its Deployment ($(DASK_WORKER_NAME)) and found the
        # scheduler through the service's name; the GPU group's worker has GPU=1
        names = {w["name"]: addr for addr, w in workers.items()}
        assert set(names) == set(deployments[1:])
        [gpu] = [addr for addr, w in workers.items() if w["resources"].get("GPU") == 1]
        assert workers[gpu]["name"].startswith(f"{name}-gpu-worker-")

        base = ["cluster=address", f"cluster.address={where['scheduler']}"]
        (tmp_path / "all").mkdir(), (tmp_path / "gpu").mkdir()
        any_args = ["trial.customers=1000,10000"]
        gpu_args = ["+resources.GPU=1", "trial.customers=1000", "sweep.replicates=2"]
        a = start_cli(["+experiment=sweep", *base, *any_args], tmp_path / "all")
        g = start_cli(["+experiment=sweep", *base, *gpu_args], tmp_path / "gpu")
        finish(a, tmp_path / "all"), finish(g, tmp_path / "gpu")
        for folder, args, n in (("all", any_args, 72), ("gpu", gpu_args, 18)):
            df = daskbench.load(tmp_path / folder / "results" / "sweep")
            assert len(df) == n and df.trial_id.is_unique and (df.status == "ok").all()
            assert set(df.trial_id) == {t.trial_id for t in daskbench.plan("sweep", args).plan}
        assert set(df.worker) == {gpu}

        # what deploy/daskcluster.yaml configures reached the scheduler: the HTTP API
        # the operator calls, allowed-failures 0, the probe the pod runs
        target = json.loads(pe.http_get(f"{where['dashboard']}/api/v1/adaptive_target"))
        assert set(target) == {"workers"}
        from distributed import Client

        with Client(where["scheduler"], timeout="10s") as c:
            assert c.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures) == 0
        sched = f"{deployments[0]}-pod-0-scheduler"
        r = pe.podman("healthcheck", "run", sched, check=False)
        assert r.returncode == 0, (r.stdout, r.stderr)
    finally:
        down = pe.podman("kube", "down", str(kubefile), check=False, timeout=180)
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 30
    while _pods() and time.monotonic() < deadline:
        time.sleep(1)
    assert _pods() == []


def _logs(deployments):
    return [
        f"--- {d}\n{pe.logs(f'{d}-pod-0-{role}')}"
        for d, role in zip(deployments, ["scheduler"] + ["worker"] * (len(deployments) - 1))
    ]
