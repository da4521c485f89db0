"""Per-second series of a run, compact: counters and latency buckets in flat arrays (launches; for conversations
also their turns, made only when the first turn is counted).

A run of a day must not grow a generator by gigabytes: each second costs 9 counters and 96 latency
buckets (4 B each, ~0.4 KB: ~1.5 MB an hour), where an HDR histogram per second cost ~26 KB. The
buckets are logarithmic, four per doubling from 10 µs (each ±9 % around its middle): fine for charts;
SLO percentiles come from the run's HDR histograms (``sim.load.stats``), never from these.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["TimeSeries", "KEYS", "LATENCIES", "MAX_ENDINGS"]

KEYS = ("launched", "failed", "first_failed", "retries", "r429", "missed", "late", "outcome_failed", "busy_ms")
"""What is counted per second (by the second each launch was due): ``failed`` after retries, ``first_failed`` at
the first attempt (what retries hide), ``retries`` (attempts after the first), and ``busy_ms``, the launches'
end-to-end time summed: busy_ms / 1000 is the average number of that second's launches in flight (Little's law)."""

LATENCIES = ("launch", "turn")
"""Latencies kept per second: a unit's first request; a conversation's turns (by the second it was due; rows say
``turn_p50``...)."""

MAX_ENDINGS = 12
"""Ending names kept per second; a run's 12th and later names are counted together as ``other``."""

_PER_DOUBLING = 4
_N = 96
"""Latency buckets per second: 10 µs × 2^(96/4) ≈ 168 s at the top (longer ones count there)."""
_MIN_US = 10.0


def _bucket(ms: float) -> int:
    us = ms * 1000.0
    if us <= _MIN_US:
        return 0
    return min(_N - 1, int(_PER_DOUBLING * math.log2(us / _MIN_US)) + 1)


def _middle_ms(bucket: int) -> float:
    """The geometric middle of a bucket, in ms."""
    return _MIN_US * 2 ** ((bucket - 0.5) / _PER_DOUBLING) / 1000.0 if bucket else _MIN_US / 1000.0


