"""Running Locust for flowsim: the target session (embedded simulator, credentials, preflight) and one
Locust run (master or local, plus local workers) that returns the summary the master writes."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sim.errors import ConfigError, FlowsimError
from sim.load.locust_args import free_port, locust_command
from sim.load.preflight import FlowCheck, preflight
from sim.load.scenario import Scenario, Target, resolve_target

__all__ = ["EmbeddedSimulator", "Session", "RunOptions", "run_locust", "new_run_id", "analytics"]

EMBEDDED_CLIENT = ("flowsim-load-client", "flowsim-local-secret")


def new_run_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + os.urandom(2).hex()


class EmbeddedSimulator:
    """``flowsim serve`` on a free loopback port, for the length of a command."""

    def __init__(self, org: str | None = None) -> None:
        cmd = [sys.executable, "-m", "sim.cli", "serve", "--port", "0", "--log-level", "warning"]
        if org:
            cmd += ["--org", org]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on" not in line:
            self.proc.kill()
            raise FlowsimError("the embedded simulator did not start (see messages above)")
        self.url = line.strip().rsplit(" ", 1)[-1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclass
class Session:
    """A target made ready: the embedded simulator started if asked for, credentials read, preflight run."""

    scenario: Scenario
    target_name: str
    sim: EmbeddedSimulator | None = None
    target: Target | None = None
    checks: list[FlowCheck] = field(default_factory=list)

    def __enter__(self) -> Session:
        self.sim = EmbeddedSimulator() if self.target_name == "embedded" else None
        try:
            self.target = resolve_target(self.target_name, embedded_url=self.sim.url if self.sim else None)
            cid, sec = self.credentials()
            self.checks = preflight(self.scenario, self.target, client_id=cid, client_secret=sec)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sim:
            self.sim.stop()
            self.sim = None

    @property
    def embedded(self) -> bool:
        """True when the target is a flowsim simulator to be used with the built-in test client."""
        return self.sim is not None or self._flowsim_simulator

    @functools.cached_property
    def _flowsim_simulator(self) -> bool:
        """A `flowsim serve` target and no credentials in the environment: use its built-in test client,
        so scenarios run unchanged against it."""
        sc = self.scenario
        if self.target is None or (os.environ.get(sc.client_id_env) and os.environ.get(sc.client_secret_env)):
            return False
        try:
            r = httpx.get(f"{self.target.api_url}/_sim/health", timeout=3)
            return r.status_code == 200 and r.json().get("status") == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    def credentials(self) -> tuple[str, str]:
        if self.embedded:
            return EMBEDDED_CLIENT
        sc = self.scenario
        cid, sec = os.environ.get(sc.client_id_env), os.environ.get(sc.client_secret_env)
        if not cid or not sec:
            raise ConfigError(f"set {sc.client_id_env} and {sc.client_secret_env} in the environment "
                              "(OAuth client credentials; never in the scenario file)", source=sc.source)
        return cid, sec

    @property
    def preflight_ok(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    scenario_path: str
    rate: float | None = None
    duration: str | None = None
    workers: int = 0
    ledger_dir: str = "runs"
    summary_json: str | None = None
    html: str | None = None
    csv: str | None = None
    run_id: str | None = None
    abort_error_rate: float | None = None
    quiet: bool = False
    """Keep Locust's own output (stats tables, logs) off the terminal (capacity steps)."""


def analytics(checks: list[FlowCheck]) -> dict[str, Any]:
    """How analytics tell this run apart (reference §6): names are no dimension, flows and divisions are."""
    divisions = sorted({c.division_id for c in checks})
    return {
        "test_division_ids": divisions,
        "test_flow_ids": sorted({c.flow_id for c in checks}),
        "this_run_filter": {"type": "or", "predicates": [
            {"type": "dimension", "dimension": "flowId", "operator": "matches", "value": c.flow_id} for c in checks]},
        "note": (f"this run's executions count only under test division(s) {', '.join(divisions)}; production "
                 "aggregates queries select production divisions (divisionId matches ...) and so never see "
                 "them. The aggregates filter has no negation, and execution names are not a dimension."),
    }


def run_locust(session: Session, opts: RunOptions) -> dict[str, Any]:
    """One Locust run against the session's target; returns the master's summary."""
    sc = session.scenario
    if session.target is None:
        raise FlowsimError("session not started")
    run_id = opts.run_id or new_run_id()
    summary_path = Path(opts.summary_json) if opts.summary_json else Path(tempfile.mkdtemp(prefix="flowsim-")) / "summary.json"
    duration_s = sc.duration_s
    port = free_port()
    master = locust_command(scenario=opts.scenario_path, target=session.target.api_url, embedded=session.embedded,
                            run_id=run_id, rate=opts.rate, duration=opts.duration, ledger_dir=opts.ledger_dir,
                            summary_json=str(summary_path), users=sc.max_concurrency,
                            run_time_s=duration_s + sc.follow_timeout_s + 30, html=opts.html, csv=opts.csv,
                            workers=opts.workers, abort_error_rate=opts.abort_error_rate, master_port=port)
    out = subprocess.DEVNULL if opts.quiet else None
    env = {**os.environ, "FLOWSIM_LOG_LEVEL": "warning"} if opts.quiet else None
    if not session.embedded:  # workers and master read real credentials from the environment themselves
        session.credentials()
    procs = [subprocess.Popen(master, stdout=out, stderr=out, env=env)]
    try:
        for _ in range(opts.workers):
            procs.append(subprocess.Popen(locust_command(worker=True, scenario=opts.scenario_path, master_port=port,
                                                         ledger_dir=opts.ledger_dir), stdout=out, stderr=out, env=env))
        interrupted = False
        try:
            procs[0].wait()
        except KeyboardInterrupt:
            interrupted = True
            procs[0].send_signal(signal.SIGINT)  # the master writes its summary on the way out
            procs[0].wait(timeout=60)
    finally:
        for p in procs[1:]:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    if not summary_path.exists():
        raise FlowsimError(f"Locust ended (exit {procs[0].returncode}) without writing a summary; see its output")
    summary: dict[str, Any] = json.loads(summary_path.read_text())
    summary["analytics"] = analytics(session.checks)
    summary["interrupted"] = interrupted
    summary_path.write_text(json.dumps(summary, indent=2))
    return summary
