"""One run as one Locust process sees it (master, worker or single process): its plan, engine or
coordinator, live stats, how it ends. No locust import: ``sim.run.locust_user`` creates it, hands it the
Locust Environment and says which role the process has.

A web-UI process has one of these per START; ``env.flowsim`` is the current (or last) one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Literal

import gevent
import gevent.event

from sim import logs
from sim.load.stats import RunStats
from sim.drivers import driver_for
from sim.results.summary import RunSummary
from sim.run.coordination import DONE, FATAL, MasterCoordinator, Send
from sim.run.engine import Engine
from sim.run.lifecycle import Lifecycle
from sim.run.metrics import Snapshot
from sim.run.plan import RunPlan
from sim.run.prepare import Prepared
from sim.run.tally import count_run
from sim.run.shipping import MasterLedger, Shipper
from sim.run import watch, webhook
from sim.run.master_side import END_DELAY_S, MasterHandlers
from sim.run.beginning import RunBeginning

__all__ = ["ProcessRun", "Role", "STOP_GRACE_S", "GIVE_UP_S"]

STOP_GRACE_S = 5.0
"""A run cut short: how long in-flight launches get to finish (and be written to the ledger)."""
GIVE_UP_S = STOP_GRACE_S - 1.5
"""After a stop, each process writes what is still in flight as unanswered (may have run) this much later: a
worker's records and final stats then reach the master within its grace."""

Role = Literal["master", "worker", "local"]


