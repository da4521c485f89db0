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
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, make_wsgi_app
from locust import User, events, task
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from sim import logs
from sim.errors import FlowsimError
from sim.load.stats import RunStats
from sim.run.metrics import Snapshot, registry_for
from sim.load.thresholds import MIN_LIVE_LAUNCHES, Thresholds, judge, live_observed
from sim.results.summary import RunSummary
from sim.run.coordination import (
    ACK, DONE, FATAL, GRANT, REFUSED, START, STOP, Grant, MasterCoordinator, Send, WorkerLease,
)
from sim.run.engine import Engine, Ticket
from sim.run.live import LiveRules
from sim.run.plan import PlanMismatch, RunPlan
from sim.run.prepare import Prepared, prepare_from_options
from sim.run.tally import tally

__all__ = ["FlowUser"]

START_DELAY_S = 2.0
"""Between test start and launch 0: time for (workers and) users to set up."""
STOP_GRACE_S = 5.0
"""A run cut short: how long in-flight launches get to finish (and be written to the ledger)."""


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    # Not in the web UI's form yet: the plan is resolved at start-up, so a form value would be ignored.
    def a(*args: Any, **kw: Any) -> None:
        parser.add_argument(*args, include_in_web_ui=False, **kw)

    a("--flowsim-plan", default="", help="a resolved run plan (JSON) from `flowsim run`; replaces the options below")
    a("--flowsim-scenario", default=os.environ.get("FLOWSIM_SCENARIO", "scenarios/smoke.toml"),
      help="scenario TOML file")
    a("--flowsim-target", default="", help="override the scenario's target (URL, region, embedded)")
    a("--flowsim-run-id", default="", help="run id (default: generated)")
    a("--flowsim-rate", default="", help="one constant arrival rate (launches/s) instead of the stages")
    a("--flowsim-duration", default="", help="duration with --flowsim-rate, e.g. 20s, 5m")
    a("--flowsim-ledger-dir", default="runs", help="where ledgers go (<dir>/<run_id>/)")
    a("--flowsim-summary-json", default="", help="write the run summary JSON here")
    a("--flowsim-approval", default="", help="the vendor's approval reference, for load tests against a real org")
    a("--flowsim-outside-window", action="store_true", help="another test window was agreed with the vendor")
    a("--flowsim-prometheus", default="", help="HOST:PORT: serve live metrics for Prometheus at /metrics")
    a("--flowsim-abort-error-rate", type=float, default=0.0,
      help="stop early when failures + 429s exceed this share of launches over 3 s (0: never)")


def _resolve_plan(opts: Any) -> tuple[RunPlan, Prepared | None]:
    """The plan from `flowsim run`, or resolved here (preflight included) in plain Locust use."""
    if opts.flowsim_plan:
        return RunPlan.from_dict(json.loads(Path(opts.flowsim_plan).read_text())), None
    return prepare_from_options(
        scenario=opts.flowsim_scenario, target=opts.flowsim_target, rate=opts.flowsim_rate,
        duration=opts.flowsim_duration, run_id=opts.flowsim_run_id, ledger_dir=opts.flowsim_ledger_dir,
        abort_error_rate=opts.flowsim_abort_error_rate,
        processes=getattr(opts, "expect_workers", 1) if getattr(opts, "master", False) else 1,
        rules=LiveRules(approval=opts.flowsim_approval or None, outside_window=opts.flowsim_outside_window))


