"""Coordination without Locust, sockets or sleeping: the master and worker state machines driven by a fake
clock through every transition, and a simulated fleet (message delays, pauses, deaths, joins) that checks
exactly-once sending by construction."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from sim.load.scenario import Stage
from sim.load.schedule import Schedule
from sim.run.coordination import GRANT, START, Epoch, Grant, MasterCoordinator, Partition, Send
from sim.run.pacer import Pacer, WorkerLease

T = 1_800_000_000.0  # the fake clock's epoch seconds at the start


def schedule(rate: float = 10, duration: float = 30) -> Schedule:
    return Schedule((Stage(duration_s=duration, rate_per_s=rate),))


def grants(sends: list[Send], to: str) -> list[Grant]:
    out = []
    for s in sends:
        if s.to == to and s.kind == GRANT:
            out.append(Grant.from_dict(s.data))
        elif s.to == to and s.kind == START and s.data["grant"]:
            out.append(Grant.from_dict(s.data["grant"]))
    return out


def test_partition_splits_by_residue_and_resplits_once() -> None:
    """Members take disjoint residues; after a new epoch the survivors cover every later seq exactly once."""
    epochs = (Epoch(0, ("a", "b", "c")), Epoch(30, ("a", "c")))
    taken: list[int] = []
    for me in "abc":
        p, seq = Partition(me, epochs), -1
        while (nxt := p.next_seq(seq)) is not None and nxt < 60:
            assert p.owner(nxt) == me
            taken.append(nxt)
            seq = nxt
    assert sorted(taken) == list(range(60))


def test_start_grants_every_worker_a_lease_from_seq_0() -> None:
    """Start: launch 0 due after the start delay; each worker owns its residue and a lease into the schedule."""
    m = MasterCoordinator(schedule(), {"plan": 1}, start_delay_s=2.0, lease_s=2.5)
    sends = m.start(T, ["a", "b"])
    assert m.t0 == T + 2.0 and {s.to for s in sends} == {"a", "b"}
    assert all(s.kind == START and s.data["plan"] == {"plan": 1} for s in sends)
    g = grants(sends, "a")[0]
    assert g.epochs == (Epoch(0, ("a", "b")),) and g.until_seq == 5  # seqs due in the lease's first 0.5 s at 10/s


def test_a_start_that_waits_for_ready_workers_sends_t0_once_the_last_is_ready() -> None:
    """With ``ready_wait_s``: START carries the plan alone; nothing is due while a worker sets up; the moment the
    last one says ready, t0 = now + start_delay_s goes to every member with its lease."""
    m = MasterCoordinator(schedule(), {"plan": 1}, start_delay_s=0.25, ready_wait_s=6.0, lease_s=2.0)
    sends = m.start(T, ["a", "b"])
    assert m.t0 is None and m.waiting and m.members == ("a", "b")
    assert [(s.to, s.kind, s.data) for s in sends] == [(w, START, {"plan": {"plan": 1}, "t0": None, "grant": None})
                                                      for w in ("a", "b")]
    m.ack(T + 0.01, "a")  # got the plan; not ready yet
    m.ack(T + 0.2, "a", ready=True)
    assert m.tick(T + 0.2) == [] and m.connected(T + 0.2, ["a", "b", "n"]) == [] and not m.finished(T + 99)
    m.ack(T + 0.4, "b", ready=True)
    sends = m.tick(T + 0.4)
    assert m.t0 == T + 0.4 + 0.25 and not m.waiting
    assert {s.to for s in sends} == {"a", "b"} and all(s.kind == START and s.data["t0"] == m.t0 for s in sends)
    g = grants(sends, "b")[0]
    assert g.epochs == (Epoch(0, ("a", "b")),) and g.until_seq == m.schedule.seq_at(T + 0.4 + 2.0 - m.t0)


def test_a_start_waits_no_longer_than_ready_wait_s_and_leaves_out_who_refused() -> None:
    """A worker that never says ready does not hold the run past ``ready_wait_s`` (it starts with its share, and
    is dropped if it stays silent); one that refused the plan is not waited for and owns nothing."""
    m = MasterCoordinator(schedule(), {}, start_delay_s=0.25, ready_wait_s=6.0)
    m.start(T, ["a", "b", "c"])
    m.ack(T + 0.1, "a", ready=True)
    m.refused("c", "clock")
    assert m.tick(T + 5.9) == [] and m.t0 is None
    sends = m.tick(T + 6.0)
    assert m.t0 == T + 6.25 and {s.to for s in sends} == {"a", "b"} and m.members == ("a", "b")
    done = MasterCoordinator(schedule(), {}, start_delay_s=0.25, ready_wait_s=6.0)
    done.start(T, ["a", "b"])
    done.ack(T + 0.1, "a", ready=True)
    done.refused("b", "clock")
    assert done.tick(T + 0.1) and done.t0 == T + 0.35 and done.members == ("a",)


def test_acks_renew_leases_and_silence_stops_renewal() -> None:
    """A worker that acks keeps getting longer leases; one that stops answering gets none past its last ack."""
    m = MasterCoordinator(schedule(), {}, lease_s=2.0, renew_s=0.5, silence_s=2.5)
    m.start(T, ["a", "b"])
    for i in range(1, 21):  # 10 s; only "a" answers
        now = T + i * 0.5
        m.ack(now, "a")
        sends = m.tick(now)
    until_a = grants(sends, "a")[-1].until_seq
    assert until_a == m.schedule.seq_at(T + 10 + 2.0 - m.t0)  # last ack + lease
    assert m.workers["b"].until_seq <= m.schedule.seq_at(T + 2.0 - m.t0)
    assert m.lost == ["b"] and m.members == ("a",)


def test_worker_death_after_its_first_launch_resplits_beyond_every_lease() -> None:
    """A dead member's share moves to the survivor, from a seq no lease granted before the death covers."""
    m = MasterCoordinator(schedule(), {}, lease_s=2.0, renew_s=0.5, silence_s=2.5)
    m.start(T, ["a", "b"])
    now = T
    for _ in range(12):  # 6 s, both answer: both have launched
        now += 0.5
        m.ack(now, "a")
        m.ack(now, "b")
        m.tick(now)
    granted_before = m.max_granted
    while m.members != ("a",):  # "b" dies: only "a" answers
        now += 0.25
        m.ack(now, "a")
        sends = m.tick(now)
    assert m.epochs[-1].members == ("a",) and m.epochs[-1].from_seq >= granted_before
    assert now - (T + 6) <= 2.5 + 0.25  # noticed within the silence limit
    b_last = grants(sends, "b")[-1]  # "b" is told, in case it is only paused
    assert b_last.epochs[-1].members == ("a",) and b_last.until_seq == m.workers["b"].until_seq


