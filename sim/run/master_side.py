"""The master's handlers of its workers' messages (acks, DONE, ledger batches, refusals, reports), as methods of
the run (``sim.run.fleet.ProcessRun`` mixes them in); ``sim.run.locust_user`` registers them. No locust import."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sim.load.stats import RunStats
from sim.run.coordination import MasterCoordinator, Send
from sim.run.lifecycle import Lifecycle
from sim.run.plan import RunPlan
from sim.run.shipping import MasterLedger

__all__ = ["MasterHandlers", "END_DELAY_S"]

END_DELAY_S = 0.05
"""From a run's last unit of work done (a single process) or its last worker's DONE (a master) to ending the test:
a moment for what is under way in other greenlets (the last request events) to land first."""


class MasterHandlers:
    """What the master does with each message from a worker, on the current run."""

    coord: MasterCoordinator | None
    run_ledger: MasterLedger | None
    live: RunStats
    busy: dict[str, int]
    clock_offsets: dict[str, float]
    """Each worker's wall clock against the master's (s; positive: behind), as it last said."""
    life: Lifecycle
    log: Any

    plan: RunPlan | None

    abort: Callable[..., None]
    send: Callable[[list[Send]], None]
    end_later: Callable[[float], None]
    went: Callable[[], None]  # declared, not defined: the run's own (sim.run.beginning), found after this mixin

    def on_ack(self, data: dict[str, Any]) -> None:
        if self.coord is not None:
            ready = self.plan is not None and data.get("ready") == self.plan.run_id
            self.coord.ack(time.time(), data["worker"], ready=ready)
            if ready and self.coord.waiting and not self.life.complete:  # the last one ready: t0 goes out now
                self.send(self.coord.tick(time.time()))
                self.went()
        if isinstance(data.get("clock_offset_s"), (int, float)):
            self.clock_offsets[str(data["worker"])] = float(data["clock_offset_s"])

    def on_done(self, data: dict[str, Any]) -> None:
        if data.get("stats"):
            self.live.merge(data["stats"])
        if self.run_ledger is not None:
            self.run_ledger.on_done(data["worker"], data.get("lines"))
        if self.coord is not None:
            self.coord.done(data["worker"])
            self.check_finished(time.time())  # the last one: end now, not at the coordination loop's next tick

    def check_finished(self, now: float) -> None:
        """Every worker has finished its share (or nobody is left and the schedule is over): the run is complete."""
        if self.coord is not None and self.coord.finished(now) and self.life.schedule_done():
            self.log.info("run.schedule_complete", workers=len(self.coord.members))
            self.end_later(END_DELAY_S)

    def on_ledger(self, data: dict[str, Any]) -> None:
        error = self.run_ledger.on_batch(data) if self.run_ledger is not None else None
        if error:
            self.abort(error, fatal=True)

    def on_refused(self, data: dict[str, Any]) -> None:
        self.log.error("worker.refused", worker=data["worker"], reason=data["reason"])
        if self.coord is not None:
            self.coord.refused(data["worker"], data["reason"])

    def on_worker_fatal(self, data: dict[str, Any]) -> None:
        self.abort(data["reason"], fatal=True)

    def on_report(self, client_id: str, data: dict[str, Any]) -> None:
        if "flowsim" in data and not self.life.counted:
            self.live.merge(data["flowsim"])
            self.busy[client_id] = int(data.get("flowsim_busy", 0))
