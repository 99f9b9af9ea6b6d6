"""Security on real processes: what a LocalCluster daskbench starts listens on,
and a TLS scheduler refusing clients and workers without the certificates.

Dask runs any code its clients send, so who can reach the scheduler is the
whole question: daskbench's own clusters listen on 127.0.0.1 only, and a shared
scheduler should use TLS with client certificates.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import time
from typing import Optional

import psutil
import pytest

import daskbench
from daskbench.cluster.create import connect, make_security
from daskbench.config.schema import SecurityConfig
from tests.procs import DASK, DaskProcesses, make_cert


def _listening(proc: psutil.Process):
    """(pid, ip, port) of every listening TCP socket of ``proc`` and its descendants."""
    out = []
    for p in [proc, *proc.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        out += [(p.pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def _other_addresses():
    """This machine's IPv4 addresses that are not loopback."""
    out = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback:
                out.append(a.address)
    return out


def _refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return False
    except OSError:
        return True


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # the shipped default, on a shared machine
@pytest.mark.parametrize(
    "tls, extra",
    [(False, []), (True, []), (False, ["cluster.dashboard_address=null"])],
    ids=["plain", "tls-temporary", "no-dashboard"],
)
def test_a_local_cluster_listens_on_loopback_only(tls, extra):
    """Guarantee: scheduler, dashboard (or, without one, the scheduler's /metrics
    server), workers and nannies of a LocalCluster started from the shipped
    config listen on 127.0.0.1 only; connecting to another address of this
    machine is refused. With TLS, a client without the run's certificates is
    refused too."""
    overrides = ["cluster.n_workers=2", *extra] + (["cluster.security.mode=temporary"] if tls else [])
    cfg = daskbench.plan("sweep", overrides).cluster  # the shipped conf/cluster/local.yaml
    before = {port for _, _, port in _listening(psutil.Process())}
    with connect(cfg) as client:
        sockets = [s for s in _listening(psutil.Process()) if s[2] not in before]
        ports = {port for _, _, port in sockets}
        sched_port = int(client.scheduler.address.rsplit(":", 1)[1])
        dash_port = int(client.dashboard_link.split(":")[2].split("/")[0])
        workers = client.scheduler_info()["workers"]
        assert {sched_port, dash_port} <= ports and len(ports) >= 2 + 2 * len(workers)  # workers and nannies
        assert {ip for _, ip, _ in sockets} == {"127.0.0.1"}, sockets
        assert client.scheduler.address.startswith("tls://127.0.0.1:" if tls else "tcp://127.0.0.1:")
        for host in _other_addresses():
            assert all(_refused(host, port) for port in ports), host
        if tls:  # the run's certificates exist only in memory: nobody else has them
            verdict = _tls_without_client_certificate(sched_port)
            assert verdict.startswith("refused"), verdict  # an alert (certificate required) or a closed socket
            assert len(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients))) == 2


def _scheduler_state(address, certs):
    from distributed import Client

    sec = make_security(SecurityConfig(mode="files", **certs))
    with Client(address, timeout="10s", security=sec) as c:
        return c.run_on_scheduler(
            lambda dask_scheduler: (
                sorted(str(k) for k in dask_scheduler.clients),
                sorted(w.name for w in dask_scheduler.workers.values()),
            )
        )


ATTEMPTS_PY = """
import json, sys
from distributed import Client
from daskbench.cluster.create import make_security
from daskbench.config.schema import SecurityConfig
address, other = sys.argv[1], json.loads(sys.argv[2])
tries = {"another CA": (address, make_security(SecurityConfig(mode="files", **other))),
         "plain tcp": (address.replace("tls://", "tcp://"), None)}
for what, (addr, sec) in tries.items():
    try:
        Client(addr, timeout="5s", security=sec)
        print(what, "CONNECTED")
    except Exception as exc:
        print(what, "refused:", type(exc).__name__)
"""


def _tls_without_client_certificate(port: int, ca_file: Optional[str] = None) -> str:
    """A TLS client that trusts the scheduler's CA (or anything, without ``ca_file``)
    but shows no certificate of its own."""
    import ssl

    ctx = ssl.create_default_context(cafile=ca_file)
    if ca_file is None:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"hello")
                data = tls.recv(10)  # TLS 1.3: the server's verdict on our certificate arrives here
                return f"answered {data!r}" if data else "refused: closed without answering"
        except (ssl.SSLError, OSError) as exc:
            return f"refused: {exc}"


