"""Pass/fail criteria of a run (``[thresholds]``): what each one measures, how it is judged at the end of a
run (``sim.results.summary``) and live, every second, for ``abort_on_fail`` (k6's abortOnFail)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sim._toml import TableReader
from sim.load.figures import ms_text

__all__ = ["Thresholds", "ThresholdResult", "LIVE_THRESHOLDS", "MEANING", "read_thresholds", "judge",
           "MIN_LIVE_LAUNCHES", "value_text"]


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Pass/fail criteria; None means not checked."""

    launch_p95_ms: float | None = None
    """Per attempt: each HTTP attempt on its own (like Locust's figures)."""
    launch_p99_ms: float | None = None
    launch_e2e_p95_ms: float | None = None
    """End to end: first send → final answer, retries and their waits included."""
    launch_e2e_p99_ms: float | None = None
    launch_error_rate: float | None = None
    """Share of launches that did not get a 200 (after retries)."""
    missed_start_rate: float | None = None
    flow_failure_rate: float | None = None
    """Share of followed executions that ended in anything but COMPLETED (INTERRUPTED by the run's stop: left out)."""
    min_achieved_rate_ratio: float | None = None
    """Achieved launch rate / target launch rate must be at least this."""
    turn_p95_ms: float | None = None
    """Conversations: each bot turn, first send → final answer, p95."""
    expectation_failure_rate: float | None = None
    """Conversations: sessions with a broken scripted expectation / sessions started."""
    reply_p95_ms: float | None = None
    """Open Messaging: a customer's message sent → its first reply at the webhook, p95."""
    abort_on_fail: tuple[str, ...] = ()
    """Thresholds evaluated live (every second, on the figures so far): the run stops at the first failure
    (k6's abortOnFail). Not ``min_achieved_rate_ratio``: a rate is only known at the end."""


LIVE_THRESHOLDS = ("launch_p95_ms", "launch_p99_ms", "launch_e2e_p95_ms", "launch_e2e_p99_ms", "launch_error_rate",
                   "missed_start_rate", "flow_failure_rate", "turn_p95_ms", "expectation_failure_rate", "reply_p95_ms")
"""Thresholds that ``abort_on_fail`` may name."""

MEANING = {
    "launch_p95_ms": "launch latency per attempt, p95 (each HTTP attempt on its own, like Locust)",
    "launch_p99_ms": "launch latency per attempt, p99",
    "launch_e2e_p95_ms": "launch latency end to end, p95 (first send to final answer, retry waits included)",
    "launch_e2e_p99_ms": "launch latency end to end, p99",
    "launch_error_rate": "launches without a 200 after retries / launched",
    "missed_start_rate": "missed starts / launches that came due (sent, missed, late or refused)",
    "flow_failure_rate": "followed executions not COMPLETED / followed (those the run's stop interrupted left out)",
    "min_achieved_rate_ratio": "achieved launch rate / target launch rate",
    "turn_p95_ms": "conversation turn latency, p95 (a bot turn, or an Open Messaging message's POST: first send to "
                   "final answer)",
    "expectation_failure_rate": "conversations with a broken scripted expectation / conversations started",
    "reply_p95_ms": "Open Messaging: message sent to its first reply at the webhook, p95",
}
"""Each threshold's observed figure, in words (summary, text, JUnit)."""

MIN_LIVE_LAUNCHES = 20
"""abort_on_fail judges nothing before this many launches: three slow first requests are no verdict."""


@dataclass(frozen=True, kw_only=True)
class ThresholdResult:
    name: str
    limit: float
    observed: float | None
    passed: bool
    describes: str = ""
    """What the observed figure is, in words (e.g. per attempt or end to end)."""

    @property
    def judged(self) -> str:
        """Observed against the limit, both in the threshold's unit: "4.15 ms ≤ 500 ms", "7.00% > 1.00%"."""
        if self.observed is None:
            return f"nothing measured (limit {value_text(self.name, self.limit)})"
        low = self.name.startswith("min_")
        op = ("≥" if self.passed else "<") if low else ("≤" if self.passed else ">")
        return f"{value_text(self.name, self.observed)} {op} {value_text(self.name, self.limit)}"


def value_text(name: str, value: float) -> str:
    """A threshold's value in its unit: ms for ``*_ms``, a percentage for rates and ratios."""
    if name.endswith("_ms"):
        return f"{ms_text(value)} ms"
    return f"{value:.1%}" if name.endswith("_ratio") else f"{value:.2%}"


def read_thresholds(th: TableReader) -> Thresholds:
    th.check_keys({f.name for f in dataclasses.fields(Thresholds)})
    limits = {f.name: th.get(f.name, float, None, minimum=0.0)
              for f in dataclasses.fields(Thresholds) if f.name != "abort_on_fail"}
    abort_on_fail = th.get("abort_on_fail", list, [])
    for name in abort_on_fail:
        if name not in LIVE_THRESHOLDS:
            raise th.fail("abort_on_fail", f"{name!r} cannot be checked live; allowed: {', '.join(LIVE_THRESHOLDS)}")
        if limits.get(name) is None:
            raise th.fail("abort_on_fail", f"names {name!r}, which has no limit in [thresholds]")
    return Thresholds(**limits, abort_on_fail=tuple(abort_on_fail))


def judge(observed: dict[str, float | None], th: Thresholds,
          names: tuple[str, ...] | None = None) -> tuple[ThresholdResult, ...]:
    """Each configured threshold (of ``names``, default all) with its observed value and pass/fail."""
    out = []
    for name, value in observed.items():
        limit = getattr(th, name)
        if limit is None or (names is not None and name not in names):
            continue
        passed = value is not None and (value >= limit if name.startswith("min_") else value <= limit)
        out.append(ThresholdResult(name=name, limit=limit, observed=None if value is None else round(value, 4),
                                   passed=passed, describes=MEANING[name]))
    return tuple(out)