def test_worker_that_never_answers_the_start_is_dropped_before_launching_much() -> None:
    """Death before the first launch: dropped after the silence limit, its share from then on goes to the others."""
    m = MasterCoordinator(schedule(), {}, lease_s=2.0, silence_s=2.5)
    m.start(T, ["a", "b"])
    now = T
    while m.members != ("a",):
        now += 0.25
        m.ack(now, "a")
        m.tick(now)
    assert m.lost == ["b"] and m.workers["b"].until_seq == m.schedule.seq_at(T + 2.0 - m.t0) == 0


def test_two_deaths_leave_the_last_worker_with_everything() -> None:
    """Two of three members die at different times: two re-splits, the survivor owns every later seq."""
    m = MasterCoordinator(schedule(), {}, silence_s=2.5)
    m.start(T, ["a", "b", "c"])
    now = T
    for i in range(60):
        now += 0.25
        for w in ("a",) + (("b",) if i < 10 else ()) + (("c",) if i < 30 else ()):
            m.ack(now, w)
        m.tick(now)
    assert m.lost == ["b", "c"] and len(m.epochs) == 3 and m.members == ("a",)
    p = Partition("a", tuple(m.epochs))
    assert all(p.owner(s) == "a" for s in range(m.epochs[-1].from_seq, m.schedule.total))


