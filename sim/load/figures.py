"""The figures of a run, computed in one place: :func:`figures` turns :class:`~sim.load.stats.RunStats` into one
:class:`Figures` value, and every view reads it — the progress line, the live terminal, Prometheus, the web
tab, the live thresholds and the final summary. So "achieved rate", "failed" or "missed-start rate" has one
definition, live and at the end.

A kind of traffic adds its own figures as a **section** (its driver's ``section``): a value that says what it
contributes to each view (threshold figures, rows, text lines, compare metrics, capacity judgements, report
parts) so that no view asks which kind of traffic ran (``sim.drivers.sessions.Conversations``: the section of
conversational drivers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sim.load.stats import Percentiles, RunStats

__all__ = ["Figures", "FlowCompletion", "Section", "BarChart", "RequestRow", "MetricSpec", "figures",
           "rate_per_s", "counts_text", "ms_text"]


def counts_text(d: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in d.items()) or "none"


def rate_per_s(n: int, first: float | None, last: float | None) -> float:
    """The one definition of an achieved rate: (units sent − 1) / (last send − first send)."""
    if first is None or last is None or n < 2 or last <= first:
        return float(n)
    return (n - 1) / (last - first)


@dataclass(frozen=True, slots=True)
class BarChart:
    """A bar chart a section asks the report to draw: (label, value, color) bars."""

    title: str
    ylabel: str
    bars: tuple[tuple[str, int, str], ...]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A Prometheus family a section exposes: one value, or one per label value (``label``)."""

    name: str
    doc: str
    kind: str
    """"counter" or "gauge"."""
    values: dict[str, float]
    """label value → value; the key "" when the family has no label of its own."""
    label: str | None = None


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One row of the report's per-request table."""

    name: str
    count: int
    failed: int | None
    r429: int | None
    latency: Percentiles


class Section(Protocol):
    """What a kind of traffic adds to the figures (see the module docstring)."""

    key: str
    """Its key in the summary JSON."""
    title: str
    """Its heading in the report."""
    request_note: str
    """What "failed" means in its request rows."""

    def observed(self) -> dict[str, float | None]: ...
    def rate_limited(self) -> dict[str, int]: ...
    def rows(self) -> list[tuple[str, str]]: ...
    def text_rows(self) -> list[tuple[str, str]]: ...
    def compare_metrics(self) -> dict[str, tuple[float | None, str, str]]: ...
    def capacity_reasons(self, p95_ms: float, max_error_rate: float) -> list[str]: ...
    def step_p95_ms(self) -> float | None: ...
    def request_rows(self, path: str) -> list[RequestRow]: ...
    def kpis(self) -> list[tuple[str, Any]]: ...
    def charts(self) -> list[BarChart]: ...
    def metrics(self) -> list[MetricSpec]: ...
    def to_dict(self) -> dict[str, Any]: ...
    def failure_groups(self) -> list[dict[str, Any]]: ...
    def step_cases(self) -> list[tuple[str, str | None]]: ...
    def steps(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, kw_only=True)
class FlowCompletion:
    """Followed executions: launch answered → terminal status seen (includes up to one poll interval)."""

    followed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    duration_ms: Percentiles = Percentiles()
    polls: int = 0
    """Status requests sent while following (attempts, retries included)."""
    poll_interval_s: float | None = None
    """The scenario's poll interval: the first poll waits one, and an end is seen up to one late — so a
    duration is resolved only to this, and a flow shorter than it still shows about one interval."""

    @property
    def failure_rate(self) -> float | None:
        """Followed executions that ended in anything but COMPLETED / followed, leaving out those the run's own
        stop interrupted (INTERRUPTED: flowsim stopped watching, the flow did not fail). None: none judged."""
        judged = self.followed - self.outcomes.get("INTERRUPTED", 0)
        return (judged - self.outcomes.get("COMPLETED", 0)) / judged if judged > 0 else None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowCompletion:
        return cls(followed=d["followed"], outcomes=d["outcomes"], duration_ms=Percentiles(**d["duration_ms"]),
                   polls=d.get("polls", 0), poll_interval_s=d.get("poll_interval_s"))


