"""How a run begins, in each role — methods of the run (``sim.run.fleet.ProcessRun`` mixes them in). No locust
import.

- **Single process**: its engine fetches its token pool, then launch 0 is due ``LOCAL_START_DELAY_S`` later.
- **Master**: the START carries the plan alone; each worker sets up (engine, token pool) and says it is ready;
  once all have (at most ``WORKER_READY_WAIT_S`` later), ``t0`` goes out, launch 0 ``WORKER_GO_S`` after it
  (``sim.run.coordination``). Nobody sends while a worker is still fetching its tokens, and nobody waits longer
  than the slowest worker needs.
- **Worker**: :meth:`RunBeginning.prepare_worker` on the plan, :meth:`RunBeginning.go` on ``t0``
  (``sim.run.lifecycle.WorkerSide`` calls both).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import gevent

from sim.errors import FlowsimError
from sim.load.ledger import Ledger, run_dir
from sim.run import watch, webhook
from sim.run.coordination import MasterCoordinator, Send
from sim.run.engine import Engine, gevent_transport
from sim.run.lifecycle import Lifecycle
from sim.run.pacer import WorkerLease
from sim.run.plan import RunPlan
from sim.run.shipping import LOCAL_DIR, MasterLedger, Shipper
from sim.run.stream import Outbox

__all__ = ["RunBeginning", "WORKER_GO_S", "WORKER_READY_WAIT_S", "LOCAL_START_DELAY_S", "TOKEN_WAIT_S"]

TOKEN_WAIT_S = 5.0
"""How long a process waits for its token pool before it starts anyway (retries included; a launch without a
token is written as not sent, ``no_token``)."""
LOCAL_START_DELAY_S = 0.05
"""A single process, from its token pool being fetched (users spawned) to launch 0."""
WORKER_READY_WAIT_S = TOKEN_WAIT_S + 1.0
"""The longest a master waits for its workers to be ready before it starts without the slow ones' word."""
WORKER_GO_S = 0.25
"""From the master's ``t0`` message (every worker ready) to launch 0: time for it to reach them."""


