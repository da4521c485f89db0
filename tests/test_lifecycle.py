"""A run's lifecycle without Locust, sockets or sleeping: the phases of :class:`~sim.run.lifecycle.Lifecycle` through
every way a run starts and ends, and the worker's message handlers (:class:`~sim.run.lifecycle.WorkerSide`) with a
fake engine and a recording sender — START after START, STOP with its grace, SIGTERM before the first launch, a
refused plan, the 403-fatal stop, a worker lost during the stop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sim.load.overrides import constant_rate
from sim.load.scenario import Target, load_scenario
from sim.run.coordination import ACK, REFUSED, START, STOP, Grant, MasterCoordinator
from sim.run.pacer import WorkerLease
from sim.run.lifecycle import Lifecycle, WorkerSide
from sim.run.plan import FlowPlan, RunPlan

ROOT = Path(__file__).resolve().parent.parent
T = 1_800_000_000.0


def plan(run_id: str = "R1") -> RunPlan:
    sc = constant_rate(load_scenario(ROOT / "scenarios" / "smoke.toml"), rate_per_s=10, duration_s=10)
    return RunPlan(run_id=run_id, scenario=sc, target=Target(api_url="http://127.0.0.1:1", login_url="http://127.0.0.1:1"),
                   credentials="builtin", flows=(FlowPlan(id="f", name="f", division_id="d", division="d", version="1",
                                                          inputs=()),))


# -- the phases ---------------------------------------------------------------------------------------------------
def test_a_run_that_ends_with_its_schedule_is_counted_once_and_not_interrupted() -> None:
    life = Lifecycle()
    assert life.begin() and not life.begin()  # a second START does not take the same run again
    life.start(T)
    assert life.phase == "running" and not life.complete
    assert life.schedule_done() and life.complete and not life.schedule_done()
    assert life.halt() and not life.stop_workers  # the workers ended by themselves: no STOP
    assert life.count() and not life.count()
    assert life.phase == "counted" and not life.interrupted and not life.verdict_interrupted


def test_stop_while_running_interrupts_and_tells_the_workers() -> None:
    life = Lifecycle()
    life.begin()
    life.start(T)
    assert life.halt() and life.interrupted and life.verdict_interrupted and life.stop_workers
    assert not life.halt()  # the grace is given once
    assert not life.schedule_done()  # a schedule that ends during the stop changes nothing
    assert life.count() and life.interrupted


def test_sigterm_before_the_first_launch_ends_the_run_with_nothing_to_count() -> None:
    for before in ("planned", "starting"):
        life = Lifecycle()
        if before == "starting":
            life.begin()
        assert life.signal() == "end"
        assert life.complete and life.interrupted and life.t0 is None
        assert not life.halt() and not life.count()  # nothing was sent: no summary to make


def test_sigterm_while_running_halts_and_later_signals_do_nothing_more() -> None:
    life = Lifecycle()
    life.start(T)
    assert life.signal() == "halt"
    assert life.halt() and life.signal() == "none"


def test_the_403_fatal_stop_keeps_its_reason_and_is_no_interruption() -> None:
    life = Lifecycle()
    life.start(T)
    assert life.abort("launch refused: 403 missing.permissions", fatal=True)
    assert not life.abort("flood")  # the first reason is the run's reason
    assert life.complete and life.aborted == "launch refused: 403 missing.permissions" and life.fatal
    assert life.halt() and life.stop_workers  # the workers are still sending: they must be told
    # Halting after an abort counts as stopped early by flowsim, not interrupted from outside.
    assert life.count() and not life.verdict_interrupted


def test_an_abort_after_the_halt_changes_nothing() -> None:
    life = Lifecycle()
    life.start(T)
    life.halt()
    assert not life.abort("late flood") and life.aborted is None


def test_a_started_run_cannot_start_again() -> None:
    life = Lifecycle()
    life.start(T)
    with pytest.raises(RuntimeError):
        life.start(T + 1)


# -- the worker's handlers ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class FakeEngine:
    plan: RunPlan
    lease: WorkerLease
    ready: Callable[[], None]
    t0: float | None = None
    grants: list[Grant] = dataclasses.field(default_factory=list)
    stopped_with: list[float | None] = dataclasses.field(default_factory=list)

    def grant(self, grant: Grant) -> None:
        self.grants.append(grant)
        self.lease.apply(grant)

    def stop(self, grace_s: float | None = None) -> None:
        self.stopped_with.append(grace_s)


class Worker:
    """A WorkerSide with a recording sender, a fake engine factory and a record of finished runs."""

    def __init__(self, me: str = "w1") -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.engines: list[FakeEngine] = []
        self.finished: list[FakeEngine] = []
        self.logged: list[tuple[str, dict[str, Any]]] = []

        def prepare(p: RunPlan, lease: WorkerLease, ready: Callable[[], None]) -> FakeEngine:
            self.engines.append(FakeEngine(p, lease, ready))
            return self.engines[-1]

        def start(engine: FakeEngine, t0: float) -> None:
            assert engine.t0 is None, "an engine started twice"
            engine.t0 = t0

        self.side = WorkerSide(me, send=lambda kind, data: self.sent.append((kind, data)), prepare=prepare,
                               start=start,  # type: ignore[arg-type]
                               finish=lambda e: self.finished.append(e),  # type: ignore[arg-type,return-value]
                               log=lambda event, **kw: self.logged.append((event, kw)), give_up_s=3.5)


def start_messages(p: RunPlan, workers: list[str]) -> dict[str, dict[str, Any]]:
    m = MasterCoordinator(p.schedule, p.to_dict(), start_delay_s=2.0)
    return {s.to: s.data for s in m.start(T, workers) if s.kind == START}


def test_start_is_acknowledged_every_time_and_begins_the_run_once() -> None:
    """The master repeats START until acknowledged: a repeat must not start a second engine (a second sender)."""
    w = Worker()
    msg = start_messages(plan(), ["w1", "w2"])["w1"]
    w.side.on_start(msg)
    w.side.on_start(msg)
    assert len(w.engines) == 1 and w.engines[0].t0 == T + 2.0
    assert w.sent == [(ACK, {"worker": "w1"})] * 2
    assert w.engines[0].lease.serial >= 0  # the START's grant applied (-1: none): the engine obeys it at once


def test_a_start_without_t0_sets_up_says_ready_and_begins_only_on_t0() -> None:
    """A start that waits for its workers: the plan alone sets the engine up (not started); ready is said once its
    token pool is in (naming the run: a late word from the last run's engine counts for nothing); the START with
    t0 and the grant begins it, once; a joiner's START (t0 at once) sets up and begins in one go."""
    w = Worker()
    p = plan()
    m = MasterCoordinator(p.schedule, p.to_dict(), start_delay_s=0.25, ready_wait_s=6.0)
    w.side.on_start(m.start(T, ["w1"])[0].data)
    assert len(w.engines) == 1 and w.engines[0].t0 is None and w.sent == [(ACK, {"worker": "w1"})]
    w.engines[0].ready()
    assert w.sent[-1] == (ACK, {"worker": "w1", "ready": p.run_id})
    m.ack(T + 0.1, "w1", ready=True)
    go = m.tick(T + 0.1)[0].data
    w.side.on_start(go)
    w.side.on_start(go)
    assert len(w.engines) == 1 and w.engines[0].t0 == T + 0.35 and w.engines[0].lease.serial >= 0
    w.side.on_start(start_messages(plan("R2"), ["w1"])["w1"])  # the next run (web UI)
    w.engines[0].ready()  # the last run's engine, late: not ready for this one
    assert w.sent[-1] == (ACK, {"worker": "w1"}) and w.engines[1].t0 == T + 2.0


def test_start_after_start_counts_the_last_run_then_begins_the_next() -> None:
    """The web UI's second START: the previous run's engine is counted (closed) before the new one begins."""
    w = Worker()
    w.side.on_start(start_messages(plan("R1"), ["w1"])["w1"])
    w.side.on_start(start_messages(plan("R2"), ["w1"])["w1"])
    assert [e.plan.run_id for e in w.engines] == ["R1", "R2"]
    assert w.finished == [w.engines[0]]
    assert w.sent == [(ACK, {"worker": "w1"})] * 2  # each START acknowledged


def test_a_plan_from_another_flowsim_is_refused_and_nothing_starts() -> None:
    w = Worker()
    msg = start_messages(plan(), ["w1"])["w1"]
    msg = {**msg, "plan": {**msg["plan"], "flowsim_version": "0.0.0-other"}}
    w.side.on_start(msg)
    assert w.engines == [] and w.sent[0][0] == REFUSED and "install the same version" in w.sent[0][1]["reason"]
    assert w.logged[0][0] == "plan.refused"


def test_grants_reach_the_engine_and_are_acknowledged() -> None:
    w = Worker()
    w.side.on_grant(Grant(serial=0, epochs=(), until_seq=0).to_dict())
    assert w.sent == []  # no run yet: nothing to grant to, nothing to acknowledge
    p = plan()
    m = MasterCoordinator(p.schedule, p.to_dict(), start_delay_s=2.0)
    sends = m.start(T, ["w1"])
    w.side.on_start(sends[0].data)
    m.ack(T + 0.1, "w1")
    renewal = [s for s in m.tick(T + 1.0) if s.to == "w1"]
    for s in renewal:
        w.side.on_grant(s.data)
    assert len(w.engines[0].grants) == 1 + len(renewal) and w.sent[-1] == (ACK, {"worker": "w1"})  # START's too


def test_stop_gives_work_in_flight_its_grace_and_a_stop_before_start_is_ignored() -> None:
    w = Worker()
    w.side.on_stop({})
    assert w.engines == []
    w.side.on_start(start_messages(plan(), ["w1"])["w1"])
    w.side.on_stop({})
    assert w.engines[0].stopped_with == [3.5]


def test_a_worker_lost_during_the_stop_does_not_hold_the_count() -> None:
    """The master's side of a stop: STOP goes to every member; one answers DONE, one is lost (Locust marks it
    missing). The run is finished for counting once the survivor is done: the lost one's share is not waited on."""
    p = plan()
    m = MasterCoordinator(p.schedule, p.to_dict(), start_delay_s=2.0)
    m.start(T, ["w1", "w2"])
    for wid in ("w1", "w2"):
        m.ack(T + 0.1, wid)
    life = Lifecycle()
    life.start(m.t0 or T)
    assert life.halt() and life.stop_workers
    stops = m.stop()
    assert {s.to for s in stops if s.kind == STOP} == {"w1", "w2"}
    m.done("w1")
    assert not m.finished(T + 3)
    m.missing("w2")
    m.tick(T + 3)  # the lost worker leaves the membership
    assert m.finished(T + 3) and life.count() and life.verdict_interrupted


def test_one_ctrl_c_delivered_twice_is_one_stop_and_a_later_one_insists() -> None:
    """Terminal and `timeout` both send SIGINT on one Ctrl-C: the repeat within REPEAT_WINDOW_S is ignored (the
    orderly stop goes on, its summary is written); a signal after the window forces (everything is killed)."""
    import os
    import signal

    from sim.run.process import REPEAT_WINDOW_S, Interrupted, signals_interrupt

    now = [100.0]
    raised: list[Interrupted] = []
    with signals_interrupt(clock=lambda: now[0]):
        for step in (0.0, 0.1, REPEAT_WINDOW_S - 0.2, 0.2):  # at 100.0, 100.1, 100.9 (ignored), 101.1
            now[0] += step
            try:
                os.kill(os.getpid(), signal.SIGINT)  # the handler runs before os.kill returns to this frame
            except Interrupted as exc:
                raised.append(exc)
    assert [(e.signum, e.force) for e in raised] == [(signal.SIGINT, False), (signal.SIGINT, True)]


def test_the_end_of_a_run_does_not_stop_locust_a_second_time_while_a_stop_waits_on_work_in_flight() -> None:
    """STOP in the web UI: Locust fires test_stopping (our halt, which waits for work in flight) before its state
    says it stops. The run's own end, due meanwhile, must not call stop() again (Locust would stop each user twice:
    "Tried to stop User in an unexpected state: stopping", seen once in a full suite run)."""
    from types import SimpleNamespace

    from sim.run.fleet import ProcessRun

    calls: list[str] = []
    runner = SimpleNamespace(state="running", shape_greenlet=None, shape_last_tick=None,
                             stop=lambda: calls.append("stop"), quit=lambda: calls.append("quit"))
    env = SimpleNamespace(runner=runner, parsed_options=SimpleNamespace(headless=False))
    run = ProcessRun(env, None, None, role="local")
    run.life.begin()
    run.life.start(0.0)
    run.life.halt()  # inside Locust's stop(): test_stopping ran our halt; the state still reads "running"
    run._end_test()
    assert calls == []
    other = ProcessRun(env, None, None, role="local")
    other.life.begin()
    other.life.start(0.0)
    other.life.schedule_done()  # the natural end: nothing stops it yet
    other._end_test()
    assert calls == ["stop"]


class _Clocks:
    """A worker's monotonic clock and its wall clock, which is ``skew`` seconds off the master's."""

    def __init__(self, master: float, skew: float) -> None:
        self.master, self.skew, self.mono = master, skew, 500.0

    def advance(self, s: float) -> None:
        self.master += s
        self.mono += s

    def wall(self) -> float:
        return self.master + self.skew


@pytest.mark.parametrize("skew", [2.0, -2.0, 0.0])
def test_a_worker_whose_wall_clock_is_off_keeps_to_the_masters_and_says_by_how_much(skew: float) -> None:
    """A worker 2 s ahead (or behind) of the master reads the master's time from its messages' ``at`` (each taking
    5-50 ms to arrive): its clock trails the master's by at most the quickest delay, whatever its wall clock says
    (even stepped mid-run), so a pacer on it sends every seq on time, none late, the rate exact; its ACK says how
    far off it is."""
    import random

    from sim.run.clock import MasterClock
    from sim.run.pacer import Pacer, WorkerLease

    c = _Clocks(master=T, skew=skew)
    clock = MasterClock(monotonic=lambda: c.mono, wall=c.wall)
    w = Worker()
    w.side.clock = clock
    p = plan()
    m = MasterCoordinator(p.schedule, p.to_dict(), start_delay_s=2.0)
    msg = {**m.start(T, ["w1"])[0].data, "at": c.master}
    c.advance(0.03)
    w.side.on_start(msg)
    assert w.sent[-1][1]["clock_offset_s"] == pytest.approx(-skew - 0.03, abs=1e-6)
    lease = WorkerLease("w1")
    lease.apply(Grant.from_dict(msg["grant"]))
    pacer = Pacer(p.schedule, msg["t0"], lease)
    rng = random.Random(3)
    sent: list[tuple[int, float]] = []
    while c.master < T + 2.0 + p.schedule.duration_s + 2:
        sends = m.tick(c.master)
        m.ack(c.master, "w1")
        delay = rng.uniform(0.005, 0.05)
        c.advance(delay)
        for s in sends:
            clock.observe(c.master - delay)  # sent ``delay`` ago by the master's clock
            lease.apply(Grant.from_dict(s.data))
        if c.master > T + 5:
            c.skew = skew + 3.0  # the worker's wall clock steps mid-run (NTP): nothing moves
        a = pacer.next(clock())
        while a.kind == "send":
            sent.append((a.seq, c.master - a.due))
            a = pacer.next(clock())
        assert a.kind != "late", a
        c.advance(0.01)
    assert [seq for seq, _ in sent] == list(range(p.schedule.total))
    # due → sent, on the master's clock: never early; late by at most the estimate's lag (the quickest message's
    # delay, ≤ 50 ms) plus this loop's step (≤ 60 ms). A clock that read the wall would be 2 s early or late.
    assert all(0.0 <= behind <= 0.05 + 0.06 + 1e-9 for _, behind in sent), max(b for _, b in sent)
    assert abs(clock.offset() - (-(skew + 3.0))) <= 0.05 + 1e-9


def test_a_worker_whose_clock_is_minutes_off_refuses_in_one_line() -> None:
    from sim.run.clock import MasterClock

    c = _Clocks(master=T, skew=-120.0)
    w = Worker()
    w.side.clock = MasterClock(monotonic=lambda: c.mono, wall=c.wall)
    w.side.on_start({**start_messages(plan(), ["w1"])["w1"], "at": c.master})
    assert w.engines == [] and w.sent[0][0] == REFUSED
    assert "wall clock is 120.0 s behind the master's (more than 30 s): set its time (NTP)" in w.sent[0][1]["reason"]
