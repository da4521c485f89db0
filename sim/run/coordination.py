"""Master/worker coordination as pure state machines: no locust, no sockets, no clock of its own.

The master splits the launch sequence across live workers by epochs (from ``from_seq`` on, worker
*i* of the members sends every seq ≡ i mod n) and hands each worker a **lease**: a grant carrying
the whole epoch list and ``until_seq``. A worker sends seq *s* only when its latest grant says it
owns *s* and ``s < until_seq``; it checks that before each send. Leases are renewed while a worker
answers (acks); one that stops answering (dead, paused, partitioned) stops being renewed.

**Exactly once by construction.** The master never changes who owns a sequence number below
``max_granted`` (the largest ``until_seq`` it ever granted anyone): a re-split starts its epoch at
``from_seq >= max_granted``. Every grant a worker may still act on therefore agrees with every
other on the owner of each seq it covers, however late the grant is read. A worker paused past
its lease wakes up to seqs that are either outside its lease (skipped) or overdue by more than
``max_late_s`` (dropped and written to the ledger as ``late``): nothing is sent late, nothing twice.

The worker's side — its lease and the pacer that walks its seqs — is ``sim.run.pacer``. The Locust adapter
(``sim.run.locust_user``) turns Locust events into calls here and sends what the methods return. Times are
epoch seconds passed in by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from sim.load.schedule import Schedule

__all__ = ["Epoch", "Partition", "Grant", "Send", "MasterCoordinator", "START", "GRANT", "STOP", "ACK", "DONE",
           "REFUSED", "FATAL"]

START, GRANT, STOP = "flowsim_start", "flowsim_grant", "flowsim_stop"
ACK, DONE, REFUSED, FATAL = "flowsim_ack", "flowsim_done", "flowsim_refused", "flowsim_fatal"
"""Message types: master → worker (START, GRANT, STOP), worker → master (ACK, DONE, REFUSED, FATAL: the run
cannot go on, e.g. the client may not launch)."""


@dataclass(frozen=True, slots=True)
class Epoch:
    """From ``from_seq`` on (until the next epoch), ``members`` share the sequence by residue."""

    from_seq: int
    members: tuple[str, ...]


class Partition:
    """Which seqs one worker owns under a list of epochs."""

    def __init__(self, me: str, epochs: tuple[Epoch, ...] = ()) -> None:
        self.me = me
        self.epochs = epochs

    def owner(self, seq: int) -> str | None:
        for e in reversed(self.epochs):
            if seq >= e.from_seq:
                return e.members[seq % len(e.members)] if e.members else None
        return None

    def next_seq(self, prev: int) -> int | None:
        """This worker's first seq after ``prev`` (None: it owns none in any known epoch)."""
        candidate = prev + 1
        for i, e in enumerate(self.epochs):
            end = self.epochs[i + 1].from_seq if i + 1 < len(self.epochs) else math.inf
            if self.me not in e.members:
                continue
            index, n = e.members.index(self.me), len(e.members)
            c = max(candidate, e.from_seq)
            s = c + (index - c) % n
            if s < end:
                return s
        return None


