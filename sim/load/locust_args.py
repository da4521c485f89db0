"""The Locust command lines ``flowsim run`` starts (master or local, and workers)."""

from __future__ import annotations

import socket
import sys
from importlib import resources
from pathlib import Path

__all__ = ["locust_command", "locustfile_path"]


def locustfile_path() -> str:
    return str(Path(str(resources.files("sim.load").joinpath("locustfile.py"))))


def free_port() -> int:
    """A free loopback port, so that concurrent runs on one machine never share a master port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust_command(*, scenario: str, worker: bool = False, target: str = "", embedded: bool = False,
                   run_id: str = "", rate: float | None = None, duration: str | None = None, ledger_dir: str = "runs",
                   summary_json: str = "", users: int = 1, run_time_s: float = 0, html: str | None = None,
                   csv: str | None = None, workers: int = 0, abort_error_rate: float | None = None,
                   master_port: int = 5557) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", locustfile_path(), "--flowsim-scenario", scenario,
           "--flowsim-ledger-dir", ledger_dir]
    if worker:
        return cmd + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)]
    cmd += ["--headless", "-u", str(users), "-r", str(users), "--run-time", f"{int(run_time_s)}s",
            "--flowsim-target", target, "--flowsim-run-id", run_id, "--flowsim-summary-json", summary_json,
            "--only-summary", "--stop-timeout", "5"]
    if embedded:
        cmd.append("--flowsim-embedded")
    if rate is not None:
        cmd += ["--flowsim-rate", str(rate)]
    if duration:
        cmd += ["--flowsim-duration", duration]
    if html:
        cmd += ["--html", html]
    if csv:
        cmd += ["--csv", csv]
    if abort_error_rate is not None:
        cmd += ["--flowsim-abort-error-rate", str(abort_error_rate)]
    if workers:
        # --enable-rebalancing: when a worker dies, Locust moves its users (concurrency) to the others;
        # flowsim moves its share of the arrival rate itself.
        cmd += ["--master", "--expect-workers", str(workers), "--master-bind-host", "127.0.0.1",
                "--master-bind-port", str(master_port), "--enable-rebalancing"]
    return cmd