class _Run:
    """This process's part of a run, attached to the Locust Environment (no module globals)."""

    def __init__(self, env: Environment, plan: RunPlan | None, prepared: Prepared | None) -> None:
        self.env = env
        self.plan = plan
        self.prepared = prepared
        self.engine: Engine | None = None
        self.coord: MasterCoordinator | None = None
        self.live = RunStats()  # master: merged worker reports, for progress and the abort guard
        self.busy: dict[str, int] = {}
        """master: each worker's launches in progress at its last report."""
        self.result: RunSummary | None = None
        self.t0: float | None = None
        self.complete = False
        """The schedule is over (or the run was stopped): the loops end."""
        self.finished = False
        """Quitting has been handled: the summary is written."""
        self.aborted: str | None = None
        self.fatal = False
        """The run was stopped because it could not go on (not a threshold): exit 2."""
        self.log = logs.get_logger(component="locust")

    @property
    def runner(self) -> Any:
        return self.env.runner

    def send(self, messages: list[Send]) -> None:
        for m in messages:
            self.runner.send_message(m.kind, m.data, client_id=m.to)

    def report(self, **kw: Any) -> None:
        self.env.events.request.fire(**kw)

    def stats(self) -> RunStats | None:
        if isinstance(self.runner, MasterRunner):
            return self.live
        return self.engine.stats if self.engine else None

    # -- single process / worker ----------------------------------------------------------------------
    def start_engine(self, plan: RunPlan, t0: float, lease: WorkerLease, worker: str) -> Engine:
        self.plan, self.t0 = plan, t0
        self.engine = Engine(plan, t0=t0, worker=worker, lease=lease, report=self.report, on_done=self.on_engine_done,
                             on_fatal=self.on_fatal)
        self.engine.start()
        self.log.info("run.started", run_id=plan.run_id, worker=worker, target=plan.target.api_url,
                      scheduled=self.engine.schedule.total)
        return self.engine

    def on_engine_done(self) -> None:
        if isinstance(self.runner, WorkerRunner):
            # The final stats ride with "done": the master may quit before the next regular report.
            stats = self.engine.stats.drain() if self.engine is not None else None
            try:
                self.runner.send_message(DONE, {"worker": self.runner.client_id, "stats": stats})
            except Exception as exc:  # the master may be gone already (it quit, or died)
                self.log.warning("run.done_not_delivered", error=type(exc).__name__)
        else:
            self.complete = True
            self.log.info("run.schedule_complete")
            gevent.spawn_later(0.2, self.runner.quit)

    def on_fatal(self, reason: str) -> None:
        """The run cannot go on (e.g. the client may not launch): stop it everywhere, once."""
        if isinstance(self.runner, WorkerRunner):
            self.runner.send_message(FATAL, {"worker": self.runner.client_id, "reason": reason})
        else:
            self.abort(reason, fatal=True)

    def abort(self, reason: str, *, fatal: bool = False) -> None:
        if self.aborted is not None:
            return
        self.aborted, self.fatal = reason, fatal
        if fatal:
            self.log.error("run.stopped", reason=reason)
        else:
            self.log.warning("run.aborted", reason=reason)
        self.complete = True
        gevent.spawn_later(0.1, self.runner.quit)

    # -- master ---------------------------------------------------------------------------------------
    def live_workers(self, *, with_users: bool) -> list[str]:
        nodes = sorted(self.runner.clients.values(), key=lambda n: self.runner.get_worker_index(n.id))
        return [n.id for n in nodes if n.state != STATE_MISSING and (n.user_count > 0 or not with_users)]

    def coordinate(self) -> None:
        """The master's loop: invitations, Locust's missing workers, re-splits and renewals, the end."""
        coord = self.coord
        assert coord is not None
        while not self.complete:
            gevent.sleep(0.25)
            now = time.time()
            for wid, node in list(self.runner.clients.items()):
                if node.state == STATE_MISSING:
                    coord.missing(wid)
            # A newcomer is invited once Locust has given it users: before that, every launch would be missed.
            self.send(coord.connected(now, self.live_workers(with_users=True)))
            before = coord.members
            self.send(coord.tick(now))
            if coord.members != before:
                self.log.warning("workers.changed", members=len(coord.members), lost=coord.lost,
                                 from_seq=coord.epochs[-1].from_seq)
            if coord.finished(now):
                self.complete = True
                self.log.info("run.schedule_complete", workers=len(coord.members))
                gevent.spawn_later(0.5, self.runner.quit)

    # -- both -----------------------------------------------------------------------------------------
    def progress(self) -> None:
        """A line every 5 s: target vs achieved rate, in flight, errors, p95."""
        last = 0
        while not self.complete and self.plan is not None and self.t0 is not None:
            gevent.sleep(5.0)
            stats = self.stats()
            if stats is None:
                continue
            launched = stats.counters["launched"]
            elapsed = time.time() - self.t0
            self.log.info("run.progress", elapsed_s=round(elapsed, 1),
                          target_rate_per_s=round(self.plan.schedule.rate_at(elapsed - 2.5), 2),
                          achieved_rate_per_s=round((launched - last) / 5.0, 2), launched=launched,
                          errors=launched - stats.counters["accepted"], missed=stats.counters["missed_starts"],
                          p95_ms=stats.percentiles("launch").p95)
            last = launched

    def guard(self, limit: float | None, th: Thresholds) -> None:
        """Stop the run when failures and 429s flood (``limit``), or when a threshold named in
        ``abort_on_fail`` fails on the figures so far: never keep hammering a target past its knee."""
        while not self.complete and self.t0 is not None:
            gevent.sleep(1.0)
            stats = self.stats()
            if stats is None:
                continue
            reason = stats.flood(int(time.time() - self.t0) - 1, 3, limit) if limit else None
            if reason is None and th.abort_on_fail and stats.counters["launched"] >= MIN_LIVE_LAUNCHES:
                failing = [r for r in judge(live_observed(stats), th, th.abort_on_fail)
                           if not r.passed and r.observed is not None]
                if failing:
                    r = failing[0]
                    reason = (f"threshold {r.name} failed live (abort_on_fail): observed {r.observed}, limit "
                              f"{r.limit} — {r.describes}")
            if reason:
                self.abort(reason)
                return

    def snapshot(self) -> Snapshot | None:
        """What the metrics endpoint shows: the run so far (or as it ended)."""
        stats = self.stats()
        if self.plan is None or self.t0 is None or stats is None:
            return None
        in_flight = self.engine.busy if self.engine is not None else (sum(self.busy.values()) if self.coord else None)
        return Snapshot(run_id=self.plan.run_id, scenario=self.plan.scenario.name,
                        target_rate_per_s=self.plan.schedule.rate_at(max(0.0, time.time() - self.t0)),
                        stats=stats, in_flight=in_flight,
                        verdict=self.result.verdict if self.result is not None else "RUNNING")

    def summary(self, *, interrupted: bool) -> RunSummary | None:
        if self.plan is None or self.t0 is None:
            return None
        if self.coord is not None:
            expected = {w.ledger for w in self.coord.workers.values() if w.ledger}
            took_part = sum(1 for w in self.coord.workers.values() if w.state in ("member", "lost"))
        else:
            expected = {self.engine.ledger.path.name} if self.engine else set()
            took_part = 1
        return tally(self.plan, self.t0, expected_ledgers=expected, live=self.live, workers=took_part,
                     workers_lost=tuple(self.coord.lost if self.coord else ()), aborted=self.aborted,
                     fatal=self.fatal, interrupted=interrupted)


