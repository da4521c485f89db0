"""The per-process load engine: paces this process's launches at their scheduled instants, hands them to
free users, runs each (identity → tag → launch → ledger → follow), and counts everything.

Open model: launches are due at fixed instants whatever the responses do. A launch due while
every user is busy is a **missed start** (counted, written to the ledger, never sent late). Which
seqs this process owns, and whether its lease covers them, is the :class:`~sim.run.pacer.Pacer`'s
call. Every count comes from the ledger record written for it (``RunStats.add``). Runs under
gevent (inside Locust) but does not import locust; ``sim.run.locust_user`` wires it in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import gevent
import httpx
import gevent.event
import gevent.queue

from sim.drivers import Ticket, driver_for
from sim.load.client import Attempt, FlowClient, Reporter, TokenManager
from sim.load.identity import Identity, IdentityFactory
from sim.load.ledger import Ledger, run_dir
from sim.load.messaging import Mailbox
from sim.load.payload import PayloadBuilder
from sim.load.records import Record
from sim.load.stats import RunStats
from sim.load.transport import GeventTransport
from sim.logs import get_logger
from sim.run.coordination import Grant
from sim.run.pacer import MAX_LATE_S, Pacer, WorkerLease
from sim.run.plan import RunPlan, credentials
from sim.run.records import InFlight, Unsent

__all__ = ["Engine", "Ticket", "gevent_transport"]


def _spawn(fn: Callable[[], None]) -> None:
    gevent.spawn(fn)


def gevent_transport(timeout_s: float, ca_bundle: str | None) -> httpx.BaseTransport | None:
    """flowsim's own cooperative transport (the default): one per Locust user."""
    return GeventTransport(timeout_s=timeout_s, ca_bundle=ca_bundle)


