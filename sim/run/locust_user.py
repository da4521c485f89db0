"""Locust wiring — the only module of flowsim that imports locust: a thin adapter from Locust's events to the plan
(``sim.run.plan``), the coordination state machines (``sim.run.coordination``) and the engine (``sim.run.engine``).

``FlowUser`` is one unit of concurrency: it waits for a due launch, runs it, and waits again. The arrival rate comes
from the plan's schedule, not from the user count. Works standalone (``locust -f locustfile.py``, web UI included)
and in Locust's distributed mode. The plan is resolved once: by ``flowsim run`` (``--flowsim-plan``), or here on
the master / single process from ``--flowsim-scenario`` and friends; workers take it from the master's START.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import gevent
from locust import LoadTestShape, User, events, task
from locust.env import Environment
from locust.rpc import Message
from locust.runners import MasterRunner, WorkerRunner

from sim import logs
from sim.errors import FlowsimError
from sim.load import identity
from sim.run.coordination import ACK, DONE, FATAL, REFUSED
from sim.run.stream import LEDGER
from sim.run.engine import Ticket
from sim.run.fleet import STOP_GRACE_S, ProcessRun, Role
from sim.run.starts import (add_options, await_workers, check_start, current, form_options, halt_on_sigterm,
                            next_run, resolve_plan)
from sim.run.worker import init_worker
from sim.run import webhook
from sim.run.webui import check_exposure, install_start_check, install_views

__all__ = ["FlowUser", "FlowsimShape"]

events.init_command_line_parser.add_listener(add_options)


def _role(env: Environment) -> Role:
    return ("master" if isinstance(env.runner, MasterRunner) else "worker" if isinstance(env.runner, WorkerRunner)
            else "local")


def _processes(environment: Environment) -> int:
    return max(1, environment.runner.worker_count) if isinstance(environment.runner, MasterRunner) else 1


def _next_run(environment: Environment) -> ProcessRun | None:
    return next_run(environment, role=_role(environment), processes=_processes(environment))


class FlowsimShape(LoadTestShape):
    """Users = the plan's concurrency for as long as the schedule runs, then the end: the web UI's START
    needs no user count, and a run ends with its schedule (headless: quit; web UI: stop, ready again)."""

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        env = self.runner.environment
        run = current(env)
        if run is None or run.life.counted or not run.life.begun:  # a START: this run begins
            run = _next_run(env)
            if run is None:
                return None
            run.life.begin()
        if run.life.complete or time.time() > run.deadline:
            return None
        assert run.plan is not None
        return run.plan.users, float(run.plan.users)


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    logs.configure(level=os.environ.get("FLOWSIM_LOG_LEVEL", "info"))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would cost more than the request
    environment.events.quitting.add_listener(_on_quitting)
    environment.events.test_stopping.add_listener(_on_test_stopping)
    environment.events.test_stop.add_listener(_on_test_stop)
    # Locust passes this listener no environment: it closes over this one.
    environment.events.spawning_complete.add_listener(lambda **_: _on_spawning_complete(environment))
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        init_worker(environment, runner)
        return

    opts = environment.parsed_options
    check_exposure(environment, master=isinstance(runner, MasterRunner))
    environment.flowsim_startup = dict(vars(opts))  # type: ignore[attr-defined]
    if not isinstance(runner, MasterRunner):
        identity.warm()  # while the plan is still being resolved: it makes identities
    try:
        plan, prepared = resolve_plan(opts)
    except FlowsimError as exc:
        print(f"flowsim: {exc}", file=sys.stderr)
        sys.exit(2)
    first = ProcessRun(environment, plan, prepared, role=_role(environment))
    first.options = form_options(environment.parsed_options)
    environment.flowsim = first  # type: ignore[attr-defined]
    if prepared is not None and prepared.sim is not None:
        first.log.info("simulator.embedded", url=prepared.sim.url)
    if not environment.host:  # the web UI shows the target (flowsim's target option chooses it, not this field)
        environment.host = plan.target.api_url
    if environment.shape_class is not None and not getattr(environment.parsed_options, "headless", True):
        environment.stop_timeout = max(environment.stop_timeout or 0, STOP_GRACE_S)  # STOP never kills a launch
    if environment.shape_class is not None and getattr(environment.parsed_options, "headless", False):
        halt_on_sigterm(environment)
    install_views(environment, lambda: current(environment), first.log)
    if environment.web_ui is not None and not getattr(opts, "flowsim_plan", ""):
        install_start_check(environment.web_ui.app, lambda form: check_start(
            environment, form, role=_role(environment), processes=_processes(environment)))
    if isinstance(runner, MasterRunner):
        _init_master(environment, runner)


def _init_master(environment: Environment, runner: MasterRunner) -> None:
    """The master's handlers of its workers' messages: plain methods of the current run (``ProcessRun``)."""
    def handler(method: str) -> Any:
        def handle(environment: Environment, msg: Any, **_: Any) -> None:
            run = current(environment)
            if run is not None:
                getattr(run, method)(msg.data)
        return handle

    runner.register_message(ACK, handler("on_ack"))
    runner.register_message(DONE, handler("on_done"))
    runner.register_message(REFUSED, handler("on_refused"))
    runner.register_message(FATAL, handler("on_worker_fatal"))
    runner.register_message(LEDGER, handler("on_ledger"))

    def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        run = current(environment)  # Locust passes this listener no environment: it closes over this one
        if run is not None:
            run.on_report(client_id, data)

    environment.events.worker_report.add_listener(on_worker_report)
    setattr(runner, "quit", lambda: _quit(runner))
    await_workers(runner, environment.parsed_options)


def _quit(runner: MasterRunner) -> None:
    """Locust's ``MasterRunner.quit`` (2.47), waiting for the workers' last word — their quit, after their final
    stats — instead of a fixed 0.5 s (at most that long). Locust quits twice (at the test's end, then as it shuts
    down): the second finds no worker left and does not wait. A run's end returns ~1 s sooner with workers."""
    runner.stop(send_stop_to_client=False)
    for client in runner.clients.all:
        runner.server.send_to_client(Message("quit", None, client.id))
    deadline = time.monotonic() + 0.5
    while runner.clients.all and time.monotonic() < deadline:
        gevent.sleep(0.02)
    runner.greenlet.kill(block=True)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kw: Any) -> None:
    run = current(environment)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # Workers start on the master's START message. (A worker can get Locust's spawn message, and so
        # test_start, before its init event has run and before environment.runner is even set.)
        return
    if run is None or run.t0 is not None or run.life.counted:  # no shape (UI picker "Default"): a run per START
        _next_run(environment)  # it begins once its users are spawned (below)


