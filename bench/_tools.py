"""Helpers shared by the benchmarks: starting the simulator and nginx pinned to a core, parsing tool output."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ORG = ROOT / "sim" / "platform" / "default_org.toml"
TEST_FLOW = "7e57f1e0-0000-4000-8000-000000000001"
LAUNCH_BODY = ('{"flowId":"%s","name":"flowsim-bench-1","inputData":{"Flow.customerName":"Ada Example",'
               '"Flow.customerEmail":"ada@example.com","Flow.customerPhone":"+12025550142",'
               '"Flow.loadTestRunId":"bench","Flow.priority":3}}' % TEST_FLOW)
STATIC_RESPONSE = ('{"id":"3f1c2e4a-9b7d-4e2f-8a6c-1d2e3f4a5b6c","name":"flowsim-bench-1","flowVersion":{"id":"1.0",'
                   '"name":"flowsim Load Test Workflow","selfUri":"/api/v2/flows/%s/versions/1.0"},'
                   '"selfUri":"/api/v2/flows/executions/3f1c2e4a-9b7d-4e2f-8a6c-1d2e3f4a5b6c"}' % TEST_FLOW)


def require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        print(f"bench: missing {', '.join(missing)}; install with: apt-get install -y wrk nginx-light",
              file=sys.stderr)
        raise SystemExit(2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unlimited_org(tmp: Path) -> Path:
    """The default org with the per-token rate limit lifted, so the bench measures the server itself."""
    text = DEFAULT_ORG.read_text().replace("rate_limit_per_window = 300 ", "rate_limit_per_window = 1000000000 ")
    path = tmp / "bench_org.toml"
    path.write_text(text)
    return path


def start_simulator(core: int, org: Path) -> tuple[subprocess.Popen[str], str]:
    flowsim = str(Path(sys.executable).parent / "flowsim")
    proc = subprocess.Popen(["taskset", "-c", str(core), flowsim, "serve", "--port", "0", "--org", str(org),
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    if not url.startswith("http://"):
        proc.kill()
        raise SystemExit("bench: simulator did not start")
    return proc, url


def start_nginx(core: int, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """nginx answering every request with a fixed launch response: the machine's HTTP ceiling."""
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
error_log {tmp}/nginx-error.log;
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp};
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{STATIC_RESPONSE}'; }}
  }}
}}
""")
    proc = subprocess.Popen(["taskset", "-c", str(core), "nginx", "-c", str(conf), "-p", str(tmp)])
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.2)
            return proc, f"http://127.0.0.1:{port}"
        except httpx.TransportError:
            subprocess.run(["sleep", "0.05"])
    proc.kill()
    raise SystemExit("bench: nginx did not start")


def get_token(url: str) -> str:
    r = httpx.post(f"{url}/oauth/token", auth=("flowsim-load-client", "flowsim-local-secret"),
                   data={"grant_type": "client_credentials"})
    r.raise_for_status()
    return str(r.json()["access_token"])


def wrk(url: str, token: str, *, core: int, seconds: int, connections: int = 50) -> float:
    """Closed-loop maximum requests/s of POST launches (wrk, one thread on ``core``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {token}"\nwrk.body = \'{LAUNCH_BODY}\'\n')
    out = subprocess.run(["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", f.name,
                          f"{url}/api/v2/flows/executions"], capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"bench: {non2xx.group(1)} non-2xx answers from {url}; the bench would be measuring errors")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def open_loop(url: str, token: str, *, core: int, rate_per_s: int, seconds: int) -> dict[str, float]:
    """Open-loop latency at a fixed, evenly spaced rate (bench/_openloop.py on ``core``)."""
    out = subprocess.run(["taskset", "-c", str(core), sys.executable, str(Path(__file__).parent / "_openloop.py"),
                          url, "/api/v2/flows/executions", str(rate_per_s), str(seconds), LAUNCH_BODY,
                          f"Bearer {token}"], capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(rows: list[list[Any]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in rows)
