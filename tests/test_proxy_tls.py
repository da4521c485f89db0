"""A company network: the simulator behind TLS with a private CA, reached only through a forward proxy on
loopback — the target's host name resolves nowhere but in the proxy. Every path (simulator probe, preflight,
tokens, launches) must tunnel and trust the CA; without the CA, one line names the TLS problem."""

from __future__ import annotations

import json
import select
import socket
import socketserver
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from tests.e2e import ENV, write_scenario

pytestmark = pytest.mark.slow
NAMES = ("api.flowsim.test", "login.flowsim.test")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA and a server certificate for both host names (openssl, as an admin would)."""
    d = tmp_path_factory.mktemp("pki")

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=flowsim test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", f"/CN={NAMES[0]}")
    (d / "ext").write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in NAMES) + "\nextendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem",
         "-days", "2", "-extfile", "ext")
    return {"ca": d / "ca.pem", "cert": d / "srv.pem", "key": d / "srv.key"}


class _Tunnel(socketserver.BaseRequestHandler):
    """CONNECT host:port → a tunnel; only the test's host names resolve, and only here (to 127.0.0.1)."""

    tunnels = 0

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        host, port = target.rsplit(":", 1)
        if method != "CONNECT" or host not in NAMES:
            self.request.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection(("127.0.0.1", int(port)))
        type(self).tunnels += 1
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        socks = [self.request, upstream]
        try:
            while True:
                ready, _, _ = select.select(socks, [], [], 30)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is self.request else self.request).sendall(data)
        finally:
            upstream.close()


@pytest.fixture
def proxy() -> Iterator[str]:
    socketserver.ThreadingTCPServer.daemon_threads = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Tunnel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _run(tmp_path: Path, target: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    scenario = write_scenario(tmp_path, rate=20, duration="3s")
    return subprocess.run([sys.executable, "-m", "sim.cli", "run", str(scenario), "--target", target,
                           "--summary-json", str(tmp_path / "s.json"), "--ledger-dir", str(tmp_path / "runs"), *extra],
                          capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)


@pytest.mark.parametrize("workers", [0, 2])
def test_run_through_a_proxy_to_a_tls_simulator_with_a_private_ca(tmp_path: Path, pki: dict[str, Path],
                                                                   proxy: str, workers: int) -> None:
    """HTTPS_PROXY + SSL_CERT_FILE: preflight, tokens and every launch go through the tunnel and verify; the run
    passes with one and with two workers."""
    env = {k: v for k, v in ENV.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    env.update(HTTPS_PROXY=proxy, SSL_CERT_FILE=str(pki["ca"]))
    _Tunnel.tunnels = 0
    with SimulatorThread(default_org(), tls=(str(pki["cert"]), str(pki["key"]))) as sim:
        r = _run(tmp_path, f"https://{NAMES[0]}:{sim.port}", env, "--workers", str(workers))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["launched"] == s["succeeded"] == 60 and s["transport_errors"] == 0
    assert _Tunnel.tunnels >= 2 + workers  # the parent's look-ups and every load process tunnelled


def test_without_the_ca_preflight_fails_in_one_line_naming_tls(tmp_path: Path, pki: dict[str, Path],
                                                               proxy: str) -> None:
    """The same, without SSL_CERT_FILE: exit 2 before any load, one line naming TLS verification and the host."""
    env = {k: v for k, v in ENV.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy",
                                                              "ssl_cert_file", "ssl_cert_dir")}
    env.update(HTTPS_PROXY=proxy)
    with SimulatorThread(default_org(), tls=(str(pki["cert"]), str(pki["key"]))) as sim:
        r = _run(tmp_path, f"https://{NAMES[0]}:{sim.port}", env, "--approval", "TEST-1", "--outside-window")
        received = httpx.get(f"{sim.url}/_sim/executions", verify=False).json()["total"]  # loopback admin check
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    # The first request (the simulator probe before any credentials go out) already names the TLS failure.
    assert re.search(r"TLS verification failed for (api|login)\.flowsim\.test", r.stderr) and "SSL_CERT_FILE" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("flowsim:")]) == 1 and received == 0
