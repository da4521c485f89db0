"""Capacity search: the highest arrival rate that still meets the SLO.

Step the rate up geometrically until a step fails, then bisect between the last passing and the
first failing rate until they are within ``precision`` of each other. Each step is a real run
(``run_step(rate)`` returns its RunSummary). A failing step ends the climb at once, and each step run
aborts itself when errors or 429s flood (``abort_error_rate``), so a real org is never driven far
past its knee. A step that did not send its rate is no evidence about the target: it fails, named
as a load-generator limit, never passes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from sim.results.summary import CapacityResult, CapacityStep, RunSummary

__all__ = ["SLO", "judge", "search", "limiting_factor", "MIN_FAILED", "launches_to_resolve", "step_of"]

MIN_FAILED = 3
"""A step fails the error SLO on at least this many failed launches: one 503 in 92 launches (1.09 % > 1 %) is
noise, not a knee (with a true 1 % rate, 1 of 92 happens 60 % of the time; 3 of 92, 7 %)."""


def launches_to_resolve(max_error_rate: float) -> int:
    """Launches a step needs for MIN_FAILED failures to stand for the SLO's error rate (0: any failure decides)."""
    return math.ceil(MIN_FAILED / max_error_rate) if max_error_rate > 0 else 0


@dataclass(frozen=True, kw_only=True)
class SLO:
    p95_ms: float
    max_error_rate: float
    min_achieved_ratio: float = 0.95
    """A step whose achieved rate, or share of launches sent, falls below this fails (generator limit)."""


def _sent_its_rate(s: RunSummary, slo: SLO) -> bool:
    achieved = s.achieved_rate_per_s / s.target_rate_per_s if s.target_rate_per_s else 1.0
    sent = s.launched / s.scheduled if s.scheduled else 1.0
    return achieved >= slo.min_achieved_ratio and sent >= slo.min_achieved_ratio


def judge(s: RunSummary, slo: SLO) -> list[str]:
    """Why a step fails its SLO (empty: it passed)."""
    reasons = []
    p95 = s.latency_ms.p95
    # Retries can turn an overloaded target's 503s into eventual 200s: judge the first attempts too.
    failing = max(s.failed, s.first_attempt_failed)
    error_rate = max(s.error_rate, s.first_attempt_error_rate)
    if s.aborted:
        reasons.append(f"aborted: {s.aborted}")
    if s.interrupted:
        reasons.append("interrupted")
    if p95 is None or p95 > slo.p95_ms:
        reasons.append(f"p95 {p95} ms > {slo.p95_ms} ms")
    if error_rate > slo.max_error_rate and (failing >= MIN_FAILED or slo.max_error_rate == 0):
        reasons.append(f"errors {error_rate:.2%} > {slo.max_error_rate:.2%}: {failing} of {s.launched} launches "
                       "failed (first attempts included)")
    if s.section is not None:  # the kind of traffic's own judgements (a conversation's turns and scripts)
        reasons += s.section.capacity_reasons(slo.p95_ms, slo.max_error_rate)
    if s.missed_starts / max(1, s.scheduled) > 0.01 or not _sent_its_rate(s, slo):
        reasons.append(f"generator did not send the rate: achieved {s.achieved_rate_per_s}/s of {s.target_rate_per_s}/s, "
                       f"{s.launched}/{s.scheduled} launched, {s.missed_starts} missed starts")
    return reasons


def limiting_factor(s: RunSummary, slo: SLO | None = None) -> str:
    """Name what limited a failing step, when the figures say."""
    launched = max(1, s.launched)
    five_xx = sum(n for code, n in s.http_status.items() if code.startswith("5"))
    if s.rate_limited_responses / launched > 0.05:
        return "platform rate limit per token (add tokens_per_client or OAuth clients)"
    if s.missed_starts or not _sent_its_rate(s, slo or SLO(p95_ms=0, max_error_rate=0)):
        return "load generator (raise max_concurrency or add Locust workers)"
    if max(five_xx, s.first_attempt_failed) / launched > 0.005 or s.transport_errors:
        return "target errors (5xx / dropped connections, retried or not) under load"
    return "target latency"


def step_of(rate: float, s: RunSummary, reasons: list[str], slo: SLO) -> CapacityStep:
    """A step's record: the run's figures at ``rate`` and why it failed (``reasons``; empty: passed)."""
    launched = max(1, s.launched)
    return CapacityStep(
        rate_per_s=round(rate, 3), passed=not reasons, reasons=tuple(reasons),
        achieved_rate_per_s=s.achieved_rate_per_s, launched=s.launched, latency_ms=s.latency_ms,
        error_rate=round(s.error_rate, 5), first_attempt_error_rate=round(s.first_attempt_error_rate, 5),
        rate_429=round(s.rate_limited_responses / launched, 5), missed_starts=s.missed_starts, run_id=s.run_id,
        turn_p95_ms=s.section.step_p95_ms() if s.section is not None else None,
        limiting_factor=None if not reasons else limiting_factor(s, slo))


def search(run_step: Callable[[float], RunSummary], slo: SLO, *, start: float, maximum: float,
           growth: float = 1.5, precision: float = 0.05, max_steps: int = 20, scenario: str = "", load: str = "workflow",
           on_step: Callable[[CapacityStep], None] = lambda _s: None) -> CapacityResult:
    """Find the sustainable rate."""
    began = time.monotonic()
    steps: list[CapacityStep] = []
    best: float | None = None
    worst: float | None = None

    def run(rate: float) -> bool:
        summary = run_step(rate)
        rec = step_of(rate, summary, judge(summary, slo), slo)
        steps.append(rec)
        on_step(rec)
        return rec.passed

    rate = start
    while len(steps) < max_steps:
        if run(rate):
            best = rate
            if rate >= maximum:
                break
            rate = min(maximum, rate * growth)
        else:
            worst = rate
            break
    while best is not None and worst is not None and (worst - best) / best > precision and len(steps) < max_steps:
        mid = (best + worst) / 2
        if run(mid):
            best = mid
        else:
            worst = mid
    failing = [s for s in steps if not s.passed]
    if best is not None and worst is not None:
        confidence = f"bracketed: passed at {best:.4g}/s, failed at {worst:.4g}/s"
    elif best is not None:
        confidence = f"lower bound only: no step failed up to --max ({maximum:.4g}/s)"
    else:
        confidence = f"no step passed: even --start ({start:.4g}/s) fails the SLO"
    return CapacityResult(
        scenario=scenario,
        sustainable_rate_per_s=round(best, 3) if best is not None else 0.0,
        first_failing_rate_per_s=round(worst, 3) if worst is not None else None,
        precision=precision, confidence=confidence,
        limiting_factor=failing[-1].limiting_factor if failing else None,
        slo={"p95_ms": slo.p95_ms, "max_error_rate": slo.max_error_rate},
        steps=tuple(steps), search_duration_s=round(time.monotonic() - began, 1), passed=best is not None, load=load)