def test_late_join_takes_a_share_only_after_it_answers() -> None:
    """A newcomer is invited, joins at the next re-split once it acks, and never owns a seq below max_granted."""
    m = MasterCoordinator(schedule(), {"p": 1}, silence_s=2.5)
    m.start(T, ["a"])
    now = T + 5
    m.ack(now, "a")
    m.tick(now)
    invite = m.connected(now, ["a", "n"])
    assert [(s.to, s.kind, s.data["grant"]) for s in invite] == [("n", START, None)]
    assert m.connected(now + 1, ["a", "n"]) == []  # not again before reinvite_s
    assert [s.to for s in m.connected(now + 5, ["a", "n"])] == ["n"]  # it may have missed it
    granted = m.max_granted
    m.ack(now + 5.1, "n")
    m.ack(now + 5.1, "a")
    sends = m.tick(now + 5.1)
    assert m.members == ("a", "n") and m.epochs[-1].from_seq >= granted
    assert grants(sends, "n")[-1].epochs[-1] == Epoch(m.epochs[-1].from_seq, ("a", "n"))


def test_death_during_a_resplit_still_never_reassigns_a_leased_seq() -> None:
    """A worker joins and another dies in the same tick: one epoch for both changes, after every lease."""
    m = MasterCoordinator(schedule(), {}, silence_s=2.5)
    m.start(T, ["a", "b"])
    now = T
    for _ in range(8):
        now += 0.5
        m.ack(now, "a")
        m.ack(now, "b")
        m.tick(now)
    m.connected(now, ["a", "b", "n"])
    leased = m.max_granted
    for _ in range(6):  # "b" goes silent while "n" answers
        now += 0.5
        m.ack(now, "a")
        m.ack(now, "n")
        m.tick(now)
    assert m.members == ("a", "n") and m.lost == ["b"]
    assert all(e.from_seq >= leased for e in m.epochs[1:])


def test_all_done_finishes_the_run_and_an_empty_fleet_ends_with_the_schedule() -> None:
    """The run ends when every member has finished its share, or, with nobody left, after the schedule."""
    m = MasterCoordinator(schedule(duration=10), {})
    m.start(T, ["a", "b"])
    m.done("a")
    assert not m.finished(T + 5)
    m.done("b")
    assert m.finished(T + 5)
    empty = MasterCoordinator(schedule(duration=10), {}, silence_s=2.5)
    empty.start(T, ["a"])
    empty.tick(T + 3)
    assert empty.members == () and not empty.finished(T + 12) and empty.finished(T + 15)


def test_refusal_removes_the_worker_and_keeps_the_reason() -> None:
    """A worker that refuses the plan (another flowsim version) is dropped at once, its reason kept."""
    m = MasterCoordinator(schedule(), {})
    m.start(T, ["a", "b"])
    m.refused("b", "other version")
    m.ack(T + 0.2, "a")
    m.tick(T + 0.25)
    assert m.members == ("a",) and m.refusals == {"b": "other version"}