@dataclass(frozen=True, slots=True)
class Grant:
    """A lease: the epochs, and ``until_seq`` below which the receiver may send what it owns."""

    serial: int
    epochs: tuple[Epoch, ...]
    until_seq: int

    def to_dict(self) -> dict[str, Any]:
        return {"serial": self.serial, "until_seq": self.until_seq,
                "epochs": [[e.from_seq, list(e.members)] for e in self.epochs]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grant:
        return cls(serial=int(d["serial"]), until_seq=int(d["until_seq"]),
                   epochs=tuple(Epoch(from_seq=int(f), members=tuple(m)) for f, m in d["epochs"]))


@dataclass(frozen=True, slots=True)
class Send:
    """A message the adapter must send to one worker."""

    to: str
    kind: str
    data: dict[str, Any]


@dataclass
class _Worker:
    state: Literal["invited", "ready", "member", "lost", "refused"]
    last_seen: float
    invited_at: float = 0.0
    until_seq: int = 0
    done: bool = False
    prepared: bool = False
    """Said it has the plan and its token pool (the start waits for this: ``ready_wait_s``)."""


@dataclass
class MasterCoordinator:
    """The master's side: start, invitations, acks, renewals, re-splits, the end of the run."""

    schedule: Schedule
    plan: dict[str, Any]
    """The serialised run plan, shipped in every start message."""
    start_delay_s: float = 2.0
    """From the start message that carries ``t0`` to launch 0: time for it to reach the workers (and, with no
    ``ready_wait_s``, for them to set up)."""
    ready_wait_s: float = 0.0
    """0: the start message carries ``t0`` at once. Else it first carries the plan alone; each worker sets up
    (engine, token pool) and says it is ready; ``t0`` follows once all have (or this long after the start)."""
    lease_s: float = 2.0
    """A grant covers the seqs due up to this long after the worker's last ack."""
    renew_s: float = 0.5
    silence_s: float = 2.5
    """A member silent this long is dropped from the next epoch (its lease runs out on its own)."""
    join_margin_s: float = 1.0
    """A new epoch starts no sooner than this after it is decided: time for the grants to arrive."""
    reinvite_s: float = 5.0
    t0: float | None = None
    epochs: list[Epoch] = field(default_factory=list)
    workers: dict[str, _Worker] = field(default_factory=dict)
    max_granted: int = 0
    lost: list[str] = field(default_factory=list)
    refusals: dict[str, str] = field(default_factory=dict)
    _serial: int = 0
    _next_renew: float = 0.0
    _ready_by: float | None = None
    """While the start waits for its workers to be ready: when it stops waiting."""

    @property
    def members(self) -> tuple[str, ...]:
        return self.epochs[-1].members if self.epochs else ()

    def start(self, now: float, workers: list[str]) -> list[Send]:
        """The given workers share the sequence from 0. Launch 0 is due ``start_delay_s`` from now — or, with
        ``ready_wait_s``, from when they are all ready (:meth:`tick`); until then they get the plan alone."""
        self.epochs = [Epoch(from_seq=0, members=tuple(workers))]
        for w in workers:
            self.workers[w] = _Worker(state="member", last_seen=now, invited_at=now)
        if self.ready_wait_s > 0 and workers:
            self._ready_by = now + self.ready_wait_s
            return [Send(w, START, {"plan": self.plan, "t0": None, "grant": None}) for w in workers]
        return self._go(now)

    def _go(self, now: float) -> list[Send]:
        """Launch 0 is due ``start_delay_s`` from now: every member gets ``t0`` and its lease."""
        self.t0, self._ready_by = now + self.start_delay_s, None
        members = [m for m in self.members if self.workers[m].state != "refused"]
        self.epochs = [Epoch(from_seq=0, members=tuple(members))]
        for m in members:
            self.workers[m].last_seen = max(self.workers[m].last_seen, now)
        self._next_renew = now + self.renew_s
        return [self._start_message(w, grant=self._grant(w)) for w in members]

    @property
    def waiting(self) -> bool:
        """Started, and waiting for its workers to be ready (no ``t0`` yet)."""
        return self._ready_by is not None

    def _start_message(self, worker: str, grant: Grant | None) -> Send:
        return Send(worker, START, {"plan": self.plan, "t0": self.t0, "grant": grant.to_dict() if grant else None})

    def _grant(self, worker: str) -> Grant:
        assert self.t0 is not None
        w = self.workers[worker]
        if w.state == "member":
            w.until_seq = max(w.until_seq, self.schedule.seq_at(w.last_seen + self.lease_s - self.t0))
            self.max_granted = max(self.max_granted, w.until_seq)
        self._serial += 1
        return Grant(serial=self._serial, epochs=tuple(self.epochs), until_seq=w.until_seq)

    def connected(self, now: float, workers: list[str]) -> list[Send]:
        """Locust's live workers (those it has given users): invite newcomers, again if they never answered."""
        if self.t0 is None:
            return []
        out = []
        for wid in workers:
            w = self.workers.get(wid)
            if w is None:
                self.workers[wid] = _Worker(state="invited", last_seen=-math.inf, invited_at=now)
                out.append(self._start_message(wid, None))
            elif w.state == "invited" and now - w.invited_at >= self.reinvite_s:
                w.invited_at = now
                out.append(self._start_message(wid, None))
        return out

    def ack(self, now: float, worker: str, *, ready: bool = False) -> None:
        """A worker answered (start or grant): it is alive. A lost or new one becomes ready to join. ``ready``:
        it has set up for the run (its engine and token pool)."""
        w = self.workers.get(worker)
        if w is None or w.state == "refused":
            return
        w.last_seen = now
        w.prepared = w.prepared or ready
        if w.state in ("invited", "lost"):
            w.state = "ready"

    def missing(self, worker: str) -> None:
        """Locust says the worker stopped heartbeating: treat it as silent now."""
        w = self.workers.get(worker)
        if w is not None:
            w.last_seen = -math.inf

    def refused(self, worker: str, reason: str) -> None:
        self.refusals[worker] = reason
        w = self.workers.get(worker)
        if w is not None:
            w.state = "refused"
            w.last_seen = -math.inf

    def done(self, worker: str) -> None:
        w = self.workers.get(worker)
        if w is not None:
            w.done = True

    def tick(self, now: float) -> list[Send]:
        """Start once every worker is ready (or waited long enough); re-split on joins and silences, renew
        leases. Call a few times a second, and after a ready ack (the start then goes at once)."""
        if self._ready_by is not None:
            if now >= self._ready_by or all(self.workers[m].prepared or self.workers[m].state == "refused"
                                            for m in self.members):
                return self._go(now)
            return []
        if self.t0 is None:
            return []
        members = self.members
        gone = [m for m in members if not self.workers[m].done and now - self.workers[m].last_seen > self.silence_s]
        joining = [wid for wid, w in self.workers.items()
                   if w.state == "ready" and now - w.last_seen <= self.silence_s]
        out: list[Send] = []
        if gone or joining:
            from_seq = max(self.max_granted, self.epochs[-1].from_seq,
                           self.schedule.seq_at(now + self.join_margin_s - self.t0))
            new = tuple(m for m in members if m not in gone) + tuple(joining)
            if self.epochs[-1].from_seq == from_seq:
                self.epochs[-1] = Epoch(from_seq=from_seq, members=new)
            else:
                self.epochs.append(Epoch(from_seq=from_seq, members=new))
            for g in gone:
                self.workers[g].state = "lost"
                if g not in self.lost:
                    self.lost.append(g)
                out.append(Send(g, GRANT, self._grant(g).to_dict()))  # read on resume: it owns nothing more
            for j in joining:
                self.workers[j].state = "member"
        if gone or joining or now >= self._next_renew:
            self._next_renew = now + self.renew_s
            for m in self.members:
                if not self.workers[m].done:
                    out.append(Send(m, GRANT, self._grant(m).to_dict()))
        return out

    def stop(self) -> list[Send]:
        """The run is cut short: every worker that may hold a lease stops sending now and reports done."""
        return [Send(wid, STOP, {}) for wid, w in self.workers.items() if w.state != "refused"]

    def finished(self, now: float) -> bool:
        """Every member has finished its share, or nobody is left and the schedule is over."""
        if self.t0 is None:
            return False
        members = self.members
        if members:
            return all(self.workers[m].done for m in members)
        return now > self.t0 + self.schedule.duration_s + self.silence_s
