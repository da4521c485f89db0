"""Locust wiring — the only module of flowsim that imports locust: a thin adapter from Locust's events
to the plan (``sim.run.plan``), the coordination state machines (``sim.run.coordination``) and the
engine (``sim.run.engine``).

``FlowUser`` is one unit of concurrency: it waits for a due launch, runs it, and waits again. The
arrival rate comes from the plan's schedule, not from the user count; ``-u`` is the scenario's
``max_concurrency``. Works standalone (``locust -f locustfile.py``, web UI included) and in Locust's
distributed mode. The plan is resolved once: by ``flowsim run`` (``--flowsim-plan``), or here on the
master / single process from ``--flowsim-scenario`` and friends. Workers take everything from the
master's start message.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, User, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from sim import logs
from sim.errors import FlowsimError
from sim.results.summary import RunSummary
from sim.run.coordination import ACK, DONE, FATAL, GRANT, REFUSED, START, STOP, Grant, MasterCoordinator, WorkerLease
from sim.run.engine import Ticket
from sim.run.fleet import ProcessRun, Role
from sim.run.live import LiveRules
from sim.run.metrics import Snapshot
from sim.run.plan import PlanMismatch, RunPlan
from sim.run.prepare import Prepared, prepare_from_options
from sim.run import webform
from sim.run.webui import install_login, install_tab, serve_metrics

__all__ = ["FlowUser", "FlowsimShape"]

START_DELAY_S = 2.0
"""Between test start and launch 0: time for (workers and) users to set up and for the token pool to be fetched.
(0.5 s for one process was tried: the pool's fetch and the users' start then overlapped the first launches and
stalled their answers for ~0.3 s on a busy machine. Shortening it needs the pool fetched *before* t0 is set.)"""
STOP_GRACE_S = 5.0
"""A run cut short: how long in-flight launches get to finish (and be written to the ledger)."""
GIVE_UP_S = STOP_GRACE_S - 1.5
"""After a stop, each process writes what is still in flight as unanswered (may have run) this much later: a
worker's records and final stats then reach the master within its grace."""


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    # The web UI's form shows the run options (a START resolves a new plan from them); the plan file,
    # the outputs and the metrics address are start-up options only.
    def a(*args: Any, ui: bool = False, **kw: Any) -> None:
        parser.add_argument(*args, include_in_web_ui=ui, **kw)

    # Loopback unless told: Locust's own defaults are every interface, with no login (sim.run.webform).
    parser.set_defaults(web_host="127.0.0.1", master_bind_host="127.0.0.1")

    a("--flowsim-plan", default="", help="a resolved run plan (JSON) from `flowsim run`; replaces the options below")
    a("--flowsim-scenario", default=os.environ.get("FLOWSIM_SCENARIO", "scenarios/smoke.toml"), ui=True,
      help="scenario TOML file")
    a("--flowsim-target", default="", ui=True, help="override the scenario's target (URL, region, embedded)")
    a("--flowsim-run-id", default="", help="run id (default: generated)")
    a("--flowsim-rate", default="", ui=True, help="one constant arrival rate (launches/s) instead of the stages")
    a("--flowsim-duration", default="", ui=True, help="duration with --flowsim-rate, e.g. 20s, 5m")
    a("--flowsim-ledger-dir", default="runs", help="where ledgers go (<dir>/<run_id>/)")
    a("--flowsim-summary-json", default="", help="write the run summary JSON here")
    # Never from the form (sim.run.webform.pin): the vendor's rules are agreed on the command line.
    a("--flowsim-approval", default="", help="the vendor's approval reference, for load tests against a real org")
    a("--flowsim-outside-window", action="store_true", help="another test window was agreed with the vendor")
    a("--flowsim-prometheus", default="", help="HOST:PORT: serve live metrics for Prometheus at /metrics")
    a("--flowsim-live-file", default="", help="write the live view's figures here every second (from `flowsim run`)")
    a("--flowsim-abort-error-rate", type=float, default=0.0, ui=True,
      help="stop early when failures + 429s exceed this share of launches over 3 s (0: never)")


def _resolve_plan(opts: Any) -> tuple[RunPlan, Prepared | None]:
    """The plan from `flowsim run`, or resolved here (preflight included) in plain Locust use."""
    if opts.flowsim_plan:
        return RunPlan.from_dict(json.loads(Path(opts.flowsim_plan).read_text())), None
    return _prepare(opts, run_id=opts.flowsim_run_id,
                    processes=getattr(opts, "expect_workers", 1) if getattr(opts, "master", False) else 1)


