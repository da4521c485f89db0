"""A worker's view of the master's clock, so that a wall clock that disagrees (NTP drift, a misconfigured VM, a
host seconds ahead) changes nothing: due times, leases, the 1 s late rule and the ledger's times are all the
master's. Pure: the worker's monotonic and wall clocks are passed in.

Every message from the master carries ``at``, the master's wall clock when it sent it. The master's time when the
worker reads it is at least that (the message took some time to come), so ``at`` plus the worker's monotonic time
since is a lower bound on the master's time, and the highest such bound is the estimate: it trails the master
by the quickest message's one-way delay (microseconds on a host, milliseconds on a LAN), whatever the worker's
wall clock says. Between messages it advances with the worker's monotonic clock, so a wall-clock step mid-run
moves nothing either.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MasterClock", "MAX_CLOCK_OFFSET_S"]

MAX_CLOCK_OFFSET_S = 30.0
"""A worker whose wall clock is further than this from the master's refuses the run (fix its time first: TLS
certificates and the platform's own timestamps read the wall clock too)."""


class MasterClock:
    """The master's time as this worker estimates it (epoch seconds); callable, like ``time.time``."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._mono, self._wall = monotonic, wall
        self._anchor: tuple[float, float] | None = None
        """(master time, monotonic time) of the best bound so far; None: no message yet (the wall clock stands in)."""

    def observe(self, master_at: float) -> None:
        """A message the master sent at ``master_at`` (its wall clock) has just been read."""
        mono = self._mono()
        if self._anchor is None or master_at > self._anchor[0] + (mono - self._anchor[1]):
            self._anchor = (master_at, mono)

    def __call__(self) -> float:
        if self._anchor is None:
            return self._wall()
        return self._anchor[0] + (self._mono() - self._anchor[1])

    @property
    def known(self) -> bool:
        return self._anchor is not None

    def offset(self) -> float:
        """The master's clock minus this worker's wall clock, in seconds (positive: the worker is behind)."""
        return self() - self._wall()
