"""A worker's side of the coordination (``sim.run.coordination``): the latest lease it has read, and the pacer
that walks its sequence numbers — send when due and leased, drop what is overdue, never send late. Pure: no
locust, no clock of its own (times are epoch seconds passed in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sim.load.schedule import Schedule
from sim.run.coordination import Epoch, Grant, Partition

__all__ = ["MAX_LATE_S", "WorkerLease", "Pacer", "Action"]

MAX_LATE_S = 1.0
"""A launch not sent within this long after its due time is never sent (written as ``late``)."""


class WorkerLease:
    """A worker's side: the latest grant it has read."""

    def __init__(self, me: str) -> None:
        self.me = me
        self.partition = Partition(me)
        self.until_seq = 0
        self.serial = -1

    @classmethod
    def whole(cls, me: str, total: int) -> WorkerLease:
        """A single process: it owns every seq."""
        lease = cls(me)
        lease.apply(Grant(serial=0, epochs=(Epoch(from_seq=0, members=(me,)),), until_seq=total))
        return lease

    def apply(self, grant: Grant) -> bool:
        """Take a grant; an older one than the latest read is ignored."""
        if grant.serial <= self.serial:
            return False
        self.serial = grant.serial
        self.partition = Partition(self.me, grant.epochs)
        self.until_seq = grant.until_seq
        return True


@dataclass(frozen=True, slots=True)
class Action:
    """What the pacer says to do now. ``due``/``at`` are epoch seconds."""

    kind: Literal["send", "late", "sleep", "wait", "done"]
    seq: int = -1
    due: float = 0.0
    at: float = 0.0


class Pacer:
    """Walks this worker's seqs in order: send when due and leased; drop what is overdue; never send late."""

    def __init__(self, schedule: Schedule, t0: float, lease: WorkerLease, *, max_late_s: float = MAX_LATE_S) -> None:
        self.schedule = schedule
        self.t0 = t0
        self.lease = lease
        self.max_late_s = max_late_s
        self.prev = -1
        self.skipped = 0
        """Seqs passed over because no lease covered them in time (owned by another worker by now, or nobody)."""

    def next(self, now: float) -> Action:
        total = self.schedule.total
        while True:
            seq = self.lease.partition.next_seq(self.prev)
            if seq is None:  # in no epoch now: wait for one, or for the end
                end = self.t0 + self.schedule.duration_s + self.max_late_s
                return Action("done") if now > end else Action("wait")
            if seq >= total:
                return Action("done")
            due = self.t0 + self.schedule.due_s(seq)
            if now < due:
                return Action("sleep", seq=seq, due=due, at=due)
            overdue = now - due > self.max_late_s
            if seq >= self.lease.until_seq:
                if not overdue:
                    return Action("wait", seq=seq, due=due)
                self.prev = seq
                self.skipped += 1
                continue
            self.prev = seq
            return Action("late" if overdue else "send", seq=seq, due=due)