def _run(env: Environment) -> _Run | None:
    return getattr(env, "flowsim", None)


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    logs.configure(level=os.environ.get("FLOWSIM_LOG_LEVEL", "info"))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would cost more than the request
    environment.events.quitting.add_listener(_on_quitting)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        run = _Run(environment, None, None)
        environment.flowsim = run  # type: ignore[attr-defined]
        me = runner.client_id

        def on_start(environment: Environment, msg: Any, **_: Any) -> None:
            d = msg.data
            if run.engine is None:
                try:
                    plan = RunPlan.from_dict(d["plan"])
                except PlanMismatch as exc:
                    run.log.error("plan.refused", reason=str(exc))
                    runner.send_message(REFUSED, {"worker": me, "reason": str(exc)})
                    return
                lease = WorkerLease(me)
                if d.get("grant"):
                    lease.apply(Grant.from_dict(d["grant"]))
                run.start_engine(plan, d["t0"], lease, me)
            assert run.engine is not None
            runner.send_message(ACK, {"worker": me, "ledger": run.engine.ledger.path.name})

        def on_grant(environment: Environment, msg: Any, **_: Any) -> None:
            if run.engine is not None:
                run.engine.grant(Grant.from_dict(msg.data))
                runner.send_message(ACK, {"worker": me})

        def on_stop(environment: Environment, msg: Any, **_: Any) -> None:
            if run.engine is not None:
                run.engine.stop()  # done (with final stats) follows once in-flight launches have ended

        def on_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
            if run.engine is not None:
                data["flowsim"] = run.engine.stats.drain()
                data["flowsim_busy"] = run.engine.busy

        environment.events.report_to_master.add_listener(on_report)
        runner.register_message(START, on_start)
        runner.register_message(GRANT, on_grant)
        runner.register_message(STOP, on_stop)
        return

    try:
        plan, prepared = _resolve_plan(environment.parsed_options)
    except FlowsimError as exc:
        print(f"flowsim: {exc}", file=sys.stderr)
        sys.exit(2)
    run = _Run(environment, plan, prepared)
    environment.flowsim = run  # type: ignore[attr-defined]
    if prepared is not None and prepared.sim is not None:
        run.log.info("simulator.embedded", url=prepared.sim.url)
    _serve_metrics(environment, run)
    if isinstance(runner, MasterRunner):
        def on_ack(environment: Environment, msg: Any, **_: Any) -> None:
            if run.coord is not None:
                run.coord.ack(time.time(), msg.data["worker"], msg.data.get("ledger"))

        def on_done(environment: Environment, msg: Any, **_: Any) -> None:
            if msg.data.get("stats"):
                run.live.merge(msg.data["stats"])
            if run.coord is not None:
                run.coord.done(msg.data["worker"])

        def on_refused(environment: Environment, msg: Any, **_: Any) -> None:
            run.log.error("worker.refused", worker=msg.data["worker"], reason=msg.data["reason"])
            if run.coord is not None:
                run.coord.refused(msg.data["worker"], msg.data["reason"])

        def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
            if "flowsim" in data:
                run.live.merge(data["flowsim"])
                run.busy[client_id] = int(data.get("flowsim_busy", 0))

        def on_fatal(environment: Environment, msg: Any, **_: Any) -> None:
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
    if run is None or run.plan is None or isinstance(runner, WorkerRunner):
        # Workers start on the master's START message. (A worker can get Locust's spawn message, and so
        # test_start, before its init event has run and before environment.runner is even set.)
        return
    plan = run.plan
    now = time.time()
    if isinstance(runner, MasterRunner):
        run.coord = MasterCoordinator(plan.schedule, plan.to_dict(), start_delay_s=START_DELAY_S)
        run.send(run.coord.start(now, run.live_workers(with_users=False)))
        run.t0 = run.coord.t0
        run.log.info("run.started", run_id=plan.run_id, workers=len(run.coord.members), scheduled=plan.schedule.total)
        gevent.spawn(run.coordinate)
    else:
        me = f"local-{os.getpid()}"
        run.start_engine(plan, now + START_DELAY_S, WorkerLease.whole(me, plan.schedule.total), me)
    gevent.spawn(run.progress)
    if plan.abort_error_rate or plan.scenario.thresholds.abort_on_fail:
        gevent.spawn(run.guard, plan.abort_error_rate, plan.scenario.thresholds)


