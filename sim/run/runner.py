"""``flowsim run``'s parent side: one Locust run of a resolved plan — master (or single process) plus local
workers — and the summary the master writes.

The plan goes to the master as a file (``<ledger_dir>/<run_id>/plan.json``, kept with the ledgers);
workers get nothing but the master's address: everything else comes in the master's start message.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sim.errors import FlowsimError
from typing import TYPE_CHECKING

from sim.load.ledger import run_dir
from sim.run.process import REPEAT_WINDOW_S, Interrupted, kill_group, signals_interrupt, spawn, terminate

if TYPE_CHECKING:  # imported where used: `flowsim run` starts Locust before it imports more than it needs to
    from sim.results.summary import RunSummary
    from sim.run.plan import RunPlan

_STOP_TIMEOUT_S = 45.0
"""How long the master may take to stop the fleet and write the summary before it is killed."""

__all__ = ["RunOptions", "Fleet", "run_locust", "locust_command", "locustfile_path", "free_port", "write_plan"]


def locustfile_path() -> str:
    """The adapter module's file, handed to ``locust -f`` (the repository's locustfile.py re-exports it)."""
    spec = importlib.util.find_spec("sim.run.locust_user")  # finds the file without importing locust here
    if spec is None or spec.origin is None:
        raise FlowsimError("flowsim's Locust adapter (sim/run/locust_user.py) is missing from the installation")
    return spec.origin


def free_port() -> int:
    """A free loopback port, so that concurrent runs on one machine never share a master port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How to run a plan: outputs and processes. What to run is the plan's."""

    workers: int = 0
    summary_json: str | None = None
    locust_html: str | None = None
    csv: str | None = None
    quiet: bool = False
    """Keep Locust's own output (stats tables, logs) off the terminal (capacity steps)."""
    prometheus: str | None = None
    """HOST:PORT for the master's live metrics endpoint (``/metrics``)."""
    live_view: bool = False
    """Draw the live terminal view (``sim.run.terminal``) on this process's stderr, a TTY."""


def write_plan(plan: RunPlan) -> Path:
    path = run_dir(plan.ledger_dir, plan.run_id) / "plan.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan.to_dict(), indent=2))
    return path


def locust_command(*, plan_path: str, summary_json: str, locust_html: str | None = None, csv: str | None = None,
                   workers: int = 0, master_port: int = 5557, prometheus: str | None = None,
                   live_file: str | None = None, locust_stats: str | None = None) -> list[str]:
    """The Locust command of a ``flowsim run``: one process, or a master that forks its local workers."""
    cmd = [sys.executable, "-m", "locust", "-f", locustfile_path()]
    # Users and the end of the run are flowsim's load shape's (sim.run.locust_user.FlowsimShape): the plan's
    # concurrency while its schedule runs, a safety deadline after it. No -u / -r / --run-time.
    cmd += ["--flowsim-plan", str(plan_path), "--headless", "--flowsim-summary-json", summary_json,
            "--only-summary", "--stop-timeout", "5"]
    if locust_stats:  # Locust's own tables go to this file (+ .json), not in front of flowsim's summary
        cmd += ["--json-file", locust_stats]
    if locust_html:
        cmd += ["--html", locust_html]
    if prometheus:
        cmd += ["--flowsim-prometheus", prometheus]
    if live_file:
        cmd += ["--flowsim-live-file", live_file]
    if csv:
        cmd += ["--csv", csv]
    if workers:
        # Locust's --processes: the master forks its workers once it has imported everything (one import on the
        # machine, not one per process: the first launch comes seconds sooner on a small machine); it expects
        # them as with --expect-workers, and they connect to --master-port. --enable-rebalancing: when a worker
        # dies, Locust moves its users (concurrency) to the others; flowsim moves its share of the rate itself.
        cmd += ["--processes", str(workers), "--master-bind-host", "127.0.0.1", "--master-bind-port",
                str(master_port), "--master-host", "127.0.0.1", "--master-port", str(master_port),
                "--enable-rebalancing"]
    return cmd