def test_pacer_sends_when_due_waits_for_a_lease_and_drops_overdue_seqs() -> None:
    """Before due: sleep. Due and leased: send. Due but not leased: wait. Overdue by > max_late_s: late, never sent."""
    sch = schedule(rate=10)
    lease = WorkerLease("a")
    lease.apply(Grant(serial=1, epochs=(Epoch(0, ("a",)),), until_seq=3))
    p = Pacer(sch, T, lease, max_late_s=1.0)
    assert p.next(T - 0.5).kind == "sleep"
    assert [p.next(T + 0.25).kind for _ in range(3)] == ["send", "send", "send"]  # seqs 0, 1, 2 (due by 0.2 s)
    assert p.next(T + 0.35).kind == "wait"  # seq 3 is due but not leased yet
    lease.apply(Grant(serial=2, epochs=(Epoch(0, ("a",)),), until_seq=100))
    a = p.next(T + 2.0)  # a pause: seqs 3..9 are more than 1 s overdue, seq 10 is not
    assert (a.kind, a.seq) == ("late", 3)
    kinds = [p.next(T + 2.0) for _ in range(8)]
    assert [k.kind for k in kinds] == ["late"] * 6 + ["send", "send"] and kinds[-1].seq == 11


def test_pacer_skips_seqs_no_lease_covered_in_time() -> None:
    """Seqs past the lease and overdue are skipped (another worker may own them by now), not sent, not recorded."""
    lease = WorkerLease("a")
    lease.apply(Grant(serial=1, epochs=(Epoch(0, ("a",)),), until_seq=2))
    p = Pacer(schedule(rate=10), T, lease, max_late_s=1.0)
    assert [p.next(T + 0.15).kind for _ in range(2)] == ["send", "send"]
    assert p.next(T + 5.0).kind == "wait" and p.skipped == 38  # seqs 2..39 passed over; 40 not yet overdue


def test_stale_grant_is_ignored() -> None:
    """A grant older than the latest read (by serial) changes nothing."""
    lease = WorkerLease("a")
    assert lease.apply(Grant(serial=5, epochs=(Epoch(0, ("a",)),), until_seq=50))
    assert not lease.apply(Grant(serial=4, epochs=(Epoch(0, ("a", "b")),), until_seq=10))
    assert lease.until_seq == 50 and lease.partition.owner(1) == "a"


# -- a simulated fleet --------------------------------------------------------------------------------------
@dataclass
class _Node:
    lease: WorkerLease
    pacer: Pacer | None = None
    inbox: list[tuple[float, Send]] = field(default_factory=list)
    paused: tuple[float, float] = (0.0, 0.0)
    dead_at: float = float("inf")
    joined: bool = True
    done: bool = False