def _on_quitting(environment: Environment, **_kw: Any) -> None:
    """Registered in init, after the runner's own listener: Locust fires quitting listeners in reverse, so
    this runs before the runner quits its workers — the fleet is stopped and counted while it still talks."""
    run = _run(environment)
    if run is None or run.finished:  # Locust may shut down twice (a signal, then its last worker leaving)
        return
    run.finished = True
    interrupted = not run.complete
    # Cut short (Ctrl-C, SIGTERM, --run-time): stop the schedule everywhere, give in-flight launches a
    # bounded grace to finish and reach the ledgers, then count.
    if run.coord is not None and (interrupted or run.aborted):
        run.send(run.coord.stop())
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and not run.coord.finished(time.time()):
            gevent.sleep(0.1)
    run.complete = True  # ends the coordination, progress and guard loops
    if run.engine is not None:
        run.engine.stop()
        run.engine.wait_finished(STOP_GRACE_S)
        run.engine.close()
    if isinstance(environment.runner, WorkerRunner):
        return
    summary = run.summary(interrupted=interrupted and run.aborted is None)
    path = getattr(environment.parsed_options, "flowsim_summary_json", "")
    run.result = summary
    if summary is not None:
        run.log.info("run.finished", run_id=summary.run_id, launched=summary.launched,
                     achieved_rate_per_s=summary.achieved_rate_per_s, verdict=summary.verdict)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(summary.to_dict(), indent=2))
    if run.prepared is not None:
        run.prepared.close()


def _serve_metrics(environment: Environment, run: _Run) -> None:
    """Live metrics for Prometheus: ``/flowsim/metrics`` on Locust's web UI when it is up, and
    ``http://HOST:PORT/metrics`` with ``--flowsim-prometheus HOST:PORT`` (headless runs)."""
    registry = registry_for(run.snapshot)
    app = environment.web_ui.app if environment.web_ui is not None else None
    if app is not None:
        @app.route("/flowsim/metrics")
        def flowsim_metrics() -> Any:
            return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}
    address = getattr(environment.parsed_options, "flowsim_prometheus", "")
    if address:
        host, _, port = address.rpartition(":")
        metrics_app = make_wsgi_app(registry)

        def wsgi(env: dict[str, Any], start: Any) -> Any:
            if env.get("PATH_INFO") == "/metrics":
                return metrics_app(env, start)
            start("404 Not Found", [("Content-Type", "text/plain")])
            return [b"flowsim serves /metrics\n"]

        server = WSGIServer((host, int(port)), wsgi, log=None)
        try:
            server.start()
        except OSError as exc:
            print(f"flowsim: cannot serve metrics on {address}: {exc.strerror or exc}", file=sys.stderr)
            sys.exit(2)
        run.log.info("metrics.serving", url=f"http://{host}:{server.server_port}/metrics")


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
        if ticket is None:
            gevent.sleep(0.5)
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