def run_locust(plan: RunPlan, opts: RunOptions) -> tuple[RunSummary, int | None]:
    """One Locust run of ``plan`` (see :class:`Fleet`): the master's summary, and the signal that cut it short."""
    with Fleet(opts) as fleet:
        return fleet.run(plan)


class Fleet:
    """The Locust processes of one run — master (or single process) and the local workers it forks — started before the plan
    exists, so that they import and start up while the parent resolves the plan (preflight): the master waits
    for the plan file. Leaving the ``with`` block ends every one of them, whatever happened.

    On SIGINT or SIGTERM during :meth:`run` the master gets SIGTERM: it stops the schedule on every worker, gives
    in-flight launches a grace to finish, writes the summary and quits; the workers follow. A second signal kills
    everything at once.
    """

    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self._handoff = Path(tempfile.mkdtemp(prefix="flowsim-"))
        self.plan_path = self._handoff / "plan.json"
        self.summary_path = Path(opts.summary_json) if opts.summary_json else self._handoff / "summary.json"
        self.live_file = str(self._handoff / "live.json") if opts.live_view else None
        self.procs: list[subprocess.Popen[bytes]] = []
        self._stack = ExitStack()

    def __enter__(self) -> Fleet:
        opts = self.opts
        self.summary_path.unlink(missing_ok=True)
        port = free_port()
        master = locust_command(plan_path=str(self.plan_path), summary_json=str(self.summary_path),
                                locust_html=opts.locust_html, csv=opts.csv, workers=opts.workers, master_port=port,
                                prometheus=opts.prometheus, live_file=self.live_file,
                                locust_stats=str(self._handoff / "locust-stats"))
        # Quiet: nothing on the terminal. Live view: the children's output goes through the view (above its table).
        out: int | None = subprocess.DEVNULL if opts.quiet else subprocess.PIPE if self.live_file else None
        err: int | None = subprocess.STDOUT if self.live_file and not opts.quiet else out
        env = {**os.environ, "FLOWSIM_LOG_LEVEL": "warning"} if opts.quiet else None
        try:
            view = None
            if self.live_file:
                from sim.run.terminal import LiveView

                view = self._stack.enter_context(LiveView(self.live_file))
            self.procs.append(spawn(master, stdout=out, stderr=err, env=env))  # its workers are its children
            if view is not None and self.procs[-1].stdout is not None:
                view.forward(self.procs[-1].stdout)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End every process of the fleet (those still running); again: nothing more to do."""
        try:
            terminate(self.procs, timeout_s=10)  # workers end with their master; nothing outlives the fleet
        finally:
            self._stack.close()
            shutil.rmtree(self._handoff, ignore_errors=True)

    def run(self, plan: RunPlan) -> tuple[RunSummary, int | None]:
        """Hand the master ``plan`` (and keep a copy with the ledgers) and wait for the run's summary."""
        write_plan(plan)
        tmp = self.plan_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(plan.to_dict()))
        os.replace(tmp, self.plan_path)  # the master polls for the file: it never reads half of one
        signum: int | None = None
        procs = self.procs
        with signals_interrupt():
            try:
                procs[0].wait()
            except Interrupted as first:
                signum = first.signum
                print(f"flowsim: stopping: what is in flight gets a few seconds, then the summary; a second "
                      f"Ctrl-C (after {REPEAT_WINDOW_S:g} s) ends everything at once, unsummarized", file=sys.stderr)
                try:
                    procs[0].send_signal(signal.SIGTERM)  # the master stops everything, writes its summary
                    procs[0].wait(timeout=_STOP_TIMEOUT_S)
                except (Interrupted, subprocess.TimeoutExpired):  # insisted, or the master hangs: kill it all
                    for p in procs:
                        kill_group(p)
        if not self.summary_path.exists():
            if signum is not None:
                raise Interrupted(signum)
            raise FlowsimError(f"Locust ended (exit {procs[0].returncode}) without writing a summary; see its output")
        from sim.results.summary import RunSummary

        return RunSummary.from_dict(json.loads(self.summary_path.read_text())), signum
