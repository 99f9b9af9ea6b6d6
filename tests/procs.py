"""Real `dask scheduler` / `dask worker` processes on 127.0.0.1 for tests, and TLS files."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import daskbench

DASK = str(Path(sys.executable).parent / "dask")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(folder: Path, name: str = "node") -> dict:
    """A self-signed CA certificate for 127.0.0.1/localhost, usable as CA, server and client."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return {"ca_file": str(cert_path), "cert_file": str(cert_path), "key_file": str(key_path)}


class DaskProcesses:
    """A scheduler and workers started as separate processes, each in its own folder."""

    def __init__(self, root: Path, tls: Optional[dict] = None, port: Optional[int] = None):
        self.root, self.tls = root, tls
        self.port = port or free_port()
        self.protocol = "tls" if tls else "tcp"
        self.address = f"{self.protocol}://127.0.0.1:{self.port}"
        self.procs: List[subprocess.Popen] = []
        self.scheduler: Optional[subprocess.Popen] = None
        # workers run elsewhere: they cannot import a user's module from the test's folder;
        # they do import the daskbench under test (a worktree's, not the one installed)
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.env["PYTHONPATH"] = str(Path(daskbench.__file__).resolve().parents[1])

    def _tls_args(self) -> List[str]:
        if not self.tls:
            return []
        return [
            "--tls-ca-file",
            self.tls["ca_file"],
            "--tls-cert",
            self.tls["cert_file"],
            "--tls-key",
            self.tls["key_file"],
        ]

    def _start(self, args: List[str], name: str) -> subprocess.Popen:
        cwd = self.root / name
        cwd.mkdir(parents=True, exist_ok=True)
        log = open(cwd / "log.txt", "ab")
        p = subprocess.Popen(
            args,
            cwd=cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(p)
        return p

    def start_scheduler(self) -> None:
        self.scheduler = self._start(
            [
                DASK,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--protocol",
                self.protocol,
                "--no-dashboard",
                *self._tls_args(),
            ],
            "scheduler",
        )

    def start_worker(self, name: str, resources: Optional[str] = None) -> subprocess.Popen:
        args = [
            DASK,
            "worker",
            self.address,
            "--name",
            name,
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
            *self._tls_args(),
        ]
        if resources:
            args += ["--resources", resources]
        return self._start(args, f"worker-{name}")

    def wait_for_workers(self, n: int, timeout: float = 60) -> dict:
        """Block until ``n`` workers are connected; returns {name: address}."""
        from distributed import Client

        from daskbench.cluster.create import make_security
        from daskbench.config.schema import SecurityConfig

        sec = make_security(SecurityConfig(mode="files", **self.tls)) if self.tls else None
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with Client(self.address, timeout="5s", security=sec) as c:
                    c.wait_for_workers(n, timeout=max(deadline - time.time(), 1))
                    return {w["name"]: a for a, w in c.scheduler_info()["workers"].items()}
            except (OSError, TimeoutError):
                time.sleep(0.5)
        raise TimeoutError(f"{n} workers did not join {self.address}; see logs in {self.root}")

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait()

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = []
