"""One run as one Locust process sees it (master, worker or single process): its plan, engine or
coordinator, live stats, how it ends. No locust import: ``sim.run.locust_user`` creates it, hands it the
Locust Environment and says which role the process has.

A web-UI process has one of these per START; ``env.flowsim`` is the current (or last) one.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Literal

import gevent

from sim import logs
from sim.load.stats import RunStats
from sim.drivers import driver_for
from sim.load.thresholds import MIN_LIVE_LAUNCHES, Thresholds, judge
from sim.results.summary import RunSummary
from sim.run.coordination import DONE, FATAL, MasterCoordinator, Send, WorkerLease
from sim.run.engine import Engine, gevent_transport
from sim.run.metrics import Snapshot
from sim.run.plan import RunPlan
from sim.run.prepare import Prepared
from sim.run.tally import tally
from sim.run.terminal import figures, write_figures

__all__ = ["ProcessRun", "Role", "progress_fields"]

Role = Literal["master", "worker", "local"]
_STATE_MISSING = "missing"  # locust.runners.STATE_MISSING: a worker that stopped sending heartbeats


def progress_fields(snap: Snapshot, *, elapsed_s: float, target_rate_per_s: float) -> dict[str, Any]:
    """The plain progress line's figures (every 5 s without the live view): the snapshot's Figures."""
    f = snap.figures
    return {"elapsed_s": round(elapsed_s, 1), "target_rate_per_s": round(target_rate_per_s, 2),
            "achieved_rate_per_s": round(f.achieved_rate_per_s, 2), "launched": f.launched,
            "failed_after_retries": f.failed, "first_attempt_failed": f.first_attempt_failed,
            "missed": f.missed_starts, "r429": f.rate_limited_responses,
            "p95_attempt_ms": f.attempt_latency_ms.p95, "p95_end_to_end_ms": f.latency_ms.p95}


class ProcessRun:
    """This process's part of a run, attached to the Locust Environment (no module globals)."""

    def __init__(self, env: Any, plan: RunPlan | None, prepared: Prepared | None, *, role: Role) -> None:
        self.env = env
        """The Locust Environment."""
        self.role = role
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
        self.halted = False
        """The schedule was stopped everywhere and in-flight work given its grace."""
        self.finished = False
        """The run has been counted: the summary is written."""
        self.deadline = math.inf
        """Epoch seconds past which the load shape ends the run whatever happens (a safety net)."""
        self.aborted: str | None = None
        self.fatal = False
        """The run was stopped because it could not go on (not a threshold): exit 2."""
        self.interrupted = False
        self.started = False
        """The load shape has begun this run."""
        self.options: tuple[Any, ...] = ()
        """The form options the plan was resolved from (plain Locust)."""
        self.error: str | None = None
        """Why the last START could not begin a run (a bad form value), for the flowsim tab."""
        self.log = logs.get_logger(component="locust")

    @property
    def runner(self) -> Any:
        return self.env.runner

    def send(self, messages: list[Send]) -> None:
        for m in messages:
            self.runner.send_message(m.kind, m.data, client_id=m.to)

    def report(self, **kw: Any) -> None:
        self.env.events.request.fire(**kw)

    def log_error(self, method: str, name: str, error: str) -> None:
        """A failure that is no request (Locust's Failures tab, no response time); workers ship it to the master."""
        if self.env.runner is not None:
            self.env.runner.stats.log_error(method, name, error)

    def end_later(self, delay_s: float) -> None:
        """The run is complete: end the test. With flowsim's load shape the shape does it at its next tick
        (headless: quit; web UI: stop, ready for the next START); without it (the UI's shape picker set to
        Default), here."""
        if self.env.shape_class is not None and self.runner.shape_greenlet is not None:
            return
        headless = bool(getattr(self.env.parsed_options, "headless", True))
        gevent.spawn_later(delay_s, self.runner.quit if headless else self.runner.stop)

    def stats(self) -> RunStats | None:
        if self.role == "master":
            return self.live
        return self.engine.stats if self.engine else None

    # -- single process / worker ----------------------------------------------------------------------
    def start_engine(self, plan: RunPlan, t0: float, lease: WorkerLease, worker: str) -> Engine:
        self.plan, self.t0 = plan, t0
        self.engine = Engine(plan, t0=t0, worker=worker, lease=lease, report=self.report, on_done=self.on_engine_done,
                             on_fatal=self.on_fatal, log_error=self.log_error,
                             # FLOWSIM_TRANSPORT=httpx: httpx's own transport (the benchmark compares both).
                             transport=gevent_transport if os.environ.get("FLOWSIM_TRANSPORT", "gevent") == "gevent"
                             else lambda _timeout, _ca: None)
        self.engine.start()
        self.log.info("run.started", run_id=plan.run_id, worker=worker, target=plan.target.api_url,
                      scheduled=self.engine.schedule.total)
        return self.engine

    def on_engine_done(self) -> None:
        if self.role == "worker":
            # The final stats ride with "done": the master may quit before the next regular report.
            stats = self.engine.stats.drain() if self.engine is not None else None
            try:
                self.runner.send_message(DONE, {"worker": self.runner.client_id, "stats": stats})
            except Exception as exc:  # the master may be gone already (it quit, or died)
                self.log.warning("run.done_not_delivered", error=type(exc).__name__)
        else:
            self.complete = True
            self.log.info("run.schedule_complete")
            self.end_later(0.2)

    def on_fatal(self, reason: str) -> None:
        """The run cannot go on (e.g. the client may not launch): stop it everywhere, once."""
        if self.role == "worker":
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
        self.end_later(0.1)

    # -- master ---------------------------------------------------------------------------------------
    def live_workers(self, *, with_users: bool) -> list[str]:
        nodes = sorted(self.runner.clients.values(), key=lambda n: self.runner.get_worker_index(n.id))
        return [n.id for n in nodes if n.state != _STATE_MISSING and (n.user_count > 0 or not with_users)]

    def coordinate(self) -> None:
        """The master's loop: invitations, Locust's missing workers, re-splits and renewals, the end."""
        coord = self.coord
        assert coord is not None
        while not self.complete:
            gevent.sleep(0.25)
            now = time.time()
            for wid, node in list(self.runner.clients.items()):
                if node.state == _STATE_MISSING:
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
                self.end_later(0.5)

    # -- both -----------------------------------------------------------------------------------------
    def progress(self, live_file: str = "") -> None:
        """A line every 5 s: target vs achieved rate, in flight, errors, p95. With ``live_file`` (the parent
        draws the live terminal view), the view's figures there every second instead."""
        while not self.complete and self.plan is not None and self.t0 is not None:
            gevent.sleep(1.0 if live_file else 5.0)
            snap = self.snapshot()
            if snap is None or self.complete:
                continue
            elapsed = time.time() - self.t0
            if elapsed < 0:
                continue
            if live_file:
                workers = len(self.coord.members) if self.coord is not None else 0
                write_figures(live_file, figures(snap, elapsed_s=elapsed, duration_s=self.plan.schedule.duration_s,
                                                 scheduled=self.plan.schedule.total, workers=workers))
                continue
            self.log.info("run.progress", **progress_fields(
                snap, elapsed_s=elapsed, target_rate_per_s=self.plan.schedule.rate_at(max(0.0, elapsed - 2.5))))

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
                snap = self.snapshot()
                observed = snap.figures.observed() if snap is not None else {}
                failing = [r for r in judge(observed, th, th.abort_on_fail)
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
                        verdict=self.result.verdict if self.result is not None else "RUNNING",
                        section=driver_for(self.plan.scenario.kind).section)

    def summary(self, *, interrupted: bool) -> RunSummary | None:
        if self.plan is None or self.t0 is None:
            return None
        if self.coord is not None:
            expected = {w.ledger for w in self.coord.workers.values() if w.ledger}
            took_part = sum(1 for w in self.coord.workers.values() if w.state in ("member", "lost"))
        else:
            expected = {self.engine.ledger.path.name} if self.engine else set()
            took_part = 1
        stats = self.stats()
        return tally(self.plan, self.t0, expected_ledgers=expected, live=self.live, workers=took_part,
                     workers_lost=tuple(self.coord.lost if self.coord else ()), aborted=self.aborted,
                     fatal=self.fatal, interrupted=interrupted,
                     unrecorded=stats.counters["unrecorded"] if stats is not None else 0)
