"""The per-process load engine: paces this process's launches at their scheduled instants, hands them to
free users, runs each (identity → tag → launch → ledger → follow), and counts everything.

Open model: launches are due at fixed instants whatever the responses do. A launch due while
every user is busy is a **missed start** (counted, written to the ledger, never sent late). Which
seqs this process owns, and whether its lease covers them, is the :class:`~sim.run.coordination.Pacer`'s
call. Every count comes from the ledger record written for it (``RunStats.add``). Runs under
gevent (inside Locust) but does not import locust; ``sim.run.locust_user`` wires it in.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.queue

from sim.load.client import FlowClient, Reporter, TokenManager
from sim.load.conversation import converse, session_body
from sim.load.identity import Identity, IdentityFactory
from sim.load.ledger import Ledger, run_dir
from sim.load.payload import PayloadBuilder, execution_name
from sim.load.stats import RunStats
from sim.load.transport import GeventTransport
from sim.logs import get_logger
from sim.run.coordination import Grant, Pacer, WorkerLease
from sim.run.plan import RunPlan, credentials

__all__ = ["Engine", "Ticket"]

_PERMISSION_CODES = frozenset({"missing.permissions", "missing.any.permissions", "not.authorized"})


class _Unsent:
    """Ledger records for launches never sent (``missed``, ``late``): one each, until more than
    ``detail_per_s`` in one second — then one record per second with a ``count`` (an overload or a stall
    must not turn the ledger into megabytes of identical lines)."""

    def __init__(self, write: Callable[[dict[str, Any]], None], *, run_id: str, prefix: str, worker: str,
                 detail_per_s: int = 50) -> None:
        self._write, self._run_id, self._prefix, self._worker = write, run_id, prefix, worker
        self._detail = detail_per_s
        self._second: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._pending: dict[str, dict[str, Any]] = {}

    def add(self, event: str, seq: int, due: float) -> None:
        sec = int(due)
        if self._second.get(event) != sec:
            self._flush(event)
            self._second[event], self._seen[event] = sec, 0
        self._seen[event] += 1
        if self._seen[event] <= self._detail:
            self._write({"event": event, "run_id": self._run_id, "seq": seq,
                         "name": execution_name(self._prefix, self._run_id, seq), "intended_at": round(due, 6),
                         "worker": self._worker})
            return
        agg = self._pending.setdefault(event, {"event": event, "run_id": self._run_id, "seq": seq, "count": 0,
                                                "intended_at": round(due, 6), "worker": self._worker})
        agg["count"] += 1
        agg["seq_last"] = seq

    def _flush(self, event: str) -> None:
        agg = self._pending.pop(event, None)
        if agg is not None:
            self._write(agg)

    def flush(self) -> None:
        for event in list(self._pending):
            self._flush(event)


@dataclass(frozen=True, slots=True)
class Ticket:
    seq: int
    due: float
    """Epoch seconds at which the launch was due."""


class Engine:
    def __init__(self, plan: RunPlan, *, t0: float, worker: str, lease: WorkerLease, report: Reporter,
                 on_done: Callable[[], None] = lambda: None,
                 on_fatal: Callable[[str], None] = lambda _reason: None,
                 log_error: Callable[[str, str, str], None] = lambda _method, _name, _error: None) -> None:
        scenario = plan.scenario
        self.plan = plan
        self.scenario = scenario
        self.t0 = t0
        """Epoch seconds at which launch 0 is due."""
        self.worker = worker
        self._report = report
        self.schedule = plan.schedule
        self.lease = lease
        self.pacer = Pacer(self.schedule, t0, lease)
        self.stats = RunStats()
        self.ledger = Ledger(run_dir(plan.ledger_dir, plan.run_id))
        self.builder = PayloadBuilder(scenario, plan.run_id, plan.declared_inputs)
        self.identities = IdentityFactory(locale=scenario.locale, seed=scenario.seed)
        client_id, client_secret = credentials(plan)
        self.tokens = TokenManager(login_url=plan.target.login_url, client_id=client_id,
                                   client_secret=client_secret, pool_size=plan.tokens_per_process,
                                   timeout_s=scenario.request_timeout_s, report=report, ca_bundle=scenario.ca_bundle)
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
        self._unsent = _Unsent(self._write, run_id=plan.run_id, prefix=scenario.tag_prefix, worker=worker)
        self.stopping = False
        self.log = get_logger(component="engine", worker=worker)

    def _write(self, record: dict[str, Any]) -> None:
        """The ledger line first, then the count from that very line."""
        self.ledger.write(record)
        self.stats.add(record, self.t0)

    # -- pacing ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._pacer = gevent.spawn(self._pace)

    def grant(self, grant: Grant) -> None:
        """A lease from the master: applied at once, so the next send already obeys it."""
        if self.lease.apply(grant):
            self._topology.set()

    def stop(self) -> None:
        """Stop sending now: no launch starts after this; followed executions end at their next poll."""
        if self.stopping:
            return
        self.stopping = True
        while not self._queue.empty():  # handed over, not yet taken: never sent
            self._queue.get_nowait()
        self._topology.set()

    def wait_finished(self, timeout_s: float) -> bool:
        """After :meth:`stop`: wait (cooperatively) up to ``timeout_s`` for in-flight work to end."""
        deadline = time.monotonic() + timeout_s
        while not self._done_fired and time.monotonic() < deadline:
            gevent.sleep(0.05)
        return self._done_fired

    def _pace(self) -> None:
        busy_turns = 0
        while not self.stopping:
            now = time.time()
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
        if self.pacer.skipped:
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
        if self._pacer_done and not self._done_fired and self.busy == 0 and self._queue.qsize() == 0:
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
        # FLOWSIM_TRANSPORT=httpx falls back to httpx's own transport (the benchmark compares both).
        transport = (GeventTransport(timeout_s=s.request_timeout_s, ca_bundle=s.ca_bundle)
                     if os.environ.get("FLOWSIM_TRANSPORT", "gevent") == "gevent" else None)
        return FlowClient(api_url=self.plan.target.api_url, tokens=self.tokens, report=self._report,
                          max_retries=s.max_retries, max_retry_wait_s=s.max_retry_wait_s, timeout_s=s.request_timeout_s,
                          transport=transport, ca_bundle=s.ca_bundle)

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
        if self.scenario.kind == "conversation":
            self._converse(client, ticket, identity)
            return
        run_id = self.plan.run_id
        body = self.builder.build(ticket.seq, identity)
        sent = time.time()
        if sent - ticket.due > self.pacer.max_late_s:  # stalled between hand-over and send: never send late
            self._unsent.add("late", ticket.seq, ticket.due)
            return
        res = client.launch(body)
        answered = time.time()
        self._write({
            "event": "launch", "run_id": run_id, "seq": ticket.seq, "name": body["name"], "flow_id": body["flowId"],
            "identity_id": identity.id, "execution_id": res.execution_id, "http_status": res.status,
            "error": res.error, "context_id": res.context_id, "attempts": res.attempts,
            "attempt_statuses": list(res.statuses), "attempt_ms": list(res.attempt_ms),
            "intended_at": round(ticket.due, 6), "sent_at": round(sent, 6), "answered_at": round(answered, 6),
            "latency_ms": round(res.elapsed_ms, 3), "worker": self.worker,
        })
        if res.status == 403 and res.error in _PERMISSION_CODES and not self.stopping:
            # Every later launch would be refused too: stop the run now, with the reason.
            self.stop()
            self._on_fatal(f"launch refused: 403 {res.error} — the OAuth client's role needs architect:flow:launch")
        # Filtered out below debug level at ~1 µs; per-request lines would otherwise cost more than a launch.
        self.log.debug("flow_execution.launched", run_id=run_id, seq=ticket.seq, execution_id=res.execution_id,
                       status=res.status, latency_ms=round(res.elapsed_ms, 3), attempts=res.attempts)
        if res.execution_id and self.scenario.follow:
            f = client.follow(res.execution_id, poll_interval_s=self.scenario.poll_interval_s,
                              timeout_s=self.scenario.follow_timeout_s, stopping=lambda: self.stopping)
            self._write({"event": "outcome", "run_id": run_id, "seq": ticket.seq, "name": body["name"],
                         "execution_id": res.execution_id, "flow_status": f.status, "polls": f.polls,
                         "poll_429": f.rate_limited, "intended_at": round(ticket.due, 6),
                         "answered_at": round(answered, 6), "observed_at": round(time.time(), 6),
                         "worker": self.worker})

    def _converse(self, client: FlowClient, ticket: Ticket, identity: Identity) -> None:
        """A bot conversation instead of a launch: one ``session`` ledger record with all its turns."""
        run_id, sc = self.plan.run_id, self.scenario
        flow = self.builder.flow_for(ticket.seq)
        body = session_body(flow, identity, seq=ticket.seq, run_id=run_id, prefix=sc.tag_prefix)
        sent = time.time()
        if sent - ticket.due > self.pacer.max_late_s:
            self._unsent.add("late", ticket.seq, ticket.due)
            return
        # Seeded per session: the same seed and seq say the same alternatives.
        rng = random.Random(f"{sc.seed}-{ticket.seq}") if sc.seed is not None else random.Random()
        conv = converse(client, body, flow.turns, identity=identity, seq=ticket.seq, run_id=run_id,
                        prefix=sc.tag_prefix, rng=rng, think_time_s=sc.think_time_s, max_turns=sc.max_turns,
                        stopping=lambda: self.stopping, sleep=gevent.sleep)
        a = conv.start
        self._write({
            "event": "session", "run_id": run_id, "seq": ticket.seq, "name": body["externalSessionId"],
            "flow_id": flow.id, "identity_id": identity.id, "session_id": conv.session_id, "http_status": a.status,
            "error": a.error, "context_id": a.context_id, "attempts": a.attempts, "attempt_statuses": list(a.statuses),
            "attempt_ms": list(a.attempt_ms), "intended_at": round(ticket.due, 6), "sent_at": round(sent, 6),
            "answered_at": round(sent + a.elapsed_ms / 1000, 6), "latency_ms": round(a.elapsed_ms, 3),
            "turns": conv.turns, "end": conv.end, "end_reason": conv.end_reason, "output": conv.output,
            "expectation_failures": conv.failures, "ended_at": round(conv.ended_at or time.time(), 6),
            "billable_sessions": conv.billable_sessions, "worker": self.worker,
        })
        if a.status == 403 and a.error in _PERMISSION_CODES and not self.stopping:
            self.stop()
            self._on_fatal(f"session start refused: 403 {a.error} — the OAuth client's role needs "
                           "textbots:botFlowSession:execute")

    def close(self) -> None:
        if self._pacer is not None:
            self._pacer.kill(block=False)
        self._unsent.flush()  # a late launch noticed by a user after the pacer ended may be pending
        self.ledger.close()
        if self.ledger.dropped:
            self.log.warning("ledger.lines_dropped", lines=self.ledger.dropped,
                             reason="requests still in flight after the stop grace")
        self.tokens.close()
