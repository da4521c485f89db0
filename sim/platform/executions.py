"""Flow executions: their lifecycle (RUNNING → terminal) and a bounded store of what was received."""

from __future__ import annotations

import gc
import math
import random
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sim.platform.org import Flow, Latency, Variable

__all__ = ["Execution", "ExecutionStore", "draw_latency_s", "TERMINAL_STATUSES", "output_data"]

TERMINAL_STATUSES = ("COMPLETED", "FAILED", "ERROR", "TERMINATED")


def draw_latency_s(dist: Latency, rng: random.Random) -> float:
    """A draw, in seconds, from a log-normal with the given median and p99 (ms)."""
    if dist.sigma == 0.0:
        return dist.median_ms / 1000.0
    return dist.median_ms * math.exp(rng.gauss(0.0, dist.sigma)) / 1000.0


@dataclass(slots=True)
class Execution:
    """One launched execution as the simulator received it, with its planned fate."""

    id: str
    name: str | None
    flow: Flow
    version: str
    input_data: dict[str, Any]
    client_id: str
    launched_at: float
    """Epoch seconds."""
    duration_s: float
    outcome: str
    """Terminal status it will reach: COMPLETED, FAILED or ERROR."""
    size: int = 0
    """Bytes of the launch request body: what the store counts against its byte budget."""

    def status_at(self, now: float) -> str:
        return "RUNNING" if now < self.launched_at + self.duration_s else self.outcome

    def completed_at(self) -> float:
        return self.launched_at + self.duration_s


def _output_value(var: Variable, seq: int) -> Any:
    scalar: Any = {"string": "ok", "integer": seq, "boolean": True, "decimal": seq / 100.0,
                   "datetime": "2026-01-01T00:00:00.000Z"}[var.type]
    return [scalar] if var.array else scalar


def output_data(execution: Execution) -> dict[str, Any]:
    """Deterministic output values for a completed execution."""
    seq = int(execution.id[-6:], 16)
    return {v.name: _output_value(v, seq) for v in execution.flow.outputs}


_OVERHEAD = 512
"""Approximate bytes an Execution costs beyond its request body."""


class ExecutionStore:
    """Executions by id, oldest evicted first past ``max_executions``, ``max_bytes`` or ``max_age_s``.

    Memory is bounded in records and in bytes: each execution counts its request body's size (plus a
    fixed ~0.5 KB of bookkeeping), so a few huge launches cannot take what 200k small ones may.
    """

    def __init__(self, *, max_executions: int, max_age_s: float, clock: Callable[[], float],
                 max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_executions = max_executions
        self.max_bytes = max_bytes
        self.bytes = 0
        self.max_age_s = max_age_s
        self._clock = clock
        self._items: OrderedDict[str, Execution] = OrderedDict()
        self.received = 0
        """Executions ever stored (not reduced by eviction)."""
        self.evicted = 0

    def add(self, execution: Execution) -> None:
        self._items[execution.id] = execution
        self.bytes += execution.size + _OVERHEAD
        self.received += 1
        while len(self._items) > self.max_executions or (self.bytes > self.max_bytes and len(self._items) > 1):
            self._pop_oldest()
        if self.received % 1024 == 0:
            self._evict_old()
        if self.received % 16384 == 0:
            # Stored executions hold no reference cycles; moving them out of the collector's view keeps
            # full collections (tens of ms with 200k records) from showing up as latency spikes.
            gc.freeze()

    def get(self, execution_id: str) -> Execution | None:
        e = self._items.get(execution_id)
        if e is not None and e.launched_at < self._clock() - self.max_age_s:
            self._evict_old()
            return None
        return e

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Execution]:
        return iter(list(self._items.values()))

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def _pop_oldest(self) -> None:
        _id, old = self._items.popitem(last=False)
        self.bytes -= old.size + _OVERHEAD
        self.evicted += 1

    def _evict_old(self) -> None:
        cutoff = self._clock() - self.max_age_s
        while self._items:
            first = next(iter(self._items.values()))
            if first.launched_at >= cutoff:
                break
            self._pop_oldest()