class ProcessRun(MasterHandlers, RunBeginning):
    """This process's part of a run, attached to the Locust Environment (no module globals)."""

    def __init__(self, env: Any, plan: RunPlan | None, prepared: Prepared | None, *, role: Role) -> None:
        self.env, self.role, self.plan, self.prepared = env, role, plan, prepared  # env: the Locust Environment
        self.engine: Engine | None = None
        self.coord: MasterCoordinator | None = None
        self.run_ledger: MasterLedger | None = None
        """master: the run's one ledger, written from its workers' streams (``sim.run.shipping``)."""
        self.shipper: Shipper | None = None
        """worker: ships what its ledger writes to the master."""
        self.counted_at = 0.0
        """When the run was counted (monotonic s): the web page waits a while for its workers after that."""
        self.live = RunStats()  # master: merged worker reports, for progress and the abort guard
        self.busy: dict[str, int] = {}
        self.clock_offsets: dict[str, float] = {}
        """master: each worker's launches in progress at its last report."""
        self.result: RunSummary | None = None
        self.life = Lifecycle()
        self._halt_over = gevent.event.Event()
        """Set when a halt has given its grace (a count waits for it: the workers' last lines come within it)."""
        """Where the run is (planned → starting → running → complete → halted → counted): its only state."""
        self.deadline = math.inf
        """Epoch seconds past which the load shape ends the run whatever happens (a safety net)."""
        self.options: tuple[Any, ...] = ()
        """The form options the plan was resolved from (plain Locust)."""
        self.error: str | None = None
        """Why the last START could not begin a run (a bad form value), for the flowsim tab."""
        self.log = logs.get_logger(component="locust")

    @property
    def runner(self) -> Any:
        return self.env.runner

    @property
    def t0(self) -> float | None:
        return self.life.t0

    @property
    def complete(self) -> bool:
        """The schedule is over (or the run was stopped): the loops end."""
        return self.life.complete

    def send(self, messages: list[Send]) -> None:
        for m in messages:  # ``at``: the master's clock, which its workers keep to (``sim.run.clock``)
            self.runner.send_message(m.kind, {**m.data, "at": time.time()}, client_id=m.to)

    def report(self, **kw: Any) -> None:
        self.env.events.request.fire(**kw)

    def log_error(self, method: str, name: str, error: str) -> None:
        """A failure that is no request (Locust's Failures tab, no response time); workers ship it to the master."""
        if self.env.runner is not None:
            self.env.runner.stats.log_error(method, name, error)

    def end_later(self, delay_s: float) -> None:
        """The run is complete: end the test ``delay_s`` from now (headless: quit; web UI: stop, ready for the
        next START) — at once, not at the load shape's next tick (up to 1 s later)."""
        gevent.spawn_later(delay_s, self._end_test)

    def _end_test(self) -> None:
        """What the shape does when its tick says the end, done here. Locust's stop() run beside the shape's own
        (a tick ending while another greenlet stops) stops the users twice, so: nothing if a stop has begun;
        else the shape greenlet is ended first (it sleeps between ticks: never caught inside a stop)."""
        runner = self.runner
        # A stop under way: Locust's state shows it only after test_stopping (our halt, waiting on work in flight).
        if runner.state not in ("spawning", "running") or self.life.halted:  # locust.runners.STATE_*
            return
        if runner.shape_greenlet is not None:
            runner.shape_greenlet.kill(block=True)
            runner.shape_greenlet, runner.shape_last_tick = None, None
        (runner.quit if getattr(self.env.parsed_options, "headless", True) else runner.stop)()

    def stats(self) -> RunStats | None:
        if self.role == "master":
            return self.live
        return self.engine.stats if self.engine else None

    def on_engine_done(self) -> None:
        if self.role == "worker":
            # The final stats ride with "done": the master may quit before the next regular report.
            stats = self.engine.stats.drain() if self.engine is not None else None
            lines = self.shipper.close() if self.shipper is not None else None  # every line before DONE
            try:
                self.runner.send_message(DONE, {"worker": self.runner.client_id, "stats": stats, "lines": lines})
            except Exception as exc:  # the master may be gone already (it quit, or died)
                self.log.warning("run.done_not_delivered", error=type(exc).__name__)
        elif self.life.schedule_done():
            self.log.info("run.schedule_complete")
            self.end_later(END_DELAY_S)

    def on_fatal(self, reason: str) -> None:
        """The run cannot go on (e.g. the client may not launch): stop it everywhere, once."""
        if self.role == "worker":
            self.runner.send_message(FATAL, {"worker": self.runner.client_id, "reason": reason})
        else:
            self.abort(reason, fatal=True)

    def abort(self, reason: str, *, fatal: bool = False) -> None:
        if not self.life.abort(reason, fatal=fatal):
            return
        if fatal:
            self.log.error("run.stopped", reason=reason)
        else:
            self.log.warning("run.aborted", reason=reason)
        self.end_later(0.1)

    # -- master ---------------------------------------------------------------------------------------
    def live_workers(self, *, with_users: bool) -> list[str]:
        nodes = sorted(self.runner.clients.values(), key=lambda n: self.runner.get_worker_index(n.id))
        return [n.id for n in nodes if n.state != watch.STATE_MISSING and (n.user_count > 0 or not with_users)]

    # -- both -----------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot | None:
        """What the metrics endpoint shows: the run so far (or as it ended)."""
        stats = self.stats()
        if self.plan is None or self.t0 is None or stats is None:
            return None
        in_flight = self.engine.busy if self.engine is not None else (sum(self.busy.values()) if self.coord else None)
        webhook.count_live(self.env, self.plan, stats)  # Open Messaging: the receiver's counts so far
        return Snapshot(run_id=self.plan.run_id, scenario=self.plan.scenario.name,
                        target_rate_per_s=self.plan.schedule.rate_at(max(0.0, time.time() - self.t0)),
                        stats=stats, in_flight=in_flight,
                        verdict=self.result.verdict if self.result is not None else "RUNNING",
                        section=driver_for(self.plan.scenario.kind).section)

    def summary(self) -> RunSummary | None:
        if self.plan is None or self.t0 is None:
            return None
        if self.run_ledger is not None:
            self.run_ledger.close()  # what arrives later is counted as late (the workers' local copies have it)
        stats = self.stats()
        return count_run(self.plan, self.t0, self.life, coord=self.coord, run_ledger=self.run_ledger,
                         unrecorded=stats.counters["unrecorded"] if stats is not None else 0,
                         clock_offsets=self.clock_offsets)

    # -- the end --------------------------------------------------------------------------------------
    def halt(self) -> None:
        """Stop the schedule everywhere (nothing is sent or counted as missed after this) and give in-flight
        launches a bounded grace to finish and reach the ledgers. Before Locust stops (or kills) the users."""
        if not self.life.halt():
            return
        try:
            if self.coord is not None and self.life.stop_workers:
                self.send(self.coord.stop())
                deadline = time.monotonic() + STOP_GRACE_S
                while time.monotonic() < deadline and not self.coord.finished(time.time()):
                    gevent.sleep(0.1)
            if self.engine is not None:
                self.engine.stop(grace_s=GIVE_UP_S)
                self.engine.wait_finished(STOP_GRACE_S)
        finally:
            self._halt_over.set()

    def finish(self) -> None:
        """Count the run (master / single process: the summary, from the ledgers) — once."""
        if self.life.counted or self.t0 is None:
            return
        self.halt()
        self._halt_over.wait(STOP_GRACE_S + 1)  # halting in another greenlet (a signal's): count after its grace
        self.life.count()
        if self.engine is not None:
            self.engine.close()
        if self.shipper is not None:  # a worker: what is left goes, the loop ends (a run after a run starts anew)
            self.shipper.close()
        if self.role == "worker":
            return
        if self.plan is not None:
            webhook.record(self.env, self.plan)
        summary = self.summary()
        self.result, self.counted_at = summary, time.monotonic()
        path = getattr(self.env.parsed_options, "flowsim_summary_json", "")
        if summary is not None:
            self.log.info("run.finished", run_id=summary.run_id, launched=summary.launched,
                          achieved_rate_per_s=summary.achieved_rate_per_s, verdict=summary.verdict)
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(json.dumps(summary.to_dict(), indent=2))
