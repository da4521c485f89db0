"""What the engine writes for work that never got an answer: launches never sent (missed, late, refused) and
launches still in flight when a stop's grace ran out. Pure bookkeeping, no I/O of its own: records go to the
``write`` callable (the ledger, then the stats)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sim.load.payload import execution_name
from sim.load.records import Record, UnsentRecord

__all__ = ["Unsent", "InFlight"]


class Unsent:
    """Ledger records for launches never sent (``missed``, ``late``, ``not_sent``): one each, until more than
    ``detail_per_s`` in one second — then one record per second with a ``count`` (an overload or a stall
    must not turn the ledger into megabytes of identical lines)."""

    def __init__(self, write: Callable[[Record], None], *, run_id: str, prefix: str, worker: str,
                 detail_per_s: int = 50) -> None:
        self._write, self._run_id, self._prefix, self._worker = write, run_id, prefix, worker
        self._detail = detail_per_s
        self._second: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._pending: dict[str, UnsentRecord] = {}

    def add(self, event: str, seq: int, due: float, *, reason: str | None = None, cause: str | None = None) -> None:
        """``reason``/``cause``: why it was not sent (an aggregate keeps the first one's)."""
        sec = int(due)
        if self._second.get(event) != sec:
            self._flush(event)
            self._second[event], self._seen[event] = sec, 0
        self._seen[event] += 1
        if self._seen[event] <= self._detail:
            self._write(UnsentRecord(event=event, run_id=self._run_id, seq=seq,
                                     name=execution_name(self._prefix, self._run_id, seq), intended_at=round(due, 6),
                                     worker=self._worker, reason=reason, cause=cause))
            return
        agg = self._pending.get(event)
        if agg is None:
            agg = UnsentRecord(event=event, run_id=self._run_id, seq=seq, intended_at=round(due, 6),
                               worker=self._worker, count=0, reason=reason, cause=cause)
        self._pending[event] = dataclasses.replace(agg, count=(agg.count or 0) + 1, seq_last=seq)

    def _flush(self, event: str) -> None:
        agg = self._pending.pop(event, None)
        if agg is not None:
            self._write(agg)

    def flush(self) -> None:
        for event in list(self._pending):
            self._flush(event)


class InFlight:
    """Work handed to the platform and not yet written to the ledger, by seq: what to write for it if the run
    stops before its answer comes (``unanswered at the stop: may have run``). A unit written that way is
    given up: its late answer is not written again (:meth:`close` says so)."""

    def __init__(self) -> None:
        self._open: dict[int, Callable[[float], Record]] = {}
        self.given_up: set[int] = set()
        """Seqs written at the stop whose requests are still running."""
        self.answered_after_stop = 0

    def open(self, seq: int, record: Callable[[float], Record]) -> None:
        """``record(now)``: the ledger record to write for ``seq`` should the stop come first (replaces any)."""
        self._open[seq] = record

    def close(self, seq: int) -> bool:
        """The unit is over: True if its own record is still to be written (it was not given up)."""
        if seq in self.given_up:
            self.given_up.discard(seq)
            self.answered_after_stop += 1
            return False
        self._open.pop(seq, None)
        return True

    def give_up(self, now: float) -> list[Record]:
        """The stop's grace is over: the records of everything still open, now given up."""
        records = [make(now) for make in self._open.values()]
        self.given_up.update(self._open)
        self._open.clear()
        return records

    def __len__(self) -> int:
        return len(self._open)