def _prepare(opts: Any, *, run_id: str, processes: int) -> tuple[RunPlan, Prepared]:
    """A plan (preflight included) from the ``--flowsim-*`` options, as typed or as the web UI's form set them."""
    return prepare_from_options(
        scenario=opts.flowsim_scenario, target=opts.flowsim_target, rate=opts.flowsim_rate,
        duration=opts.flowsim_duration, run_id=run_id, ledger_dir=opts.flowsim_ledger_dir,
        abort_error_rate=opts.flowsim_abort_error_rate, processes=processes,
        rules=LiveRules(approval=opts.flowsim_approval or None, outside_window=opts.flowsim_outside_window))


def _role(env: Environment) -> Role:
    return ("master" if isinstance(env.runner, MasterRunner) else "worker" if isinstance(env.runner, WorkerRunner)
            else "local")


def _run(env: Environment) -> ProcessRun | None:
    """This process's current (or last) run."""
    return getattr(env, "flowsim", None)


def _form_options(opts: Any) -> tuple[Any, ...]:
    """The options a web-UI form can change between runs (a change means a new plan)."""
    return tuple(getattr(opts, k, None) for k in ("flowsim_scenario", "flowsim_target", "flowsim_rate",
                                                  "flowsim_duration", "flowsim_approval", "flowsim_outside_window",
                                                  "flowsim_abort_error_rate"))


def _next_run(environment: Environment) -> ProcessRun | None:
    """The run a START begins (master / single process). ``--flowsim-plan``: the one plan, once. Plain
    Locust: the plan resolved at start-up for the first run if the form left the options alone, else
    resolved anew from the form (web UI). A bad form value: logged, shown in the flowsim tab, no run."""
    prev = _run(environment)
    opts = environment.parsed_options
    assert opts is not None
    startup: dict[str, Any] = getattr(environment, "flowsim_startup", {})
    webform.pin(opts, startup)  # only the form's own fields change a run; the rest is the command line's
    if prev is not None and prev.t0 is None and prev.plan is not None and (
            opts.flowsim_plan or prev.options == _form_options(opts)):
        return prev
    if opts.flowsim_plan:
        return None  # flowsim run's plan runs once
    processes = max(1, environment.runner.worker_count) if isinstance(environment.runner, MasterRunner) else 1
    try:
        webform.check_form(opts, startup)
        plan, prepared = _prepare(opts, run_id="", processes=processes)
    except FlowsimError as exc:
        if prev is not None:
            prev.error = str(exc)
        logs.get_logger(component="locust").error("plan.refused", reason=str(exc))
        return None
    if prev is not None and prev.prepared is not None and prev.prepared is not prepared:
        prev.prepared.close()
        prev.prepared = None
    run = ProcessRun(environment, plan, prepared, role=_role(environment))
    run.options = _form_options(opts)
    environment.flowsim = run  # type: ignore[attr-defined]
    return run