def test_tls_scheduler_refuses_clients_and_workers_without_the_certificates(tmp_path_factory):
    """Guarantee: a `dask scheduler` with TLS (certificates as the README sets them
    up) refuses a TLS client without a client certificate, a Dask client with a
    certificate from another CA, a Dask client over plain TCP, and a worker
    without certificates; the client with the certificates runs a task."""
    import json
    import sys

    from distributed import Client

    certs = make_cert(tmp_path_factory.mktemp("certs"))
    other = make_cert(tmp_path_factory.mktemp("other"), "intruder")
    p = DaskProcesses(tmp_path_factory.mktemp("tlshosts"), tls=certs)
    p.start_scheduler()
    p.start_worker("trusted")
    try:
        p.wait_for_workers(1)
        verdict = _tls_without_client_certificate(p.port, certs["ca_file"])
        assert verdict.startswith("refused"), verdict  # an alert (certificate required) or a closed socket
        # real Dask clients, in a process of their own so a failed connection leaves nothing behind here
        r = subprocess.run(
            [sys.executable, "-c", ATTEMPTS_PY, p.address, json.dumps(other)],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        refused = {line.split(" refused:")[0] for line in r.stdout.splitlines() if " refused:" in line}
        assert refused == {"another CA", "plain tcp"} and "CONNECTED" not in r.stdout, (r.stdout, r.stderr)
        # a worker without certificates never joins
        intruder = subprocess.Popen(
            [
                DASK,
                "worker",
                p.address,
                "--name",
                "intruder",
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                "--death-timeout",
                "20",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=p.env,
            cwd=tmp_path_factory.mktemp("intruder"),
        )
        try:
            deadline = time.monotonic() + 8  # time to try, and fail
            while time.monotonic() < deadline and intruder.poll() is None:
                time.sleep(0.5)
                assert _scheduler_state(p.address, certs)[1] == ["trusted"]
        finally:
            intruder.kill()
            intruder.wait()
        clients, workers = _scheduler_state(p.address, certs)
        assert workers == ["trusted"]
        assert len(clients) == 2  # the scheduler's own fire-and-forget client and the one asking
        sec = make_security(SecurityConfig(mode="files", **certs))
        with Client(p.address, timeout="10s", security=sec) as c:
            assert c.submit(sum, [1, 2], pure=False).result(timeout=60) == 3
    finally:
        p.stop()


# -- the NetworkPolicy shipped for Kubernetes, validated offline ------------------


def _check_model(value, typ: str, path: str, errors: list) -> None:
    """Strictly check a manifest value against the Kubernetes Python client's model
    type ``typ`` (e.g. ``V1NetworkPolicy``, ``List[str]``): unknown keys, wrong types."""
    import kubernetes.client as k8s

    if typ.startswith("List["):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, v in enumerate(value):
            _check_model(v, typ[5:-1], f"{path}[{i}]", errors)
    elif typ.startswith("Dict["):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            errors.append(f"{path}: expected a mapping of strings")
    elif typ in ("str", "int", "bool"):
        if type(value).__name__ != typ:
            errors.append(f"{path}: expected {typ}, got {type(value).__name__}")
    elif typ == "object":  # int-or-string, e.g. a port
        if not isinstance(value, (int, str)):
            errors.append(f"{path}: expected an integer or a string")
    else:
        model = getattr(k8s, typ)
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a mapping ({typ})")
            return
        by_json = {j: p for p, j in model.attribute_map.items()}
        for key, v in value.items():
            if key not in by_json:
                errors.append(f"{path}.{key}: unknown key for {typ}")
            else:
                _check_model(v, model.openapi_types[by_json[key]], f"{path}.{key}", errors)


def test_shipped_networkpolicy_is_valid_and_matches_the_daskcluster():
    """The NetworkPolicy in deploy/security/ passes a strict check against the
    Kubernetes API types, selects the DaskCluster's pods and opens only its ports."""
    import yaml

    from tests.conftest import ROOT

    doc = yaml.safe_load((ROOT / "deploy/security/networkpolicy.yaml").read_text())
    assert doc["apiVersion"] == "networking.k8s.io/v1" and doc["kind"] == "NetworkPolicy"
    errors: list = []
    _check_model(doc, "V1NetworkPolicy", "networkpolicy", errors)
    assert not errors, errors
    cluster = yaml.safe_load((ROOT / "deploy/daskcluster.yaml").read_text())
    name = cluster["metadata"]["name"]
    spec = doc["spec"]
    assert spec["podSelector"] == {"matchLabels": {"dask.org/cluster-name": name}}
    assert spec["policyTypes"] == ["Ingress"]
    inside, driver, operator = spec["ingress"]
    assert inside == {"from": [{"podSelector": spec["podSelector"]}]}  # the cluster's own pods
    scheduler_ports = {
        p["containerPort"] for c in cluster["spec"]["scheduler"]["spec"]["containers"] for p in c["ports"]
    }
    for rule in (driver, operator):
        assert {p["port"] for p in rule["ports"]} == scheduler_ports == {8786, 8787}