class Engine:
    def __init__(self, plan: RunPlan, *, worker: str, lease: WorkerLease, report: Reporter,
                 on_done: Callable[[], None] = lambda: None,
                 on_fatal: Callable[[str], None] = lambda _reason: None,
                 log_error: Callable[[str, str, str], None] = lambda _method, _name, _error: None,
                 clock: Callable[[], float] = time.time,
                 transport: Callable[[float, str | None], httpx.BaseTransport | None] = gevent_transport,
                 ledger: Ledger | None = None) -> None:
        """``clock``: epoch seconds (the ledger's times); ``transport``: each user's HTTP transport from (timeout,
        CA bundle), None for httpx's own; ``ledger``: a worker's streams to the master (default: the run's file)."""
        scenario = plan.scenario
        self.plan = plan
        self.scenario = scenario
        self.run_id = plan.run_id
        self.driver = driver_for(scenario.kind)
        self._clock = clock
        self._transport = transport
        self.t0 = math.inf
        """Epoch seconds at which launch 0 is due (set by :meth:`start`)."""
        self.worker = worker
        self._report = report
        self.schedule = plan.schedule
        self.lease = lease
        self.pacer: Pacer | None = None
        self.max_late_s = MAX_LATE_S
        self.stats = RunStats()
        self.ledger = ledger if ledger is not None else Ledger(run_dir(plan.ledger_dir, plan.run_id))
        self.builder = PayloadBuilder(scenario, plan.run_id, plan.declared_inputs)
        self.identities = IdentityFactory(locale=scenario.locale, seed=scenario.seed)
        client_id, client_secret = credentials(plan)
        self.tokens = TokenManager(login_url=plan.target.login_url, client_id=client_id,
                                   client_secret=client_secret, pool_size=plan.tokens_per_process,
                                   timeout_s=scenario.request_timeout_s, report=report, ca_bundle=scenario.ca_bundle,
                                   spawn=_spawn, sleep=gevent.sleep)
        self._queue: gevent.queue.Queue[Ticket | None] = gevent.queue.Queue()
        self._waiting = 0
        self.busy = 0
        self._pacer: gevent.Greenlet | None = None
        self._pacer_done = False
        self._on_done = on_done
        self._on_fatal = on_fatal
        self._log_error = log_error
        """A failure that is no request (a missed start): listed by Locust, never timed as a request."""
        self._done_fired = False
        self._topology = gevent.event.Event()
        self._unsent = Unsent(self.write, run_id=plan.run_id, prefix=scenario.tag_prefix, worker=worker)
        self._inflight = InFlight()
        self._give_up: gevent.Greenlet | None = None
        self.ledger_error: str | None = None
        """Why the ledger could not be written: the run stopped sending at that moment."""
        self.stopping = False
        self.mailbox: Mailbox | None = None
        """Open Messaging: where this process's customers read their replies (``sim.run.webhook``)."""
        self.log = get_logger(component="engine", worker=worker)

    def write(self, record: Record) -> None:
        """The ledger line first, then the count from that very line. A line that cannot be written stops
        the run at once: flowsim never sends what it cannot record. What was sent and not recorded is
        counted (``unrecorded``) and shipped with the live stats, so the summary can say so."""
        if self.ledger_error is None:
            try:
                self.ledger.write(record)
            except OSError as exc:
                self.ledger_error = (f"the ledger {self.ledger.path} could not be written ({exc.strerror or exc}): "
                                     "flowsim stopped sending; every count of this run is partial")
                self.stop()
                self._on_fatal(self.ledger_error)
            else:
                self.stats.add(record, self.t0)
                if self.ledger.outbox is not None and self.ledger.outbox.full and not self.stopping:
                    self.stop()  # the master cannot keep up: nothing more is sent that it cannot count
                    self._on_fatal(f"the master has not taken this worker's ledger lines (64 MiB waiting): flowsim "
                                   f"stopped sending; {self.ledger.path} has them all")
                return
        if record.event == self.driver.record_event:
            self.stats.counters["unrecorded"] += 1

    # -- pacing ------------------------------------------------------------------------------------
    def prefetch(self, wait_s: float | None = None) -> None:
        """Fetch the token pool now, in the background (``wait_s``: wait until it is full, or that long)."""
        self.tokens.prefetch(wait_s=wait_s)

    def start(self, t0: float) -> None:
        """Launch 0 is due at ``t0`` (epoch s): start pacing (and fetch the token pool, if not yet done)."""
        self.t0 = t0
        self.pacer = Pacer(self.schedule, t0, self.lease, max_late_s=self.max_late_s)
        self.tokens.prefetch()
        self._pacer = gevent.spawn(self._pace)

    def grant(self, grant: Grant) -> None:
        """A lease from the master: applied at once, so the next send already obeys it."""
        if self.lease.apply(grant):
            self._topology.set()

    def stop(self, grace_s: float | None = None) -> None:
        """Stop sending now: no launch starts after this; followed executions end at their next poll.
        ``grace_s``: after that long, work still in flight is written to the ledger as unanswered at the stop
        (it may have run) and the engine is done; an answer that comes later is not written again."""
        if not self.stopping:
            self.stopping = True
            while not self._queue.empty():  # handed over, not yet taken: never sent
                self._queue.get_nowait()
            self._topology.set()
            if self.pacer is None:  # stopped before launch 0 was due: nothing was paced, nothing will be
                self._pacer_done = True
                self._check_done()
        if grace_s is not None and self._give_up is None:
            self._give_up = gevent.spawn_later(grace_s, self.give_up)

    def give_up(self) -> None:
        """Write what is still in flight as unanswered at the stop, and be done."""
        self._write_in_flight()
        self._check_done()

    def _write_in_flight(self) -> None:
        for record in self._inflight.give_up(self._clock()):
            self.write(record)

    def wait_finished(self, timeout_s: float) -> bool:
        """After :meth:`stop`: wait (cooperatively) up to ``timeout_s`` for in-flight work to end."""
        deadline = time.monotonic() + timeout_s
        while not self._done_fired and time.monotonic() < deadline:
            gevent.sleep(0.05)
        return self._done_fired

    def _pace(self) -> None:
        assert self.pacer is not None
        busy_turns = 0
        while not self.stopping:
            now = self._clock()
            a = self.pacer.next(now)
            if a.kind in ("late", "send"):
                busy_turns += 1
                if busy_turns % 64 == 0:  # a backlog (a stall, a very high rate) must not starve the users
                    gevent.sleep(0)
            if a.kind == "sleep":
                # Short naps so that a new grant (or a stop) is read before the next launch.
                self._topology.clear()
                self._topology.wait(min(a.at - now, 0.2))
            elif a.kind == "wait":  # not ours yet (no lease or no epoch): wait for a grant
                self._topology.clear()
                self._topology.wait(0.2)
            elif a.kind == "late":
                self._unsent.add("late", a.seq, a.due)
            elif a.kind == "send":
                if self._waiting > self._queue.qsize():  # an idle user will take it right away
                    self._queue.put(Ticket(seq=a.seq, due=a.due))
                else:
                    self._missed(a.seq, a.due)
            else:
                break
        self._unsent.flush()
        if self.pacer is not None and self.pacer.skipped:
            self.log.info("pacer.skipped", seqs=self.pacer.skipped, reason="not leased in time")
        self._pacer_done = True
        self._check_done()

    def _missed(self, seq: int, due: float) -> None:
        # Not a request event: a 0 ms "request" would drag Locust's latency aggregates down.
        self._log_error("LAUNCH", "missed start", "no free user at the launch's due time (raise max_concurrency)")
        self._unsent.add("missed", seq, due)

    def take(self) -> Ticket | None:
        """Block until a launch is due for this user; None once this process's share is done."""
        if self._done_fired:
            return None
        self._waiting += 1
        try:
            ticket: Ticket | None = self._queue.get()
            return ticket
        finally:
            self._waiting -= 1

    def _check_done(self) -> None:
        running = self.busy - len(self._inflight.given_up)  # given-up requests are written already
        if self._pacer_done and not self._done_fired and running <= 0 and self._queue.qsize() == 0:
            self._done_fired = True
            for _ in range(self._waiting):
                self._queue.put(None)  # release idle users so Locust can stop them at once
            self._on_done()

    @property
    def finished(self) -> bool:
        return self._done_fired

    # -- one launch --------------------------------------------------------------------------------
    def new_client(self) -> FlowClient:
        s = self.scenario
        transport = self._transport(s.request_timeout_s, s.ca_bundle)
        return FlowClient(api_url=self.plan.target.api_url, tokens=self.tokens, report=self._report,
                          max_retries=s.max_retries, max_retry_wait_s=s.max_retry_wait_s, timeout_s=s.request_timeout_s,
                          transport=transport, ca_bundle=s.ca_bundle, token_failure_unsent=True, wall=self._clock)

    def identity(self, seq: int) -> Identity:
        return self.identities.make(seq)

    def execute(self, client: FlowClient, ticket: Ticket, identity: Identity) -> None:
        self.busy += 1
        try:
            self._execute(client, ticket, identity)
        finally:
            self.busy -= 1
            self._check_done()

    def _execute(self, client: FlowClient, ticket: Ticket, identity: Identity) -> None:
        if self.stopping:  # taken just before the stop: not sent
            return
        self.driver.run(self, client, ticket, identity)

    # -- what a driver sees (sim.drivers.UnitContext) ----------------------------------------------
    def open_in_flight(self, seq: int, record: Callable[[float], Record]) -> None:
        self._inflight.open(seq, record)

    def close_in_flight(self, seq: int) -> bool:
        return self._inflight.close(seq)

    def not_sent(self, res: Attempt, seq: int, due: float) -> None:
        """A request that never left: too late to go (the 1 s rule), no connection, or no token."""
        if res.unsent == "late":
            self._unsent.add("late", seq, due)
        else:
            self._unsent.add("not_sent", seq, due, reason=res.unsent, cause=res.cause)

    def fatal(self, reason: str) -> None:
        """Every later unit would fail the same way: stop the run now, with the reason (once)."""
        if not self.stopping:
            self.stop()
            self._on_fatal(reason)

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def now(self) -> float:
        return self._clock()

    def close(self) -> None:
        if self._pacer is not None:
            self._pacer.kill(block=False)
        self._unsent.flush()  # a late launch noticed by a user after the pacer ended may be pending
        self._write_in_flight()  # anything still in flight at the close is written as unanswered, not lost
        self.ledger.close()
        if self.ledger.dropped or self._inflight.answered_after_stop:
            self.log.warning("ledger.answers_after_stop", dropped=self.ledger.dropped,
                             answered_after_stop=self._inflight.answered_after_stop,
                             reason="answers that came after the stop's grace (written as unanswered at the stop)")
        self.tokens.close()
        if self.mailbox is not None:
            self.mailbox.close()
