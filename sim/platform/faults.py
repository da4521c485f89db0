"""Fault injection and simulated capacity: what goes wrong with a request, decided from a seeded RNG."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from sim.platform.executions import draw_latency_s
from sim.platform.org import Capacity, Faults

__all__ = ["Decision", "FaultInjector", "LoadMeter", "PASS"]


@dataclass(slots=True, frozen=True)
class Decision:
    """What to do to one request: wait ``delay_s``, then drop, fail with ``status``, or go on."""

    delay_s: float = 0.0
    drop: bool = False
    status: int | None = None
    overloaded: bool = False


PASS = Decision()


class LoadMeter:
    """Launches per second over a sliding one-second window, in 100 ms buckets."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets = [0] * 10
        self._stamps = [-1] * 10

    def hit(self) -> float:
        """Count one launch; returns the rate over the last second including it."""
        tick = int(self._clock() * 10)
        i = tick % 10
        if self._stamps[i] != tick:
            self._stamps[i] = tick
            self._buckets[i] = 0
        self._buckets[i] += 1
        return float(sum(b for b, s in zip(self._buckets, self._stamps) if tick - s < 10))


class FaultInjector:
    """Decides faults for a request from the run-wide and per-flow settings."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def decide(self, *layers: Faults) -> Decision:
        delay = 0.0
        status = None
        drop = False
        for f in layers:
            if not f.active:
                continue
            if f.latency is not None:
                delay += draw_latency_s(f.latency, self._rng)
            if f.drop_rate and self._rng.random() < f.drop_rate:
                drop = True
            if status is None and f.error_rates:
                r = self._rng.random()
                for code, rate in f.error_rates.items():
                    if r < rate:
                        status = code
                        break
                    r -= rate
        if not (delay or drop or status):
            return PASS
        return Decision(delay_s=delay, drop=drop, status=status)

    def overload(self, capacity: Capacity, rate_per_s: float) -> Decision:
        """Latency and 503s for a launch at ``rate_per_s`` against a flow of limited capacity."""
        excess = rate_per_s - capacity.knee_per_s
        if excess <= 0:
            return PASS
        fail = self._rng.random() < capacity.overload_error_rate
        return Decision(delay_s=excess * capacity.overload_latency_ms_per_excess / 1000.0,
                        status=503 if fail else None, overloaded=True)
