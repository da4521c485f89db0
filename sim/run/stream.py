"""One ledger at the master, on any number of hosts: workers stream their ledger lines to the master as they write
them, and the master writes the run's one ledger from them. Pure bookkeeping: no locust, no sockets, no clock.

- A worker's :class:`Outbox` keeps every line its ledger wrote (the worker also keeps a local copy on disk) until
  it is shipped, numbered from 0. A batch is ``(first, lines)``; the worker ships batches a few times a second
  and the rest before its DONE, which says how many it wrote in all. Memory is bounded: past
  :data:`MAX_PENDING_BYTES` unshipped the worker stops sending (:attr:`Outbox.full`: flowsim never sends what it
  cannot record where the run is counted).
- The master's :class:`Intake` takes each batch once, in order (a batch again, or its overlap, is dropped; a gap
  is counted), and knows, per worker, whether everything it wrote arrived (``complete``).
- A worker whose lines did not all arrive (killed, cut off, its DONE never came) may have sent launches that are
  in no ledger the master has. How many is bounded by its lease: it sends only seqs it owns below the largest
  ``until_seq`` it was granted, and every seq it handled has one unit record (sent or not). :func:`owned` counts
  the seqs it may have handled; minus those its arrived records account for (:func:`accounted`), that is the
  most it may have sent unrecorded — stated as such, never turned into ``not_sent``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sim.run.coordination import Epoch

__all__ = ["Outbox", "Intake", "owned", "accounted", "LEDGER", "MAX_PENDING_BYTES", "BATCH_LINES", "SHIP_EVERY_S"]

LEDGER = "flowsim_ledger"
"""Message type, worker → master: ``{"worker", "run_id", "first", "lines"}``."""
MAX_PENDING_BYTES = 64 << 20
"""Unshipped ledger lines a worker holds at most (64 MiB) before it stops sending."""
BATCH_LINES = 2000
"""Lines per batch at most (one message stays well under a megabyte for launches)."""
SHIP_EVERY_S = 0.2
"""How often a worker ships what its ledger wrote."""


class Outbox:
    """A worker's ledger lines not yet shipped to the master."""

    def __init__(self, max_bytes: int = MAX_PENDING_BYTES) -> None:
        self._lines: list[bytes] = []
        self._bytes = 0
        self._max = max_bytes
        self.shipped = 0
        """Lines handed to the master's channel (numbered 0..shipped-1)."""

    @property
    def written(self) -> int:
        return self.shipped + len(self._lines)

    @property
    def full(self) -> bool:
        return self._bytes >= self._max

    def add(self, line: bytes) -> None:
        self._lines.append(line)
        self._bytes += len(line)

    def take(self, max_lines: int = BATCH_LINES) -> tuple[int, list[bytes]]:
        """The next batch: (number of its first line, its lines); shipped from now on."""
        batch, self._lines = self._lines[:max_lines], self._lines[max_lines:]
        self._bytes -= sum(len(x) for x in batch)
        first = self.shipped
        self.shipped += len(batch)
        return first, batch


@dataclass
class _Stream:
    received: int = 0
    gaps: int = 0
    """Lines that never arrived between two batches (a channel that lost messages)."""
    written: int | None = None
    """What the worker says it wrote in all (its DONE); None: it never said."""


@dataclass
class Intake:
    """The master's side: what arrived from each worker, each line once."""

    streams: dict[str, _Stream] = field(default_factory=dict)

    def accept(self, worker: str, first: int, lines: list[bytes]) -> list[bytes]:
        """The lines of a batch not taken before (to be written to the run's ledger, in this order)."""
        s = self.streams.setdefault(worker, _Stream())
        if first > s.received:
            s.gaps += first - s.received
            s.received = first
        new = lines[s.received - first:] if first < s.received else lines
        s.received += len(new)
        return new

    def done(self, worker: str, written: int) -> None:
        self.streams.setdefault(worker, _Stream()).written = written

    def complete(self, worker: str) -> bool:
        s = self.streams.get(worker)
        if s is None:
            return False
        return s.written is not None and s.gaps == 0 and s.received >= s.written

    def describe(self) -> dict[str, dict[str, Any]]:
        return {w: {"received": s.received, "written": s.written, "gaps": s.gaps, "complete": self.complete(w)}
                for w, s in sorted(self.streams.items())}


def owned(worker: str, epochs: Iterable[Epoch], until_seq: int, total: int) -> int:
    """How many seqs below ``min(until_seq, total)`` ``worker`` owns under ``epochs`` (seq ≡ its index mod the
    number of members, from each epoch's ``from_seq`` to the next's)."""
    es = list(epochs)
    top = min(until_seq, total)
    n = 0
    for i, e in enumerate(es):
        end = min(top, es[i + 1].from_seq if i + 1 < len(es) else top)
        if worker not in e.members or end <= e.from_seq:
            continue
        k, m = e.members.index(worker), len(e.members)
        n += (end - 1 - k) // m - (e.from_seq - 1 - k) // m
    return n


def accounted(records: Iterable[dict[str, Any]]) -> Counter[str]:
    """Per worker, the seqs its records account for: each unit once (a session's open and close are one), and
    every launch never sent (an aggregate counts ``count``)."""
    units: dict[str, set[str]] = {}
    out: Counter[str] = Counter()
    for r in records:
        ev, worker = r.get("event"), str(r.get("worker", ""))
        if ev in ("launch", "session", "session_open"):
            units.setdefault(worker, set()).add(str(r.get("name")))
        elif ev in ("missed", "late", "not_sent"):
            out[worker] += int(r.get("count") or 1)
    for worker, names in units.items():
        out[worker] += len(names)
    return out