class FlowsimShape(LoadTestShape):
    """Users = the plan's concurrency for as long as the schedule runs, then the end: the web UI's START
    needs no user count, and a run ends with its schedule (headless: quit; web UI: stop, ready again)."""

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        env = self.runner.environment
        run = _run(env)
        if run is None or run.finished or not run.started:  # a START: this run begins
            run = _next_run(env)
            if run is None:
                return None
            run.started = True
        if run.finished or run.complete or time.time() > run.deadline:
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
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        environment.flowsim = ProcessRun(environment, None, None, role="worker")  # type: ignore[attr-defined]
        me = runner.client_id

        def on_start(environment: Environment, msg: Any, **_: Any) -> None:
            d = msg.data
            run = _run(environment)
            assert run is not None
            if run.engine is None or run.plan is None or run.plan.run_id != d["plan"].get("run_id"):
                try:
                    plan = RunPlan.from_dict(d["plan"])
                except PlanMismatch as exc:
                    run.log.error("plan.refused", reason=str(exc))
                    runner.send_message(REFUSED, {"worker": me, "reason": str(exc)})
                    return
                if run.engine is not None:  # the last run's engine (web UI: a run after a run)
                    _finish(run)
                run = ProcessRun(environment, None, None, role="worker")
                environment.flowsim = run  # type: ignore[attr-defined]
                lease = WorkerLease(me)
                if d.get("grant"):
                    lease.apply(Grant.from_dict(d["grant"]))
                run.start_engine(plan, d["t0"], lease, me)
            assert run.engine is not None
            runner.send_message(ACK, {"worker": me, "ledger": run.engine.ledger.path.name})

        def on_grant(environment: Environment, msg: Any, **_: Any) -> None:
            run = _run(environment)
            if run is not None and run.engine is not None:
                run.engine.grant(Grant.from_dict(msg.data))
                runner.send_message(ACK, {"worker": me})

        def on_stop(environment: Environment, msg: Any, **_: Any) -> None:
            run = _run(environment)
            if run is not None and run.engine is not None:
                # done (with final stats) follows once in-flight work has ended or was written as unanswered
                run.engine.stop(grace_s=GIVE_UP_S)

        def on_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
            run = _run(environment)
            if run is not None and run.engine is not None:
                data["flowsim"] = run.engine.stats.drain()
                data["flowsim_busy"] = run.engine.busy

        environment.events.report_to_master.add_listener(on_report)
        runner.register_message(START, on_start)
        runner.register_message(GRANT, on_grant)
        runner.register_message(STOP, on_stop)
        return

    opts = environment.parsed_options
    problems = webform.check_exposure(web_host=getattr(opts, "web_host", None), web_ui=environment.web_ui is not None,
                                      web_login=bool(getattr(opts, "web_login", False)),
                                      password_set=bool(os.environ.get("FLOWSIM_WEB_PASSWORD")))
    if problems:
        print(f"flowsim: {problems[0]}", file=sys.stderr)
        sys.exit(2)
    if environment.web_ui is not None and getattr(opts, "web_login", False):
        install_login(environment.web_ui, os.environ["FLOWSIM_WEB_PASSWORD"])
    if isinstance(runner, MasterRunner) and not webform.is_loopback(getattr(opts, "master_bind_host", "*") or "*"):
        logs.get_logger(component="locust").warning(
            "master.exposed", bind=getattr(opts, "master_bind_host", "*"),
            note="whoever reaches this port can join the run as a worker: keep it on a private network")
    environment.flowsim_startup = dict(vars(opts))  # type: ignore[attr-defined]
    try:
        plan, prepared = _resolve_plan(opts)
    except FlowsimError as exc:
        print(f"flowsim: {exc}", file=sys.stderr)
        sys.exit(2)
    first = ProcessRun(environment, plan, prepared, role=_role(environment))
    first.options = _form_options(environment.parsed_options)
    environment.flowsim = first  # type: ignore[attr-defined]
    if prepared is not None and prepared.sim is not None:
        first.log.info("simulator.embedded", url=prepared.sim.url)
    if not environment.host:  # the web UI shows the target (flowsim's target option chooses it, not this field)
        environment.host = plan.target.api_url
    if environment.shape_class is not None and not getattr(environment.parsed_options, "headless", True):
        environment.stop_timeout = max(environment.stop_timeout or 0, STOP_GRACE_S)  # STOP never kills a launch
    if environment.shape_class is not None and getattr(environment.parsed_options, "headless", False):
        # Headless with a load shape, Locust's main blocks on the shape before it installs its SIGTERM
        # handler: until then SIGTERM would kill this process uncounted. Halt the run instead (the schedule
        # stops everywhere, in-flight launches finish); the shape then ends the test as after any run, and
        # the summary is written (INTERRUPTED). Calling runner.quit() here would race Locust's own
        # shutdown into stopping the users twice.
        def on_sigterm() -> None:
            run = _run(environment)
            if run is None:
                return
            run.log.warning("run.signal", signal="SIGTERM", action="stopping the run, then counting it")
            if run.t0 is None:
                run.complete = run.interrupted = True  # not begun: the shape ends the test at its next tick
            else:
                gevent.spawn(_halt, run)

        gevent.signal_handler(signal.SIGTERM, on_sigterm)

    def view() -> tuple[Snapshot | None, RunSummary | None, str | None]:
        run = _run(environment)
        if run is None:
            return None, None, None
        return (run.snapshot() if run.t0 is not None else None), run.result, run.error

    def thresholds() -> Any:
        run = _run(environment)
        return run.plan.scenario.thresholds if run is not None and run.plan is not None else None

    app = environment.web_ui.app if environment.web_ui is not None else None
    if environment.web_ui is not None and app is not None:
        install_tab(app, environment.web_ui.template_args, view, thresholds)

    def snapshot() -> Snapshot | None:
        run = _run(environment)
        return run.snapshot() if run is not None else None

    serve_metrics(environment.web_ui, getattr(environment.parsed_options, "flowsim_prometheus", ""), snapshot, first.log)
    if isinstance(runner, MasterRunner):
        def on_ack(environment: Environment, msg: Any, **_: Any) -> None:
            run = _run(environment)
            if run is not None and run.coord is not None:
                run.coord.ack(time.time(), msg.data["worker"], msg.data.get("ledger"))

        def on_done(environment: Environment, msg: Any, **_: Any) -> None:
            run = _run(environment)
            if run is None:
                return
            if msg.data.get("stats"):
                run.live.merge(msg.data["stats"])
            if run.coord is not None:
                run.coord.done(msg.data["worker"])

        def on_refused(environment: Environment, msg: Any, **_: Any) -> None:
            run = _run(environment)
            if run is None:
                return
            run.log.error("worker.refused", worker=msg.data["worker"], reason=msg.data["reason"])
            if run.coord is not None:
                run.coord.refused(msg.data["worker"], msg.data["reason"])

        def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
            run = _run(environment)
            if run is not None and "flowsim" in data and not run.finished:
                run.live.merge(data["flowsim"])
                run.busy[client_id] = int(data.get("flowsim_busy", 0))

        def on_fatal(environment: Environment, msg: Any, **_: Any) -> None:
            run = _run(environment)
            if run is not None:
                run.abort(msg.data["reason"], fatal=True)

        runner.register_message(FATAL, on_fatal)
        runner.register_message(ACK, on_ack)
        runner.register_message(DONE, on_done)
        runner.register_message(REFUSED, on_refused)
        # Locust passes these listeners no environment, so they close over this one.
        environment.events.worker_report.add_listener(on_worker_report)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kw: Any) -> None:
    run = _run(environment)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # Workers start on the master's START message. (A worker can get Locust's spawn message, and so
        # test_start, before its init event has run and before environment.runner is even set.)
        return
    if run is None or run.t0 is not None or run.finished:  # no shape (UI picker "Default"): a run per START
        run = _next_run(environment)
    if run is None or run.plan is None:
        return
    plan = run.plan
    now = time.time()
    if isinstance(runner, MasterRunner):
        run.coord = MasterCoordinator(plan.schedule, plan.to_dict(), start_delay_s=START_DELAY_S)
        run.send(run.coord.start(now, run.live_workers(with_users=False)))
        run.t0 = run.coord.t0
        t0 = run.t0 if run.t0 is not None else now + START_DELAY_S
        run.log.info("run.started", run_id=plan.run_id, workers=len(run.coord.members), scheduled=plan.schedule.total)
        gevent.spawn(run.coordinate)
    else:
        me = f"local-{os.getpid()}"
        t0 = now + START_DELAY_S
        run.start_engine(plan, t0, WorkerLease.whole(me, plan.schedule.total), me)
    run.deadline = t0 + plan.scenario.duration_s + plan.scenario.follow_timeout_s + 30
    gevent.spawn(run.progress, getattr(environment.parsed_options, "flowsim_live_file", ""))
    if plan.abort_error_rate or plan.scenario.thresholds.abort_on_fail:
        gevent.spawn(run.guard, plan.abort_error_rate, plan.scenario.thresholds)


