"""A capacity search's typed result (``flowsim capacity``): each step's run judged against the SLO, and the
highest rate that met it. Serialised like a run summary (``sim.results.summary``, which reads both back)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from sim.drivers import driver_for
from sim.load.stats import Percentiles

__all__ = ["CapacityStep", "CapacityResult", "SUMMARY_SCHEMA"]

SUMMARY_SCHEMA = 1
"""The version of both kinds of summary JSON (a run's and a capacity search's)."""


@dataclass(frozen=True, kw_only=True)
class CapacityStep:
    """One step of a capacity search: a run at one constant rate, judged against the SLO."""

    rate_per_s: float
    passed: bool
    reasons: tuple[str, ...]
    achieved_rate_per_s: float
    launched: int
    latency_ms: Percentiles
    error_rate: float
    """Launches without a 200 after retries / launched."""
    first_attempt_error_rate: float
    rate_429: float
    missed_starts: int
    run_id: str
    limiting_factor: str | None
    turn_p95_ms: float | None = None
    """A conversational run: the step's turn p95 (judged against the SLO's p95 too)."""


@dataclass(frozen=True, kw_only=True)
class CapacityResult:
    schema_version: int = SUMMARY_SCHEMA
    kind: Literal["capacity"] = "capacity"
    scenario: str = ""
    sustainable_rate_per_s: float
    first_failing_rate_per_s: float | None
    precision: float
    confidence: str
    limiting_factor: str | None
    slo: dict[str, float]
    steps: tuple[CapacityStep, ...]
    search_duration_s: float
    passed: bool
    load: str = "workflow"
    """The kind of traffic searched (its driver says what the rates count)."""

    @property
    def unit(self) -> str:
        return driver_for(self.load).units

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CapacityResult:
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        kw["schema_version"] = d.get("schema_version", 0)
        kw["kind"] = "capacity"
        kw["steps"] = tuple(CapacityStep(**{**st, "reasons": tuple(st["reasons"]),
                                            "latency_ms": Percentiles(**st["latency_ms"])}) for st in d["steps"])
        return cls(**kw)
