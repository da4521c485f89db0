"""The per-process load engine: paces launches at the scheduled instants, hands them to free users,
runs each (identity → tag → launch → ledger → follow), and counts everything.

Open model: launches are due at fixed instants whatever the responses do. A launch due while
every user is busy is a **missed start** (counted, written to the ledger, never sent late). Runs
under gevent (inside Locust) but does not import locust; ``sim.load.locust_user`` wires it in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.queue

from sim.logs import get_logger
from sim.load.client import FlowClient, Reporter, TokenManager
from sim.load.identity import Identity, IdentityFactory
from sim.load.ledger import Ledger, run_dir
from sim.load.payload import PayloadBuilder, execution_name
from sim.load.scenario import Scenario, Target
from sim.load.schedule import Epoch, Partition, Schedule
from sim.load.stats import RunStats
from sim.load.transport import GeventTransport

__all__ = ["Engine", "Ticket", "RunInfo"]


@dataclass(frozen=True, slots=True)
class Ticket:
    seq: int
    due: float
    """Epoch seconds at which the launch was due."""


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """What every process of a run shares: id, start instant, target and credentials."""

    run_id: str
    t0: float
    """Epoch seconds at which launch 0 is due."""
    target: Target
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # keep the secret out of any log or traceback
        return f"RunInfo(run_id={self.run_id!r}, t0={self.t0}, target={self.target!r})"


class Engine:
    def __init__(self, scenario: Scenario, *, info: RunInfo, ledger_dir: str, worker: str,
                 declared_inputs: dict[str, set[str]], report: Reporter,
                 on_done: Callable[[], None] = lambda: None) -> None:
        self.scenario = scenario
        self.info = info
        self.worker = worker
        self._report = report
        self.schedule = Schedule(scenario.stages)
        self.partition = Partition()
        self.stats = RunStats()
        self.ledger = Ledger(run_dir(ledger_dir, info.run_id))
        self.builder = PayloadBuilder(scenario, info.run_id, declared_inputs)
        self.identities = IdentityFactory(locale=scenario.locale, seed=scenario.seed)
        self.tokens = TokenManager(login_url=info.target.login_url, client_id=info.client_id,
                                   client_secret=info.client_secret, pool_size=scenario.tokens_per_client,
                                   timeout_s=scenario.request_timeout_s, report=self.report)
        self._queue: gevent.queue.Queue[Ticket | None] = gevent.queue.Queue()
        self._waiting = 0
        self.busy = 0
        self._pacer: gevent.Greenlet | None = None
        self._pacer_done = False
        self._on_done = on_done
        self._done_fired = False
        self._topology = gevent.event.Event()
        self.log = get_logger(component="engine", worker=worker)

    def second(self, at: float | None = None) -> int:
        """Whole seconds since the run's start (the time-series key)."""
        return int((time.time() if at is None else at) - self.info.t0)

    def report(self, **kw: Any) -> None:
        """Every HTTP attempt: counted per second when rate limited, then on to Locust."""
        if kw.get("context", {}).get("status") == 429:
            self.stats.series.count(self.second(), "r429")
        self._report(**kw)

    # -- pacing ------------------------------------------------------------------------------------
    def start(self, epochs: list[Epoch] | None = None) -> None:
        """Start pacing; ``epochs`` (from the master) replace the single-process default."""
        if epochs:
            self.partition = Partition(list(epochs))
        self._pacer = gevent.spawn(self._pace)

    def set_epoch(self, epoch: Epoch) -> None:
        self.partition.add(epoch)
        self._topology.set()

    def _pace(self) -> None:
        prev = -1
        t0, total = self.info.t0, self.schedule.total
        end = t0 + self.schedule.duration_s
        while True:
            seq = self.partition.next_seq(prev)
            if seq is None:  # not part of the current topology: wait for a change, or the end
                self._topology.clear()
                if time.time() > end:
                    break
                self._topology.wait(0.5)
                continue
            if seq >= total:
                break
            due = t0 + self.schedule.due_s(seq)
            delay = due - time.time()
            if delay > 0:
                # Short naps so that a topology change re-splits the sequence before the next launch.
                gevent.sleep(min(delay, 0.2))
                continue
            if self._waiting > self._queue.qsize():  # an idle user will take it right away
                self._queue.put(Ticket(seq=seq, due=due))
            else:
                self._missed(seq, due)
            prev = seq
        self._pacer_done = True
        self._check_done()

    def _missed(self, seq: int, due: float) -> None:
        self.stats.counters["missed_starts"] += 1
        self.stats.series.count(self.second(due), "missed")
        self.report(request_type="LAUNCH", name="missed start", response_time=0, response_length=0,
                    exception=RuntimeError("no free user at the launch's due time (raise max_concurrency)"),
                    context={})
        self.ledger.write({"event": "missed", "run_id": self.info.run_id, "seq": seq,
                           "name": execution_name(self.scenario.tag_prefix, self.info.run_id, seq),
                           "intended_at": round(due, 6), "worker": self.worker})

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
        transport = (GeventTransport(timeout_s=s.request_timeout_s)
                     if os.environ.get("FLOWSIM_TRANSPORT", "gevent") == "gevent" else None)
        return FlowClient(api_url=self.info.target.api_url, tokens=self.tokens, report=self.report,
                          max_retries=s.max_retries, max_retry_wait_s=s.max_retry_wait_s, timeout_s=s.request_timeout_s,
                          transport=transport)

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
        st, run_id = self.stats, self.info.run_id
        body = self.builder.build(ticket.seq, identity)
        sent = time.time()
        st.sent(sent)
        res = client.launch(body)
        answered = time.time()
        st.counters["launched"] += 1
        st.counters["retries"] += res.retries
        if res.first_status != 200:
            st.counters["first_attempt_failed"] += 1
        st.http_status[str(res.status)] += 1
        sec = self.second(ticket.due)
        st.series.count(sec, "launched")
        if res.status == 200:
            st.counters["accepted"] += 1
        else:
            st.series.count(sec, "failed")
            if res.status == 0:
                st.counters["transport_errors"] += 1
        if res.status:
            st.series.latency(sec, res.elapsed_ms)
            st.record_ms("launch", res.elapsed_ms)
            st.record_ms("launch_from_intended", (answered - ticket.due) * 1000)
        record: dict[str, Any] = {
            "event": "launch", "run_id": run_id, "seq": ticket.seq, "name": body["name"], "flow_id": body["flowId"],
            "identity_id": identity.id, "execution_id": res.execution_id, "http_status": res.status,
            "error": res.error, "context_id": res.context_id, "attempts": res.attempts,
            "intended_at": round(ticket.due, 6), "sent_at": round(sent, 6), "answered_at": round(answered, 6),
            "latency_ms": round(res.elapsed_ms, 3), "worker": self.worker,
        }
        self.ledger.write(record)
        # Filtered out below debug level at ~1 µs; per-request lines would otherwise cost more than a launch.
        self.log.debug("flow_execution.launched", run_id=run_id, seq=ticket.seq, execution_id=res.execution_id,
                       status=res.status, latency_ms=round(res.elapsed_ms, 3), attempts=res.attempts)
        if res.execution_id and self.scenario.follow:
            status = client.follow(res.execution_id, poll_interval_s=self.scenario.poll_interval_s,
                                   timeout_s=self.scenario.follow_timeout_s)
            done = time.time()
            st.outcomes[status] += 1
            if status != "COMPLETED":
                st.series.count(sec, "outcome_failed")
            st.record_ms("flow_completion", (done - answered) * 1000)
            self.ledger.write({"event": "outcome", "run_id": run_id, "seq": ticket.seq, "name": body["name"],
                               "execution_id": res.execution_id, "flow_status": status,
                               "observed_at": round(done, 6), "worker": self.worker})

    def close(self) -> None:
        if self._pacer is not None:
            self._pacer.kill(block=False)
        self.ledger.close()
        self.tokens.close()
