"""The arrival schedule: when launch number ``seq`` is due.

Stages define a piecewise-linear rate r(t); C(t) is its integral (launches due by t). Launch
``seq`` is due at C⁻¹(seq). Which worker sends which seq is ``sim.run.coordination``'s business.
"""

from __future__ import annotations

import math
from sim.load.scenario import Stage

__all__ = ["Schedule"]


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