@dataclass(frozen=True, kw_only=True)
class Figures:
    """Every figure a view shows about the units sent so far (or in all, at the end). A unit is what the
    driver sends at each due time: a launch, a session start."""

    launched: int
    """Units sent (each once, whatever its retries)."""
    succeeded: int
    """Answered 200, after retries."""
    failed: int
    """Without a 200 after retries."""
    first_attempt_failed: int
    retries: int
    transport_errors: int
    missed_starts: int
    late: int
    refused: int
    rate_limited: dict[str, int]
    """429 answers by request kind (``launch``, ``status_poll``, and what a section adds)."""
    achieved_rate_per_s: float
    """(units sent − 1) / (last send − first send)."""
    attempt_latency_ms: Percentiles
    latency_ms: Percentiles
    latency_from_intended_ms: Percentiles
    flow_completion: FlowCompletion
    first_send: float | None
    last_send: float | None
    section: Any = None
    """The kind of traffic's own figures (a :class:`Section`), or None."""

    @property
    def rate_limited_responses(self) -> int:
        return sum(self.rate_limited.values())

    @property
    def error_rate(self) -> float:
        """Units without a 200 after retries / sent (0 when none was sent)."""
        return self.failed / max(1, self.launched)

    @property
    def first_attempt_error_rate(self) -> float:
        return self.first_attempt_failed / max(1, self.launched)

    @property
    def missed_start_rate(self) -> float:
        """Missed starts / units that came due and were decided (sent, missed, late or refused): the same
        denominator live and at the end (a schedule's undue rest never counts)."""
        return self.missed_starts / max(1, self.launched + self.missed_starts + self.late + self.refused)

    def observed(self, target_rate_per_s: float | None = None) -> dict[str, float | None]:
        """Each threshold's observed figure (``min_achieved_rate_ratio`` only with the target rate)."""
        fc = self.flow_completion
        out: dict[str, float | None] = {
            "launch_p95_ms": self.attempt_latency_ms.p95, "launch_p99_ms": self.attempt_latency_ms.p99,
            "launch_e2e_p95_ms": self.latency_ms.p95, "launch_e2e_p99_ms": self.latency_ms.p99,
            "launch_error_rate": self.failed / self.launched if self.launched else None,
            "missed_start_rate": self.missed_start_rate,
            "flow_failure_rate": 0.0 if fc.failure_rate is None else fc.failure_rate,  # none judged: none failed
            "turn_p95_ms": None, "expectation_failure_rate": None, "reply_p95_ms": None,
        }
        if target_rate_per_s is not None:
            out["min_achieved_rate_ratio"] = (self.achieved_rate_per_s / target_rate_per_s
                                              if target_rate_per_s else 1.0)
        if self.section is not None:
            out.update(self.section.observed())
        return out


def figures(stats: RunStats, *, section: Callable[[RunStats], Any] | None = None,
            poll_interval_s: float | None = None) -> Figures:
    """The one place figures are computed from stats. ``section``: the driver's own figures from the same stats."""
    c = stats.counters
    first = stats.first_send if math.isfinite(stats.first_send) else None
    last = stats.last_send or None
    sec = section(stats) if section is not None else None
    return Figures(
        launched=c["launched"], succeeded=c["accepted"], failed=c["launched"] - c["accepted"],
        first_attempt_failed=c["first_attempt_failed"], retries=c["retries"], transport_errors=c["transport_errors"],
        missed_starts=c["missed_starts"], late=c["late"], refused=c["refused"],
        rate_limited={"launch": c["launch_429"], "status_poll": c["poll_429"],
                      **(sec.rate_limited() if sec is not None else {})},
        achieved_rate_per_s=rate_per_s(c["launched"], first, last),
        attempt_latency_ms=stats.percentiles("launch_attempt"), latency_ms=stats.percentiles("launch"),
        latency_from_intended_ms=stats.percentiles("launch_from_intended"),
        flow_completion=FlowCompletion(followed=sum(stats.outcomes.values()),
                                       outcomes=dict(sorted(stats.outcomes.items())),
                                       duration_ms=stats.percentiles("flow_completion"), polls=c["polls"],
                                       poll_interval_s=poll_interval_s),
        first_send=first, last_send=last, section=sec)


def ms_text(v: float | None) -> str:
    """A latency in ms as a person reads it: 3 significant digits below 100 ms, whole ms above ("—": none)."""
    if v is None:
        return "—"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"