class RunBeginning:
    """``begin`` (the START's users are all spawned), ``went`` (the master's workers are ready: ``t0``), and a
    worker's ``prepare_worker`` / ``start_engine``."""

    env: Any
    role: str
    plan: RunPlan | None
    engine: Engine | None
    coord: MasterCoordinator | None
    run_ledger: MasterLedger | None
    shipper: Shipper | None
    life: Lifecycle
    deadline: float
    log: Any
    runner: Any

    # The run's own (sim.run.fleet.ProcessRun), declared here for the type checker, never defined: a mixin's stub
    # would shadow a method of a class after it in the method order.
    abort: Callable[..., None]
    send: Callable[[list[Send]], None]
    live_workers: Callable[..., list[str]]
    report: Callable[..., None]
    on_engine_done: Callable[[], None]
    on_fatal: Callable[[str], None]
    log_error: Callable[[str, str, str], None]

    def begin(self, *, master: bool) -> None:
        """The START's users are all spawned (Locust's spawning_complete): the run begins (see the module)."""
        assert self.plan is not None
        try:
            plan = self.plan = webhook.host(self.env, self.plan)  # Open Messaging: the receiver, before any worker
        except FlowsimError as exc:
            return self.abort(str(exc), fatal=True)
        if master:
            try:
                self.run_ledger = MasterLedger(run_dir(plan.ledger_dir, plan.run_id), plan.run_id)
            except OSError as exc:
                return self.abort(f"the run's ledger cannot be written: {exc.strerror or exc}", fatal=True)
            self.coord = MasterCoordinator(plan.schedule, plan.to_dict(), start_delay_s=WORKER_GO_S,
                                           ready_wait_s=WORKER_READY_WAIT_S)
            self.send(self.coord.start(time.time(), self.live_workers(with_users=False)))
            self.log.info("run.starting", run_id=plan.run_id, workers=len(self.coord.members))
            gevent.spawn(watch.coordinate, self)
            return self.went()
        me = f"local-{os.getpid()}"
        engine = self.new_engine(plan, WorkerLease.whole(me, plan.schedule.total), me)
        self._fetch_tokens(engine)
        t0 = time.time() + LOCAL_START_DELAY_S
        self.start_engine(engine, t0)
        self._watch(plan, t0)

    def went(self) -> None:
        """The master: once its coordinator has set ``t0`` (every worker ready), the run is running. Call after
        each of the coordinator's ticks; a run that ended while waiting (a signal) stays ended."""
        coord, plan = self.coord, self.plan
        if coord is None or coord.t0 is None or plan is None or self.life.t0 is not None or self.life.complete:
            return
        self.life.start(coord.t0)
        self.log.info("run.started", run_id=plan.run_id, workers=len(coord.members), scheduled=plan.schedule.total)
        self._watch(plan, coord.t0)

    def _watch(self, plan: RunPlan, t0: float) -> None:
        """The loops that watch a running run (``sim.run.watch``), and its safety deadline."""
        self.deadline = t0 + plan.scenario.duration_s + plan.scenario.follow_timeout_s + 30
        gevent.spawn(watch.progress, self, getattr(self.env.parsed_options, "flowsim_live_file", ""))
        if plan.abort_error_rate or plan.scenario.thresholds.abort_on_fail:
            gevent.spawn(watch.guard, self, plan.abort_error_rate, plan.scenario.thresholds)

    # -- single process / worker ----------------------------------------------------------------------
    def new_engine(self, plan: RunPlan, lease: WorkerLease, worker: str, clock: Any = time.time) -> Engine:
        """This process's engine for ``plan``, not yet started."""
        self.plan = plan
        ledger = None
        if self.role == "worker":  # a local copy on this host; the master writes the run's ledger from the stream
            outbox = Outbox()
            ledger = Ledger(run_dir(plan.ledger_dir, plan.run_id) / LOCAL_DIR, outbox=outbox)
            self.shipper = Shipper(outbox, lambda kind, data: self.runner.send_message(kind, data), worker=worker,
                                   run_id=plan.run_id)
        self.engine = Engine(plan, worker=worker, lease=lease, report=self.report, on_done=self.on_engine_done,
                             on_fatal=self.on_fatal, log_error=self.log_error, ledger=ledger, clock=clock,
                             # FLOWSIM_TRANSPORT=httpx: httpx's own transport (the benchmark compares both).
                             transport=gevent_transport if os.environ.get("FLOWSIM_TRANSPORT", "gevent") == "gevent"
                             else lambda _timeout, _ca: None)
        self.engine.mailbox = webhook.mailbox(self.env, plan)
        return self.engine

    def prepare_worker(self, plan: RunPlan, lease: WorkerLease, me: str, clock: Any,
                       ready: Callable[[], None]) -> Engine:
        """A worker's engine for ``plan``, not yet started; ``ready()`` once its token pool is in (or after
        ``TOKEN_WAIT_S``: its launches without a token are then written as not sent)."""
        engine = self.new_engine(plan, lease, me, clock=clock)
        def fetch_then_say_ready() -> None:
            self._fetch_tokens(engine)
            ready()

        gevent.spawn(fetch_then_say_ready)
        return engine

    def _fetch_tokens(self, engine: Engine) -> None:
        """The engine's token pool, waited for up to ``TOKEN_WAIT_S``; one that cannot be had is logged (launches
        without a token are written as not sent, ``no_token``)."""
        try:
            engine.prefetch(wait_s=TOKEN_WAIT_S)
        except FlowsimError as exc:
            self.log.error("tokens.unavailable", reason=str(exc))

    def go(self, t0: float) -> None:
        """A worker: its prepared engine begins, launch 0 due at ``t0``."""
        assert self.engine is not None
        self.start_engine(self.engine, t0)

    def start_engine(self, engine: Engine, t0: float) -> Engine:
        """Launch 0 is due at ``t0``: the run is running."""
        self.life.start(t0)
        engine.start(t0)
        self.log.info("run.started", run_id=engine.plan.run_id, worker=engine.worker,
                      target=engine.plan.target.api_url, scheduled=engine.schedule.total)
        return engine
