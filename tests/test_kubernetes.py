"""cluster=kubernetes, offline: manifests against the operator's CRDs and spec builders.

No Kubernetes API server and no container engine are needed: the shipped
manifests are validated against the CRDs inside the installed dask-kubernetes,
compared with ``make_cluster_spec`` / ``make_worker_spec``, their container
commands are parsed by the installed ``dask`` CLI, and the scheduler's HTTP
routes are served by a real in-process scheduler.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

pytest.importorskip("dask_kubernetes")

from daskbench.cluster import kube, kube_crd  # noqa: E402
from daskbench.config.schema import KubernetesClusterConfig  # noqa: E402
from daskbench.errors import ClusterError, ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
CLUSTER_YAML = DEPLOY / "daskcluster.yaml"
GPU_YAML = DEPLOY / "gpu-workergroup.yaml"
AUTOSCALER_YAML = DEPLOY / "autoscaler.yaml"
API_ROUTE = "distributed.http.scheduler.api"
ALLOWED_FAILURES_ENV = "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"


def _containers(doc):
    """(role, container) for every container of a DaskCluster or DaskWorkerGroup."""
    spec = doc["spec"]
    roles = ["scheduler", "worker"] if doc["kind"] == "DaskCluster" else ["worker"]
    return [(role, c) for role in roles for c in spec[role]["spec"]["containers"]]


def _prune_nulls(x):
    """What the API server does to nulls in non-nullable fields before validating."""
    if isinstance(x, dict):
        return {k: _prune_nulls(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_prune_nulls(v) for v in x]
    return x


def _write(tmp_path, text, name="m.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _validate_file(path):
    for doc in kube_crd.load_documents(path):
        kube_crd.validate(doc)


# ----------------------------------------------------------------- the shipped manifests


def test_every_shipped_manifest_validates():
    files = sorted(DEPLOY.glob("*.yaml"))
    assert {f.name for f in files} == {"daskcluster.yaml", "gpu-workergroup.yaml", "autoscaler.yaml"}
    kinds = []
    for f in files:
        docs = kube_crd.load_documents(f)
        assert docs, f
        for doc in docs:
            kube_crd.validate(doc)
            kinds.append(doc["kind"])
    assert sorted(kinds) == ["DaskAutoscaler", "DaskCluster", "DaskWorkerGroup"]
    kube.check_cluster(kube_crd.load_manifest(CLUSTER_YAML))


def test_shipped_manifests_agree_with_each_other_and_the_config():
    cluster = kube_crd.load_manifest(CLUSTER_YAML)
    gpu = kube_crd.load_manifest(GPU_YAML, "DaskWorkerGroup")
    auto = kube_crd.load_manifest(AUTOSCALER_YAML, "DaskAutoscaler")
    defaults = KubernetesClusterConfig()
    conf = yaml.safe_load((ROOT / "conf" / "cluster" / "kubernetes.yaml").read_text())
    name = cluster["metadata"]["name"]
    assert name == defaults.name == conf["name"]
    assert cluster["spec"]["scheduler"]["service"]["selector"]["dask.org/cluster-name"] == name
    assert gpu["spec"]["cluster"] == auto["spec"]["cluster"] == auto["metadata"]["name"] == name
    assert auto["spec"]["minimum"] == defaults.adapt.minimum == conf["adapt"]["minimum"]
    assert auto["spec"]["maximum"] == defaults.adapt.maximum == conf["adapt"]["maximum"]
    images = {c["image"] for d in (cluster, gpu) for _, c in _containers(d)}
    assert images == {"daskbench:latest"}


def test_container_commands_parse_with_the_installed_dask_cli():
    """`dask worker`/`dask scheduler` accept unknown --options silently (as the scheduler
    address or as --preload arguments), so parsing alone is not enough: check where they land."""
    commands = {ep.name: ep for ep in entry_points(group="dask_cli")}
    seen = set()
    for f in (CLUSTER_YAML, GPU_YAML):
        for doc in kube_crd.load_documents(f):
            for role, c in _containers(doc):
                args = c["args"]
                assert args[:2] == ["dask", role] and "command" not in c
                ctx = commands[role].load().make_context(role, list(args[2:]))
                assert ctx.params["preload_argv"] == (), f"{f.name}: {role} has options dask does not know"
                if role == "worker":
                    # the operator injects DASK_SCHEDULER_ADDRESS; a positional here is a misspelt option
                    assert ctx.params["scheduler"] is None, f"{f.name}: unknown option {ctx.params['scheduler']}"
                    assert ctx.params["name"] == "$(DASK_WORKER_NAME)" and ctx.params["dashboard"]
                    assert ctx.params["dashboard_address"] == "8788"
                    seen.add(ctx.params["resources"])
                else:
                    assert ctx.params["host"] == "0.0.0.0"
    assert seen == {None, "GPU=1"}
    # the same check catches a misspelt option
    with pytest.raises(Exception):
        commands["scheduler"].load().make_context("scheduler", ["--hots", "0.0.0.0"])
    assert commands["worker"].load().make_context("worker", ["--dashbord"]).params["scheduler"] == "--dashbord"


def _routes_from_manifest():
    import dask

    [routes_env] = [
        e
        for e in kube_crd.load_manifest(CLUSTER_YAML)["spec"]["scheduler"]["spec"]["containers"][0]["env"]
        if e["name"] == kube.ROUTES_ENV
    ]
    # exactly as dask reads the variable in the container
    return dask.config.collect_env({routes_env["name"]: routes_env["value"]})["distributed"]["scheduler"]["http"][
        "routes"
    ]


def test_http_routes_are_distributeds_defaults_plus_the_api():
    import distributed

    shipped = yaml.safe_load((Path(distributed.__file__).parent / "distributed.yaml").read_text())
    defaults = shipped["distributed"]["scheduler"]["http"]["routes"]
    assert API_ROUTE not in defaults  # why the variable is needed at all
    assert _routes_from_manifest() == defaults + [API_ROUTE]


def test_scheduler_with_the_manifest_routes_serves_what_the_operator_calls():
    """A real scheduler and two workers: the operator's probe and HTTP API calls, incl. graceful retirement."""
    import dask
    from distributed import Scheduler, Worker
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError

    async def scenario(routes):
        with dask.config.set({"distributed.scheduler.http.routes": routes}):
            async with Scheduler(host="127.0.0.1", dashboard_address="127.0.0.1:0", dashboard=False) as s:
                async with Worker(s.address, nthreads=1), Worker(s.address, nthreads=1):
                    http = AsyncHTTPClient()
                    base = f"http://127.0.0.1:{s.http_server.port}"
                    out = {"health": (await http.fetch(base + "/health")).body.decode()}
                    try:
                        r = await http.fetch(base + "/api/v1/adaptive_target")
                        out["target"] = json.loads(r.body)
                        r = await http.fetch(base + "/api/v1/retire_workers", method="POST", body=json.dumps({"n": 1}))
                        out["retired"] = len(json.loads(r.body))
                        out["left"] = len(s.workers)
                    except HTTPClientError as exc:
                        out["api"] = exc.code
                    return out

    import distributed

    defaults = yaml.safe_load((Path(distributed.__file__).parent / "distributed.yaml").read_text())
    with_api = asyncio.run(scenario(_routes_from_manifest()))
    assert with_api == {"health": "ok", "target": {"workers": 0}, "retired": 1, "left": 1}
    without = asyncio.run(scenario(defaults["distributed"]["scheduler"]["http"]["routes"]))
    assert without == {"health": "ok", "api": 404}