class TimeSeries:
    """Counts and latency buckets keyed by whole seconds since the run's start (second 0 = launch 0 due)."""

    def __init__(self) -> None:
        self._counts = {k: array("I") for k in KEYS}
        self._lats: dict[str, array[int]] = {"launch": array("I")}
        self._ends: dict[str, array[int]] = {}
        """A conversation's endings (exit reason, transfer, no reply...) per second, at most :data:`MAX_ENDINGS`
        names (more count as ``other``)."""
        self._base = 0
        """The second stored at index 0 (a worker's series, drained every report, starts mid-run)."""
        self._seconds = 0

    def _index(self, second: int) -> int:
        """Where ``second`` lives in the arrays, growing them (in steps of a minute) as needed."""
        second = max(0, second)
        if self._seconds == 0:
            self._base = second
        if second < self._base:  # an earlier second than any so far: shift everything right
            more = self._base - second
            for d in (self._counts, self._ends):
                for k, a in d.items():
                    d[k] = array("I", [0] * more) + a
            for k, lat in self._lats.items():
                self._lats[k] = array("I", [0] * (more * _N)) + lat
            self._base, self._seconds = second, self._seconds + more
        i = second - self._base
        if i >= self._seconds:
            more = max(i + 1 - self._seconds, 64)
            for a in (*self._counts.values(), *self._ends.values()):
                a.extend([0] * more)
            for lat in self._lats.values():
                lat.extend([0] * (more * _N))
            self._seconds += more
        return i

    def count(self, second: int, key: str, n: int = 1) -> None:
        self._counts[key][self._index(second)] += n

    def ending(self, second: int, name: str, n: int = 1) -> None:
        """A conversation due at ``second`` ended this way."""
        i = self._index(second)
        if name not in self._ends:
            name = name if len(self._ends) < MAX_ENDINGS - 1 else "other"
            self._ends.setdefault(name, array("I", [0] * self._seconds))
        self._ends[name][i] += n

    def _lat(self, kind: str) -> array[int]:
        lat = self._lats.get(kind)
        if lat is None:  # a conversation's first turn: its buckets from now on, as long as the launches'
            lat = self._lats[kind] = array("I", [0] * (self._seconds * _N))
        return lat

    def latency(self, second: int, ms: float, kind: str = "launch") -> None:
        i = self._index(second)
        self._lat(kind)[i * _N + _bucket(ms)] += 1

    def _used(self) -> range:
        """Indexes from the first to the last second with anything in it."""
        def busy(i: int) -> bool:
            return any(a[i] for a in (*self._counts.values(), *self._ends.values())) or any(any(lat[i * _N:(i + 1) * _N])
                                                                    for lat in self._lats.values())
        last = next((i for i in range(self._seconds - 1, -1, -1) if busy(i)), -1)
        first = next((i for i in range(last + 1) if busy(i)), 0)
        return range(first, last + 1)

    def encode(self) -> dict[str, Any]:
        """Sparse plain data (what a worker ships to the master)."""
        used, base = self._used(), self._base
        def lat(a: array[int]) -> dict[str, list[list[int]]]:
            return {str(base + i): [[b, n] for b in range(_N) if (n := a[i * _N + b])] for i in used
                    if any(a[i * _N:(i + 1) * _N])}

        out = {"counts": {k: {str(base + i): a[i] for i in used if a[i]} for k, a in self._counts.items()},
               "lat": lat(self._lats["launch"])}
        if "turn" in self._lats:
            out["lat_turn"] = lat(self._lats["turn"])
        if self._ends:
            out["endings"] = {k: {str(base + i): a[i] for i in used if a[i]} for k, a in self._ends.items()}
        return out

    def merge(self, data: dict[str, Any]) -> None:
        for key, per_second in data.get("counts", {}).items():
            for sec, n in per_second.items():
                self.count(int(sec), key, n)
        for name, per_second in data.get("endings", {}).items():
            for sec, n in per_second.items():
                self.ending(int(sec), str(name), int(n))
        for key, kind in (("lat", "launch"), ("lat_turn", "turn")):
            for sec, pairs in data.get(key, {}).items():
                i = self._index(int(sec))
                lat = self._lat(kind)
                for b, n in pairs:
                    lat[i * _N + int(b)] += n

    def _percentiles(self, i: int, kind: str = "launch") -> dict[str, float] | None:
        lat = self._lats.get(kind)
        if lat is None:
            return None
        row = lat[i * _N:(i + 1) * _N]
        total = sum(row)
        if not total:
            return None
        out, acc, b = {}, 0, 0
        for p in (50, 95, 99):
            need = math.ceil(total * p / 100)
            while acc + row[b] < need:
                acc += row[b]
                b += 1
            out[f"p{p}"] = round(_middle_ms(b), 2)
        return out

    def rows(self, rate_at: Callable[[float], float] | None = None) -> list[dict[str, Any]]:
        """One row per second: target and achieved rate, failures, 429s, missed and late, latency percentiles."""
        out = []
        for i in self._used():
            sec = self._base + i
            row: dict[str, Any] = {"t": sec, **{k: a[i] for k, a in self._counts.items()}}
            if rate_at is not None:
                row["target"] = round(rate_at(sec + 0.5), 3)
            pct = self._percentiles(i)
            if pct:
                row.update(pct)
            turn = self._percentiles(i, "turn")
            if turn:
                row.update({f"turn_{k}": v for k, v in turn.items()})
            if self._ends:
                row["endings"] = {k: a[i] for k, a in self._ends.items() if a[i]}
            out.append(row)
        return out

    def window(self, last_second: int, seconds: int) -> Counter[str]:
        """Counts summed over ``seconds`` seconds ending at ``last_second``."""
        total: Counter[str] = Counter()
        lo, hi = max(0, last_second - seconds + 1 - self._base), min(self._seconds, last_second + 1 - self._base)
        for i in range(lo, hi):
            for k, a in self._counts.items():
                total[k] += a[i]
        return total

    def nbytes(self) -> int:
        return sum(a.itemsize * len(a) for a in (*self._counts.values(), *self._lats.values(), *self._ends.values()))
