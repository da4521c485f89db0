"""The arrival schedule: when launch number ``seq`` is due, and which worker sends it.

Stages define a piecewise-linear rate r(t); C(t) is its integral (launches due by t). Launch
``seq`` is due at C⁻¹(seq). Workers split the sequence by residue (worker i of n sends seq ≡ i mod n),
so every worker knows its own launches and every sequence number — hence every execution name —
is unique across workers without asking the master. A topology change takes effect from a
sequence number all workers agree on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.load.scenario import Stage

__all__ = ["Schedule", "Partition", "Epoch"]


class Schedule:
    def __init__(self, stages: tuple[Stage, ...]) -> None:
        self._parts: list[tuple[float, float, float, float, float]] = []  # (t0, r0, r1, d, c0)
        t = c = prev = 0.0
        for st in stages:
            r0 = prev if st.ramp else st.rate_per_s
            self._parts.append((t, r0, st.rate_per_s, st.duration_s, c))
            t += st.duration_s
            c += (r0 + st.rate_per_s) / 2 * st.duration_s
            prev = st.rate_per_s
        self.duration_s = t
        self.total = max(0, math.ceil(c - 1e-9))
        """Launches in the whole schedule."""

    @property
    def mean_rate_per_s(self) -> float:
        return self.total / self.duration_s if self.duration_s else 0.0

    def rate_at(self, t: float) -> float:
        for t0, r0, r1, d, _c0 in self._parts:
            if t0 <= t < t0 + d:
                return r0 + (r1 - r0) * (t - t0) / d
        return 0.0

    def cumulative(self, t: float) -> float:
        """C(t): launches due in [0, t)."""
        for t0, r0, r1, d, c0 in self._parts:
            if t < t0 + d:
                tau = max(0.0, t - t0)
                return c0 + r0 * tau + (r1 - r0) / (2 * d) * tau * tau
        return float(self.total)

    def due_s(self, seq: int) -> float:
        """Seconds after the start at which launch ``seq`` is due."""
        for t0, r0, r1, d, c0 in self._parts:
            count = (r0 + r1) / 2 * d
            m = seq - c0
            if m >= count - 1e-9 or count == 0:
                continue
            if r0 == r1:
                return t0 + m / r0
            a = (r1 - r0) / (2 * d)
            return t0 + (-r0 + math.sqrt(max(0.0, r0 * r0 + 4 * a * m))) / (2 * a)
        return self.duration_s

    def seq_at(self, t: float) -> int:
        """The first sequence number due at or after ``t``."""
        return math.ceil(self.cumulative(t) - 1e-9)


@dataclass(frozen=True, slots=True)
class Epoch:
    """From ``from_seq`` on, ``workers`` share the sequence; this worker has ``index`` (None: not in it)."""

    from_seq: int
    workers: int
    index: int | None


class Partition:
    """This worker's share of the sequence over the run's topology epochs."""

    def __init__(self, epochs: list[Epoch] | None = None) -> None:
        self.epochs: list[Epoch] = epochs or [Epoch(from_seq=0, workers=1, index=0)]

    def add(self, epoch: Epoch) -> None:
        """A new topology from ``epoch.from_seq`` on; it replaces epochs that start at or after it."""
        self.epochs = [e for e in self.epochs if e.from_seq < epoch.from_seq] + [epoch]

    def next_seq(self, prev: int) -> int | None:
        """This worker's first sequence number after ``prev`` (None: none in any known epoch)."""
        candidate = prev + 1
        for i, e in enumerate(self.epochs):
            end = self.epochs[i + 1].from_seq if i + 1 < len(self.epochs) else math.inf
            c = max(candidate, e.from_seq)
            if c >= end or e.index is None:
                continue
            s = c + (e.index - c) % e.workers
            if s < end:
                return s
        return None