class Fleet:
    """Master and workers exchanging messages with random delays, stepped by a fake clock."""

    def __init__(self, seed: int, workers: list[str], rate: float = 40, duration: float = 20,
                 slow_share: float = 0.0, ready_wait_s: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.slow_share = slow_share
        self.channel: dict[tuple[str, str], float] = {}
        self.now = T
        self.schedule = schedule(rate, duration)
        self.master = MasterCoordinator(self.schedule, {}, start_delay_s=0.25 if ready_wait_s else 2.0,
                                        ready_wait_s=ready_wait_s)
        self.nodes = {w: _Node(WorkerLease(w)) for w in workers}
        self.to_master: list[tuple[float, str, str]] = []
        self.sent: dict[int, list[tuple[str, float]]] = {}
        self.late: list[int] = []
        for s in self.master.start(self.now, workers):
            self._post(s)

    def _deliver_at(self, a: str, b: str) -> float:
        """In order per channel (TCP), mostly quick, sometimes held up: safety must not depend on timing."""
        slow = self.rng.random() < self.slow_share
        at = max(self.channel.get((a, b), 0.0), self.now + self.rng.uniform(*((0.5, 2.0) if slow else (0.001, 0.05))))
        self.channel[(a, b)] = at
        return at

    def _post(self, s: Send) -> None:
        self.nodes[s.to].inbox.append((self._deliver_at("master", s.to), s))

    def _reply(self, kind: str, worker: str) -> None:
        self.to_master.append((self._deliver_at(worker, "master"), kind, worker))

    def add(self, w: str) -> None:
        self.nodes[w] = _Node(WorkerLease(w))

    def run(self, until: float, dt: float = 0.01) -> None:
        while self.now < until:
            self.now += dt
            for at, kind, w in [m for m in self.to_master if m[0] <= self.now]:
                self.to_master.remove((at, kind, w))
                if kind in ("ack", "ready"):
                    self.master.ack(self.now, w, ready=kind == "ready")
                else:
                    self.master.done(w)
            live = [w for w, n in self.nodes.items() if n.dead_at > self.now]
            for s in self.master.connected(self.now, live) + self.master.tick(self.now):
                self._post(s)
            for w, n in self.nodes.items():
                if n.dead_at <= self.now or n.paused[0] <= self.now < n.paused[1]:
                    continue
                for item in sorted((i for i in n.inbox if i[0] <= self.now), key=lambda i: i[0]):
                    n.inbox.remove(item)
                    msg = item[1]
                    if msg.kind == START and msg.data["t0"] is None:  # set up (tokens: 0.05-1.5 s), then ready
                        self.to_master.append((self._deliver_at(w, "master") + self.rng.uniform(0.05, 1.5),
                                               "ready", w))
                    elif msg.kind == START and n.pacer is None:
                        n.pacer = Pacer(self.schedule, msg.data["t0"], n.lease)
                    g = msg.data["grant"] if msg.kind == START else msg.data
                    if g:
                        n.lease.apply(Grant.from_dict(g))
                    self._reply("ack", w)
                while n.pacer is not None and not n.done:
                    a = n.pacer.next(self.now)
                    if a.kind == "send":
                        assert self.now - a.due <= n.pacer.max_late_s
                        self.sent.setdefault(a.seq, []).append((w, self.now))
                    elif a.kind == "late":
                        self.late.append(a.seq)
                    elif a.kind == "done":
                        n.done = True
                        self._reply("done", w)
                    else:
                        break


@pytest.mark.parametrize("seed", range(16))
def test_fleet_with_pause_death_and_join_sends_every_seq_at_most_once(seed: int) -> None:
    """Pause past the re-split (then resume), kill, join mid-run, messages held up: no seq is sent twice or late
    (half the seeds with a start that waits for its workers to be ready)."""
    fleet = Fleet(seed, ["a", "b", "c"], slow_share=0.2, ready_wait_s=6.0 if seed % 2 else 0.0)
    rng = random.Random(seed)
    pause_at = T + rng.uniform(4, 8)
    fleet.nodes["b"].paused = (pause_at, pause_at + rng.uniform(4, 9))  # SIGSTOP ... SIGCONT
    fleet.nodes["c"].dead_at = T + rng.uniform(6, 12)                    # SIGKILL
    fleet.run(T + 10)
    fleet.add("n")                                                      # a late joiner
    fleet.run(T + 30)
    dupes = {s: v for s, v in fleet.sent.items() if len(v) > 1}
    assert dupes == {}
    assert not set(fleet.late) & set(fleet.sent)
    total = fleet.schedule.total
    assert fleet.master.finished(fleet.now) and "c" in fleet.master.lost
    # what was not sent is bounded by the disruptions: the dead worker's and the paused worker's leases
    unsent = total - len(fleet.sent)
    assert 0 < unsent < 0.3 * total, unsent
    assert {w for v in fleet.sent.values() for w, _ in v} == {"a", "b", "c", "n"}


@pytest.mark.parametrize(("seed", "ready_wait_s"), [(s, w) for s in range(4) for w in (0.0, 6.0)])
def test_fleet_without_disruption_sends_everything_once(seed: int, ready_wait_s: float) -> None:
    """No pauses or deaths: every scheduled seq is sent exactly once, none late — also when the start waits for
    every worker to be ready (each takes its own time to fetch its tokens)."""
    fleet = Fleet(seed, ["a", "b", "c", "d"], rate=100, duration=10, ready_wait_s=ready_wait_s)
    fleet.run(T + 17)
    assert sorted(fleet.sent) == list(range(fleet.schedule.total)) and fleet.late == []
    assert all(len(v) == 1 for v in fleet.sent.values())