def _on_spawning_complete(environment: Environment) -> None:
    """Every user of this START is spawned (on the master: on every worker): the run begins — launch 0 is set
    only now, so no launch is due while users are still being created or tokens fetched. (Locust fires this
    again when users are rebalanced mid-run: a run begins once.)"""
    run = current(environment)
    if isinstance(environment.runner, WorkerRunner) or run is None or run.plan is None:
        return
    if run.t0 is None and not run.life.complete:
        run.begin(master=isinstance(environment.runner, MasterRunner))


def _on_test_stopping(environment: Environment, **_kw: Any) -> None:
    run = current(environment)
    if run is not None:
        run.halt()


def _on_test_stop(environment: Environment, **_kw: Any) -> None:
    run = current(environment)
    if run is not None:
        run.finish()


def _on_quitting(environment: Environment, **_kw: Any) -> None:
    """Registered in init, after the runner's own listener: Locust fires quitting listeners in reverse, so
    this runs before the runner quits its workers. On a signal Locust fires quitting *before* it stops the
    test, so the run is stopped and counted here while the fleet still talks."""
    run = current(environment)
    if run is None:
        return
    run.finish()
    webhook.stop(environment)
    if run.prepared is not None:
        run.prepared.close()
        run.prepared = None


class FlowUser(User):
    """One unit of concurrency: takes the next due launch, runs it, repeats."""

    def on_start(self) -> None:
        self._client: Any = None
        self._identity: Any = None

    @task
    def launch(self) -> None:
        run = current(self.environment)
        engine = run.engine if run is not None else None
        if engine is None:
            gevent.sleep(0.05)
            return
        if self._client is None:
            self._client = engine.new_client()
        ticket: Ticket | None = engine.take()
        if ticket is None:  # this process's share is done: stay idle (briefly: Locust is about to stop us)
            gevent.sleep(0.05)
            return
        if engine.scenario.identity_per == "user":
            if self._identity is None:
                self._identity = engine.identity(ticket.seq)
            identity = self._identity
        else:
            identity = engine.identity(ticket.seq)
        engine.execute(self._client, ticket, identity)

    def on_stop(self) -> None:
        if self._client is not None:
            self._client.close()
