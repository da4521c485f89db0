"""Helpers for end-to-end tests: a scenario file, `flowsim run` as a user runs it, what the simulator received,
the ledger, the Locust fleet of a run. Shared by every test module that runs real Locust."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from sim.load.ledger import ledger_files, read_records
from tests.conftest import LOAD_CLIENT, TEST_FLOW

__all__ = ["SCENARIO", "ENV", "write_scenario", "run_command", "start_run", "flowsim_run", "sim_records", "launches",
           "fleet_pids", "cmdlines", "wait_for_launches"]

SCENARIO = """
[scenario]
name = "e2e"
target = "embedded"
max_concurrency = {concurrency}
follow = {follow}
poll_interval_s = 0.5
follow_timeout_s = 20
tokens_per_client = {tokens}
max_retry_wait_s = 10

[[flows]]
id = "{flow}"
[flows.input]
"Flow.customerName" = "{{identity.full_name}}"
"Flow.customerPhone" = "{{identity.phone}}"
"Flow.customerEmail" = "{{identity.email}}"
"Flow.identityId" = "{{identity.id}}"

{stages}

[thresholds]
{thresholds}
"""


def write_scenario(tmp_path: Path, *, rate: float, duration: str, follow: bool = False, tokens: int = 12,
                   concurrency: int = 50, thresholds: str = "launch_error_rate = 0.01", stages: str = "") -> Path:
    p = tmp_path / "scenario.toml"
    stages = stages or f'[[stages]]\nduration = "{duration}"\nrate = {rate}\n'
    p.write_text(SCENARIO.format(concurrency=concurrency, follow=str(follow).lower(), tokens=tokens, flow=TEST_FLOW,
                                 stages=stages, thresholds=thresholds))
    return p


CAN_MAKE_HOSTS = os.geteuid() == 0 and all(shutil.which(c) for c in ("ip", "unshare", "ss", "openssl"))
"""Network and mount namespaces can be made here (root and iproute2: CI): tests/test_hosts.py runs."""

ENV = {**os.environ, "GENESYS_CLIENT_ID": LOAD_CLIENT[0], "GENESYS_CLIENT_SECRET": LOAD_CLIENT[1]}


def run_command(scenario: Path, tmp_path: Path, target: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sim.cli", "run", str(scenario), "--target", target, "--summary-json",
            str(tmp_path / "summary.json"), "--ledger-dir", str(tmp_path / "runs"), *extra]


def start_run(scenario: Path, tmp_path: Path, target: str, *extra: str, **popen: Any) -> subprocess.Popen[str]:
    """`flowsim run` in the background, for tests that act on it while it runs."""
    return subprocess.Popen(run_command(scenario, tmp_path, target, *extra), env=ENV, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def flowsim_run(scenario: Path, tmp_path: Path, target: str, *extra: str, timeout: float = 180) -> tuple[int, dict[str, Any], str]:
    summary = tmp_path / "summary.json"
    r = subprocess.run(run_command(scenario, tmp_path, target, *extra), capture_output=True, text=True,
                       timeout=timeout, env=ENV, cwd=tmp_path)
    data = json.loads(summary.read_text()) if summary.exists() else {}
    return r.returncode, data, r.stdout + r.stderr


def sim_records(url: str, run_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/_sim/executions", params={"name_prefix": f"flowsim-{run_id}-", "limit": 100000})
    return list(r.json()["entities"])


def launches(tmp_path: Path, run_id: str) -> list[dict[str, Any]]:
    return [r for r in read_records(ledger_files(tmp_path / "runs" / run_id)) if r["event"] == "launch"]


def cmdlines() -> list[tuple[str, list[str]]]:
    """Every process on the machine: (pid, argv)."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            out.append((d.name, (d / "cmdline").read_text().split("\0")))
        except OSError:
            continue
    return [(pid, cmd) for pid, cmd in out if pid.isdigit()]


def fleet_pids(tmp_path: Path) -> tuple[int, list[int]]:
    """The Locust master of the run writing under ``tmp_path``, and the workers it forked (``--processes``: the same
    command line, the master their parent)."""
    ours = [int(p) for p, c in cmdlines() if "--processes" in c and any(str(tmp_path) in a for a in c)]
    parent = {p: _ppid(p) for p in ours}
    master = next(p for p in ours if parent[p] not in ours)
    return master, sorted(p for p in ours if parent[p] == master)


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def wait_for_launches(tmp_path: Path, n: int, timeout: float = 60) -> None:
    """Until the run's ledgers hold ``n`` launches (a start-up on a busy machine takes what it takes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = [f for f in (tmp_path / "runs").rglob("ledger-*.jsonl") if f.parent.name != "local"]
        if sum(1 for r in read_records(files) if r["event"] == "launch") >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {n} launches after {timeout} s")
