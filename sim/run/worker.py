"""A worker process's wiring: its handlers of the master's messages (``sim.run.lifecycle.WorkerSide``) registered on
Locust's runner, the run they make current, and what its reports to the master carry. No locust import:
``sim.run.locust_user`` calls :func:`init_worker` with the runner."""

from __future__ import annotations

import os
from typing import Any

from sim import logs
from sim.load import identity
from sim.run.coordination import GRANT, START, STOP
from sim.run.fleet import GIVE_UP_S, ProcessRun
from sim.run.lifecycle import WorkerSide
from sim.run.pacer import WorkerLease
from sim.run.plan import RunPlan
from sim.run.process import die_with_parent

__all__ = ["init_worker", "forked_worker"]


def init_worker(environment: Any, runner: Any) -> None:
    """A worker (``runner``: Locust's WorkerRunner): its run begins with the master's START."""
    me = runner.client_id
    forked_worker(environment.parsed_options)
    identity.warm()  # while the master resolves its plan: this worker makes identities
    environment.flowsim = ProcessRun(environment, None, None, role="worker")

    def run() -> ProcessRun:
        current: ProcessRun = environment.flowsim
        return current

    def prepare(plan: RunPlan, lease: WorkerLease, ready: Any) -> Any:
        environment.flowsim = ProcessRun(environment, None, None, role="worker")  # this run's, current from now
        return run().prepare_worker(plan, lease, me, side.clock, ready)

    side = WorkerSide(me, send=lambda kind, data: runner.send_message(kind, data), prepare=prepare,
                      start=lambda _engine, t0: run().go(t0), finish=lambda _engine: run().finish(),
                      log=logs.get_logger(component="locust").error, give_up_s=GIVE_UP_S)

    def on_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        engine = run().engine
        if engine is not None:
            data["flowsim"] = engine.stats.drain()
            data["flowsim_busy"] = engine.busy

    environment.events.report_to_master.add_listener(on_report)
    runner.register_message(START, lambda environment, msg, **_: side.on_start(msg.data))
    runner.register_message(GRANT, lambda environment, msg, **_: side.on_grant(msg.data))
    runner.register_message(STOP, lambda environment, msg, **_: side.on_stop(msg.data))


def forked_worker(opts: Any) -> None:
    """A worker that Locust forked from its master (``--processes``) inherited the master's command line: it
    writes none of the master's files (Locust clears some, not ``--json-file``), and it ends with its master."""
    if getattr(opts, "processes", None):
        opts.json_file = None
        die_with_parent(os.getppid())