def test_scheduler_env_sets_allowed_failures_0_as_dask_reads_it():
    import dask

    [env] = [
        e
        for e in kube.load_manifest(CLUSTER_YAML)["spec"]["scheduler"]["spec"]["containers"][0]["env"]
        if e["name"] == ALLOWED_FAILURES_ENV
    ]
    read = dask.config.collect_env({env["name"]: env["value"]})  # as dask reads it in the container
    assert dask.config.get("distributed.scheduler.allowed-failures", config=read) == 0


def _dockerfile_lines():
    """The Dockerfile's instructions, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return [" ".join(x.split()) for x in text.splitlines() if x.strip() and not x.strip().startswith("#")]


def test_dockerfile_copies_what_the_wheel_build_needs():
    """Static checks (tests/containers/ builds and runs it). The image cannot be
    built if the pip install step lacks a file hatch needs (packages,
    force-include, readme); users with a registry build it unchanged."""
    import tomllib

    lines = _dockerfile_lines()
    assert lines[0] == "ARG BASE_IMAGE=python:3.11-slim"  # the default base; make test-containers passes its own
    assert [x for x in lines if x.startswith("FROM ")] == ["FROM ${BASE_IMAGE} AS build", "FROM ${BASE_IMAGE}"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"
    install = next(i for i, x in enumerate(lines) if "pip install" in x)
    assert '".[kubernetes]"' in lines[install]
    copied = set()
    for x in lines[:install]:
        if x.startswith("COPY "):
            copied |= {src.rstrip("/") for src in x.split()[1:-1]}
    assert all((ROOT / src).exists() for src in copied), copied
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = (
        {"pyproject.toml", project["project"]["readme"], "conf", "experiments", "deploy"}
        | {p.split("/")[0] for p in wheel["packages"]}
        | {p.split("/")[0] for p in wheel.get("force-include", {})}
    )
    assert needed <= copied, needed - copied
    allowed = {
        x.strip().lstrip("!").rstrip("/")
        for x in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if x.strip().startswith("!")
    }
    assert needed <= allowed, needed - allowed


def test_dockerfile_pins_dask_and_distributed_within_the_projects_range():
    """The image's default pins satisfy pyproject's requirements (make test-containers
    builds with the driver's exact versions and checks them inside the image)."""
    import tomllib

    from packaging.requirements import Requirement

    args = dict(x.split(" ", 1)[1].split("=", 1) for x in _dockerfile_lines() if x.startswith("ARG ") and "=" in x)
    requires = {
        Requirement(r).name: Requirement(r).specifier
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    for name in ("dask", "distributed"):
        version = args[f"{name.upper()}_VERSION"]
        assert version in requires[name], (name, version, requires[name])
    assert args["DASK_VERSION"] == args["DISTRIBUTED_VERSION"]  # released together, same numbers
    install = next(x for x in _dockerfile_lines() if "pip install" in x)
    assert '"dask==${DASK_VERSION}" "distributed==${DISTRIBUTED_VERSION}"' in install


# ----------------------------------------------------------------- strict validation


def _mutate(text, old, new):
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


CLUSTER_MUTATIONS = [
    # (what, old, new, expected substrings)
    (
        "unknown key replica",
        "    replicas: 1 ",
        "    replica: 1 ",
        [":27: spec.worker.replica: unknown key (did you mean 'replicas'?)"],
    ),
    (
        "misspelt container key",
        '        - name: worker                # daskbench sets image/env on the container named "worker"\n'
        "          image:",
        "        - name: worker\n          imagee:",
        [":31: spec.worker.spec.containers[0].imagee: unknown key (did you mean 'image'?)"],
    ),
    (
        "misspelt pod key",
        "      containers:\n        - name: worker",
        "      container:\n        - name: worker",
        ["spec.worker.spec.container: unknown key (did you mean 'containers'?)"],
    ),
    (
        "wrong type for replicas",
        "    replicas: 1 ",
        '    replicas: "1" ',
        [":27: spec.worker.replicas: expected integer, got string '1'"],
    ),
    (
        "bool is not an integer",
        "    replicas: 1 ",
        "    replicas: yes ",
        ["spec.worker.replicas: expected integer, got boolean True"],
    ),
    (
        "unquoted number in args",
        '            - "8788"',
        "            - 8788",
        ["spec.worker.spec.containers[0].args[6]: expected string, got integer 8788 (quote it: '8788')"],
    ),
    (
        "int-or-string port as a number",
        "              port: http-dashboard\n              path: /health\n            initialDelaySeconds: 0",
        "              port: 8787\n              path: /health\n            initialDelaySeconds: 0",
        [
            "spec.scheduler.spec.containers[0].readinessProbe.httpGet.port: expected string, got integer 8787",
            "int-or-string",
        ],
    ),
    ("empty value", "    replicas: 1 ", "    replicas: ", ["spec.worker.replicas: empty value (null)"]),
    (
        "misspelt required key",
        "    service:\n",
        "    servic:\n",
        ["spec.scheduler.servic: unknown key (did you mean 'service'?)", "(and 1 more problem(s) after it)"],
    ),
    (
        "duplicate service port",
        "          port: 8787\n",
        "          port: 8786\n",
        ["spec.scheduler.service.ports[1]: duplicate of item [0] (port=8786, protocol=TCP)"],
    ),
    (
        "quantity as a number",
        'requests: {cpu: "1", memory: 2Gi}',
        "requests: {cpu: 1, memory: 2Gi}",
        ["spec.worker.spec.containers[0].resources.requests.cpu: expected string, got integer 1"],
    ),
    (
        "unknown top-level key",
        "spec:\n  idleTimeout",
        "specs: {}\nspec:\n  idleTimeout",
        ["specs: unknown key (did you mean 'spec'?)"],
    ),
    (
        "wrong apiVersion",
        "apiVersion: kubernetes.dask.org/v1",
        "apiVersion: kubernetes.dask.org/v2",
        ["apiVersion: 'kubernetes.dask.org/v2' is not allowed", "'kubernetes.dask.org/v1'"],
    ),
    (
        "misspelt kind",
        "kind: DaskCluster",
        "kind: DaskClustr",
        ["kind: 'DaskClustr' is not a dask-kubernetes resource (did you mean 'DaskCluster'?)"],
    ),
    (
        "misspelt metadata key",
        "  name: daskbench                     # replaced",
        "  nme: daskbench  # replaced",
        ["metadata.nme: unknown key (did you mean 'name'?)"],
    ),
    ("bad YAML", "  worker:\n    replicas", "  worker:\n   replicas", [":28: not valid YAML"]),
    (
        "key given twice",
        "    replicas: 1 ",
        "    replicas: 1\n    replicas: 2 ",
        [":28: spec.worker.replicas: key given twice"],
    ),
]


@pytest.mark.parametrize("what,old,new,expected", CLUSTER_MUTATIONS, ids=[m[0] for m in CLUSTER_MUTATIONS])
def test_mutated_cluster_manifest_fails_with_its_path(tmp_path, what, old, new, expected):
    p = _write(tmp_path, _mutate(CLUSTER_YAML.read_text(), old, new))
    with pytest.raises(ConfigError) as err:
        _validate_file(p)
    msg = str(err.value)
    assert "\n" not in msg and msg.split(":")[0].endswith(f"{p.parent.name}/m.yaml")  # the file, shown relative to cwd
    for part in expected:
        assert part in msg, (part, msg)


DICT_MUTATIONS = [
    # (what, edit of the loaded DaskCluster, expected)
    (
        "missing container name",
        lambda d: d["spec"]["worker"]["spec"]["containers"][0].pop("name"),
        "spec.worker.spec.containers[0].name: required key is missing",
    ),
    (
        "missing scheduler service",
        lambda d: d["spec"]["scheduler"].pop("service"),
        "spec.scheduler.service: required key is missing",
    ),
    ("missing worker", lambda d: d["spec"].pop("worker"), "spec.worker: required key is missing"),
    ("missing metadata.name", lambda d: d["metadata"].pop("name"), "metadata.name: required key is missing"),
    ("missing spec", lambda d: d.pop("spec"), "spec: required key is missing"),
    (
        "env value not a string",
        lambda d: d["spec"]["scheduler"]["spec"]["containers"][0]["env"].append({"name": "N", "value": 3}),
        "spec.scheduler.spec.containers[0].env[2].value: expected string, got integer 3",
    ),
    (
        "env item misspelt",
        lambda d: d["spec"]["scheduler"]["spec"]["containers"][0]["env"].append({"name": "N", "valu": "3"}),
        "env[2].valu: unknown key (did you mean 'value'?)",
    ),
    (
        "int32 overflow",
        lambda d: d["spec"]["worker"]["spec"]["containers"][0]["ports"][0].update(containerPort=2**40),
        "ports[0].containerPort: 1099511627776 does not fit in int32",
    ),
]


@pytest.mark.parametrize("what,edit,expected", DICT_MUTATIONS, ids=[m[0] for m in DICT_MUTATIONS])
def test_mutated_cluster_document_fails_with_its_path(what, edit, expected):
    doc = kube_crd.load_manifest(CLUSTER_YAML)
    edit(doc)
    with pytest.raises(ConfigError) as err:
        kube_crd.validate(doc)
    assert expected in str(err.value)
    assert str(err.value).startswith("deploy/daskcluster.yaml" if Path.cwd() == ROOT else str(CLUSTER_YAML))


OTHER_MUTATIONS = [
    (
        GPU_YAML,
        'nvidia.com/gpu: "1"',
        "nvidia.com/gpu: 1",
        "spec.worker.spec.containers[0].resources.limits.nvidia.com/gpu: expected string, got integer 1",
    ),
    (
        GPU_YAML,
        "      tolerations:",
        "      toleration:",
        "spec.worker.spec.toleration: unknown key (did you mean 'tolerations'?)",
    ),
    (GPU_YAML, "  cluster: daskbench", "  clusterName: daskbench", "spec.clusterName: unknown key"),
    (AUTOSCALER_YAML, "  maximum: 10 ", '  maximum: "10" ', "spec.maximum: expected integer, got string '10'"),
    (AUTOSCALER_YAML, "  minimum: 1 ", "  minimun: 1 ", "spec.minimun: unknown key (did you mean 'minimum'?)"),
]


@pytest.mark.parametrize(
    "path,old,new,expected", OTHER_MUTATIONS, ids=[f"{m[0].name}:{m[2].split(':')[0].strip()}" for m in OTHER_MUTATIONS]
)
def test_mutated_workergroup_and_autoscaler_fail(tmp_path, path, old, new, expected):
    p = _write(tmp_path, _mutate(path.read_text(), old, new))
    with pytest.raises(ConfigError) as err:
        _validate_file(p)
    assert expected in str(err.value)


def test_operator_conventions_beyond_the_crd():
    base = kube_crd.load_manifest(CLUSTER_YAML)
    sched = lambda d: d["spec"]["scheduler"]["spec"]["containers"][0]  # noqa: E731
    cases = [
        (
            lambda d: d["spec"]["scheduler"]["service"]["selector"].update({"dask.org/cluster-name": "other"}),
            "spec.scheduler.service.selector: must select",
        ),
        (
            lambda d: d["spec"]["scheduler"]["service"]["ports"][0].update(name="comm"),
            "spec.scheduler.service.ports: no port named 'tcp-comm'",
        ),
        (
            lambda d: sched(d)["livenessProbe"]["httpGet"].update(port="http-dashbord"),
            "livenessProbe.httpGet.port: 'http-dashbord' names no port of this container "
            "(did you mean 'http-dashboard'?)",
        ),
        (
            lambda d: d["spec"]["scheduler"]["service"]["ports"][1].update(targetPort="dashboard"),
            "ports[1].targetPort: 'dashboard' names no port of the scheduler container",
        ),
        (lambda d: sched(d).pop("env"), f"env: {kube.ROUTES_ENV} must list {API_ROUTE}, distributed.http.health"),
        (lambda d: sched(d)["env"][0].update(value="['distributed.http.health']"), f"must list {API_ROUTE}"),
        (lambda d: sched(d).update(name="sched"), "spec.scheduler.spec.containers: no container named 'scheduler'"),
    ]
    for edit, expected in cases:
        doc = copy.deepcopy(base)
        edit(doc)
        kube_crd.validate(doc)  # all of these are valid as far as the CRD goes
        with pytest.raises(ConfigError) as err:
            kube.check_cluster(doc, "x.yaml")
        assert expected in str(err.value), (expected, str(err.value))


def test_crd_schema_comes_from_the_installed_operator():
    for kind in kube_crd.KINDS:
        schema = kube_crd.crd_schema(kind)
        assert schema["type"] == "object" and "spec" in schema["properties"]
    container = kube_crd._at(kube_crd.crd_schema("DaskCluster"), "spec", "worker", "spec", "containers", "[]")
    assert {"name", "image", "args", "env", "ports", "resources", "readinessProbe"} <= set(container["properties"])
    # strictness relies on the CRD spelling PodSpec out; fail loudly if a release stops doing so
    for kind in ("DaskCluster", "DaskWorkerGroup", "DaskJob"):
        assert "x-kubernetes-preserve-unknown-fields" not in json.dumps(kube_crd.crd_schema(kind))
    kube_crd.crd_schema("DaskCluster")["properties"].clear()  # a copy: the cache is untouched
    assert "spec" in kube_crd.crd_schema("DaskCluster")["properties"]
    with pytest.raises(ConfigError, match="did you mean 'DaskJob'"):
        kube_crd.crd_schema("DaskJobs")


def test_operator_spec_builders_pass_the_schema():
    """No false alarms: what dask-kubernetes itself generates is valid (after the API server drops nulls)."""
    from dask_kubernetes.operator import make_cluster_spec, make_worker_spec

    kube_crd.validate(_prune_nulls(make_cluster_spec(name="x", n_workers=2, env={"A": "1"})), "make_cluster_spec")
    wg = {
        "apiVersion": kube_crd.API_VERSION,
        "kind": "DaskWorkerGroup",
        "metadata": {"name": "x-gpu"},
        "spec": {"cluster": "x", "worker": _prune_nulls(make_worker_spec(n_workers=1))},
    }
    kube_crd.validate(wg, "make_worker_spec")


# ----------------------------------------------------------------- loading


def test_load_manifest_is_multi_document_aware(tmp_path):
    both = CLUSTER_YAML.read_text() + "\n---\n" + AUTOSCALER_YAML.read_text() + "\n---\n"
    p = _write(tmp_path, both)
    docs = kube_crd.load_documents(p)
    assert [d["kind"] for d in docs] == ["DaskCluster", "DaskAutoscaler"]
    assert kube_crd.load_manifest(p)["kind"] == "DaskCluster"
    assert kube_crd.load_manifest(p, "DaskAutoscaler")["spec"]["maximum"] == 10
    max_line = both.splitlines().index(next(x for x in both.splitlines() if x.startswith("  maximum:"))) + 1
    assert docs[1].lines[("spec", "maximum")] == max_line and docs[1].source.endswith(f"{tmp_path.name}/m.yaml")
    with pytest.raises(ConfigError, match="no DaskWorkerGroup document \\(found: DaskCluster, DaskAutoscaler\\)"):
        kube_crd.load_manifest(p, "DaskWorkerGroup")
    with pytest.raises(ConfigError, match="more than one DaskCluster"):
        kube_crd.load_manifest(
            _write(tmp_path, CLUSTER_YAML.read_text() + "\n---\n" + CLUSTER_YAML.read_text(), "2.yaml")
        )
    with pytest.raises(ConfigError, match=":2: a document must be a mapping"):
        kube_crd.load_documents(_write(tmp_path, "---\n- a\n- b\n", "list.yaml"))
    with pytest.raises(ConfigError, match="cannot read"):
        kube_crd.load_documents(tmp_path / "nope.yaml")


# ----------------------------------------------------------------- build_spec


def test_build_spec_defaults_is_the_shipped_manifest():
    spec = kube.build_spec(KubernetesClusterConfig())
    assert type(spec) is dict and json.loads(json.dumps(spec)) == spec
    assert spec == json.loads(json.dumps(kube_crd.load_manifest(CLUSTER_YAML)))


def test_build_spec_applies_the_overrides():
    before = CLUSTER_YAML.read_text()
    routes = "['distributed.http.health', 'distributed.http.scheduler.api']"
    cfg = KubernetesClusterConfig(
        name="bench-7",
        namespace="sims",
        image="ghcr.io/me/daskbench:1.2",
        n_workers=5,
        env={"OMP_NUM_THREADS": "1", kube.ROUTES_ENV: routes},
    )
    spec = kube.build_spec(cfg)
    assert spec["metadata"] == {"name": "bench-7", "namespace": "sims"}
    assert spec["spec"]["scheduler"]["service"]["selector"] == {
        "dask.org/cluster-name": "bench-7",
        "dask.org/component": "scheduler",
    }
    assert spec["spec"]["worker"]["replicas"] == 5
    for _role, c in _containers(spec):
        assert c["image"] == "ghcr.io/me/daskbench:1.2"
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["OMP_NUM_THREADS"] == "1"
        assert env[kube.ROUTES_ENV] == routes  # replaced on the scheduler, not duplicated
        assert [e["name"] for e in c["env"]].count(kube.ROUTES_ENV) == 1
    assert CLUSTER_YAML.read_text() == before


def test_build_spec_custom_manifest_relative_to_repo_root(tmp_path):
    text = _mutate(CLUSTER_YAML.read_text(), "    replicas: 1 ", "    replicas: 4 ")
    (tmp_path / "k8s").mkdir()
    _write(tmp_path / "k8s", text, "mine.yaml")
    spec = kube.build_spec(KubernetesClusterConfig(manifest="k8s/mine.yaml"), repo_root=tmp_path)
    assert spec["spec"]["worker"]["replicas"] == 4
    with pytest.raises(ConfigError, match="cluster.manifest=k8s/other.yaml: no such file"):
        kube.build_spec(KubernetesClusterConfig(manifest="k8s/other.yaml"), repo_root=tmp_path)
    _write(tmp_path / "k8s", _mutate(text, "    replicas: 4 ", "    replica: 4 "), "bad.yaml")
    with pytest.raises(
        ConfigError, match=r"bad.yaml:27: spec.worker.replica: unknown key \(did you mean 'replicas'\?\)"
    ):
        kube.build_spec(KubernetesClusterConfig(manifest=str(tmp_path / "k8s" / "bad.yaml")))


@pytest.mark.parametrize(
    "cfg,expected",
    [
        (KubernetesClusterConfig(name="Bench_1"), "cluster.name='Bench_1': not a valid DaskCluster name"),
        (KubernetesClusterConfig(name="x" * 60), "at most"),
        (KubernetesClusterConfig(n_workers=-1), "cluster.n_workers=-1: must be a whole number >= 0"),
        (
            KubernetesClusterConfig(env={kube.ROUTES_ENV: "['distributed.http.health']"}),
            "with the cluster.* settings: spec.scheduler.spec.containers[0].env: "
            f"{kube.ROUTES_ENV} must list {API_ROUTE}",
        ),
    ],
    ids=["name", "long-name", "n_workers", "routes-env"],
)
def test_build_spec_rejects_bad_settings(cfg, expected):
    with pytest.raises(ConfigError) as err:
        kube.build_spec(cfg)
    assert expected in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------- against dask-kubernetes' own builders


def test_build_spec_matches_make_cluster_spec():
    """Everything equals what make_cluster_spec() generates for the same settings, except:

    1. the scheduler command is `dask scheduler` (make_scheduler_spec uses the
       legacy `dask-scheduler` alias, which distributed has deprecated);
    2. the scheduler gets DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES with the HTTP
       API enabled, so the operator retires workers gracefully, and
       DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0, so a task whose worker
       dies comes straight back to daskbench (as conf/cluster/address.yaml advises);
    3. `imagePullPolicy: IfNotPresent` on both containers, so an image loaded
       into a local cluster (kind, minikube) with a `latest` tag is not re-pulled.
    The worker command `dask worker` is what make_cluster_spec(worker_command=
    "dask worker") gives (its default is the legacy `dask-worker`); resources are
    passed to it because make_cluster_spec sets none unless asked.
    """
    from dask_kubernetes.operator import make_cluster_spec

    cfg = KubernetesClusterConfig(name="bench-a", image="img:1", n_workers=3, env={"FOO": "bar"})
    ours = kube.build_spec(cfg)
    resources = ours["spec"]["worker"]["spec"]["containers"][0]["resources"]
    assert ours["spec"]["scheduler"]["spec"]["containers"][0]["resources"] == resources
    theirs = _prune_nulls(
        make_cluster_spec(
            name="bench-a",
            image="img:1",
            n_workers=3,
            env={"FOO": "bar"},
            resources=resources,
            worker_command="dask worker",
        )
    )

    # the structurally relevant parts, one by one (clearer failures than one big ==)
    o_s, t_s = ours["spec"]["scheduler"], theirs["spec"]["scheduler"]
    o_sc, t_sc = o_s["spec"]["containers"][0], t_s["spec"]["containers"][0]
    o_w, t_w = ours["spec"]["worker"], theirs["spec"]["worker"]
    o_wc, t_wc = o_w["spec"]["containers"][0], t_w["spec"]["containers"][0]
    assert o_w["replicas"] == t_w["replicas"] == 3
    assert o_wc["args"] == t_wc["args"]
    assert t_sc["args"][0] == "dask-scheduler" and o_sc["args"] == ["dask", "scheduler"] + t_sc["args"][1:]  # 1.
    for key in ("name", "image", "ports", "resources"):
        assert o_wc[key] == t_wc[key] and o_sc[key] == t_sc[key], key
    for probe in ("readinessProbe", "livenessProbe"):
        assert o_sc[probe] == t_sc[probe], probe
        assert probe not in o_wc and probe not in t_wc
    assert o_s["service"] == t_s["service"]  # type, ports, targetPorts, selector
    assert [e["name"] for e in o_wc["env"]] == [e["name"] for e in t_wc["env"]] == ["FOO"]
    assert [e["name"] for e in o_sc["env"]] == [kube.ROUTES_ENV, ALLOWED_FAILURES_ENV] + [
        e["name"] for e in t_sc["env"]
    ]  # 2.
    assert {e["name"]: e["value"] for e in o_sc["env"]}[ALLOWED_FAILURES_ENV] == "0"
    assert o_sc["imagePullPolicy"] == o_wc["imagePullPolicy"] == "IfNotPresent"  # 3.
    assert "imagePullPolicy" not in t_sc and "imagePullPolicy" not in t_wc

    # ... and nothing else differs: undo 1-3 and the whole documents are equal
    undone = copy.deepcopy(ours)
    sc, wc = (undone["spec"][r]["spec"]["containers"][0] for r in ("scheduler", "worker"))
    sc["args"][:2] = ["dask-scheduler"]
    sc["env"] = [e for e in sc["env"] if e["name"] not in (kube.ROUTES_ENV, ALLOWED_FAILURES_ENV)]
    del sc["imagePullPolicy"], wc["imagePullPolicy"]
    assert undone == theirs


def test_gpu_workergroup_matches_make_worker_spec():
    """Equal to make_worker_spec(worker_command="dask worker --resources GPU=1") except
    imagePullPolicy (as above) and the toleration for tainted GPU nodes."""
    from dask_kubernetes.operator import make_worker_spec

    gpu = kube_crd.load_manifest(GPU_YAML, "DaskWorkerGroup")
    ours = json.loads(json.dumps(gpu["spec"]["worker"]))
    c = ours["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    theirs = _prune_nulls(
        make_worker_spec(
            image=c["image"],
            n_workers=ours["replicas"],
            resources=c["resources"],
            worker_command="dask worker --resources GPU=1",
        )
    )
    assert c.pop("imagePullPolicy") == "IfNotPresent"
    assert ours["spec"].pop("tolerations") == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert ours == theirs


# ----------------------------------------------------------------- without the extra, without a cluster


def _run(code, env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_extra_is_a_config_error(tmp_path):
    """A `dask_kubernetes` that fails to import (as when the extra is not installed) comes first on sys.path."""
    fake = tmp_path / "fake" / "dask_kubernetes"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named dask_kubernetes (simulated)')\n")
    code = """
        import sys
        from daskbench.cluster import kube, kube_crd
        from daskbench.errors import ConfigError
        from daskbench.config.schema import KubernetesClusterConfig
        assert "dask_kubernetes" not in sys.modules, "imported at module import time"
        for call in (lambda: kube_crd.crd_schema("DaskCluster"), lambda: kube.build_spec(KubernetesClusterConfig()),
                     lambda: kube.make_cluster(KubernetesClusterConfig()),
                     lambda: kube_crd.validate({"kind": "DaskCluster"})):
            try:
                call()
            except ConfigError as exc:
                print("ConfigError:", exc)
    """
    r = _run(code, {"PYTHONPATH": str(tmp_path / "fake")}, tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines == ["ConfigError: " + kube_crd.EXTRA_HINT] * 4
    assert kube_crd.EXTRA_HINT == "cluster=kubernetes needs the optional extra: pip install 'daskbench[kubernetes]'"


def test_make_cluster_without_a_kubernetes_api_is_a_one_line_cluster_error(tmp_path):
    """No kubeconfig and no in-cluster service account: a ClusterError, and no clean-up traceback at exit."""
    code = """
        from daskbench.cluster import kube
        from daskbench.errors import ClusterError
        from daskbench.config.schema import KubernetesClusterConfig
        try:
            kube.make_cluster(KubernetesClusterConfig(name="bench-x"), quiet=True)
        except ClusterError as exc:
            print("ClusterError:", exc)
    """
    r = _run(code, {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "no-kubeconfig")}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ClusterError: cannot create DaskCluster 'bench-x' (") and r.stdout.count("\n") == 1
    assert "kubectl delete daskcluster bench-x" in r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    assert issubclass(ClusterError, Exception)