def _halt(run: ProcessRun) -> None:
    """Stop the schedule everywhere (nothing is sent or counted as missed after this) and give in-flight
    launches a bounded grace to finish and reach the ledgers. Before Locust stops (or kills) the users."""
    if run.halted or run.t0 is None:
        return
    run.halted = True
    run.interrupted = not run.complete
    if run.coord is not None and (run.interrupted or run.aborted):
        run.send(run.coord.stop())
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and not run.coord.finished(time.time()):
            gevent.sleep(0.1)
    run.complete = True  # ends the coordination, progress and guard loops
    if run.engine is not None:
        run.engine.stop(grace_s=GIVE_UP_S)
        run.engine.wait_finished(STOP_GRACE_S)


def _finish(run: ProcessRun) -> None:
    """Count the run (master / single process: the summary, from the ledgers) — once."""
    if run.finished or run.t0 is None:
        return
    _halt(run)
    run.finished = True
    if run.engine is not None:
        run.engine.close()
    if run.role == "worker":
        return
    summary = run.summary(interrupted=run.interrupted and run.aborted is None)
    run.result = summary
    path = getattr(run.env.parsed_options, "flowsim_summary_json", "")
    if summary is not None:
        run.log.info("run.finished", run_id=summary.run_id, launched=summary.launched,
                     achieved_rate_per_s=summary.achieved_rate_per_s, verdict=summary.verdict)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(summary.to_dict(), indent=2))


def _on_test_stopping(environment: Environment, **_kw: Any) -> None:
    run = _run(environment)
    if run is not None:
        _halt(run)


def _on_test_stop(environment: Environment, **_kw: Any) -> None:
    run = _run(environment)
    if run is not None:
        _finish(run)


def _on_quitting(environment: Environment, **_kw: Any) -> None:
    """Registered in init, after the runner's own listener: Locust fires quitting listeners in reverse, so
    this runs before the runner quits its workers. On a signal Locust fires quitting *before* it stops the
    test, so the run is stopped and counted here while the fleet still talks."""
    run = _run(environment)
    if run is None:
        return
    _finish(run)
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
        run = _run(self.environment)
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
