"""Capacity search: the highest arrival rate that still meets the SLO.

Step the rate up geometrically until a step fails, then bisect between the last passing and the
first failing rate until they are within ``precision`` of each other. Each step is a real run
(``run_step(rate)`` returns its summary). A failing step ends the climb at once, and each step run
aborts itself when errors or 429s flood (``abort_error_rate``), so a real org is never driven far
past its knee.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["SLO", "judge", "search", "limiting_factor"]


@dataclass(frozen=True, kw_only=True)
class SLO:
    p95_ms: float
    max_error_rate: float
    min_achieved_ratio: float = 0.95
    """A step whose achieved rate falls short of this share of its target fails (generator limit)."""


def judge(summary: dict[str, Any], slo: SLO) -> list[str]:
    """Why a step fails its SLO (empty: it passed)."""
    reasons = []
    launched = max(1, summary["launched"])
    p95 = summary["latency_ms"]["p95"]
    # Retries can turn an overloaded target's 503s into eventual 200s: judge the first attempts too.
    error_rate = max(summary["failed"], summary.get("first_attempt_failed", 0)) / launched
    if summary.get("aborted"):
        reasons.append(f"aborted: {summary['aborted']}")
    if p95 is None or p95 > slo.p95_ms:
        reasons.append(f"p95 {p95} ms > {slo.p95_ms} ms")
    if error_rate > slo.max_error_rate:
        reasons.append(f"error rate {error_rate:.2%} > {slo.max_error_rate:.2%} (first attempts included)")
    target = summary["target_rate_per_s"]
    scheduled = max(1, summary["scheduled"])
    achieved_share = (summary["launched"] / scheduled) if scheduled else 1.0
    if summary["missed_starts"] / scheduled > 0.01 or achieved_share < slo.min_achieved_ratio:
        reasons.append(f"generator fell behind: {summary['missed_starts']} missed starts, "
                       f"{summary['launched']}/{scheduled} launched at {target}/s")
    return reasons


def limiting_factor(summary: dict[str, Any]) -> str:
    """Name what limited a failing step, when the figures say."""
    launched = max(1, summary["launched"])
    r429 = summary.get("rate_limited_responses", 0)
    status = summary.get("http_status", {})
    five_xx = sum(n for code, n in status.items() if code.startswith("5"))
    if r429 / launched > 0.05:
        return "platform rate limit per token (add tokens_per_client or OAuth clients)"
    if summary["missed_starts"] or summary["launched"] < summary["scheduled"] * 0.95:
        return "load generator (raise max_concurrency or add Locust workers)"
    first_failed = summary.get("first_attempt_failed", 0)
    if max(five_xx, first_failed) / launched > 0.005 or summary["transport_errors"]:
        return "target errors (5xx / dropped connections, retried or not) under load"
    return "target latency"


def _step_record(rate: float, summary: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    launched = max(1, summary["launched"])
    return {
        "rate_per_s": round(rate, 3),
        "passed": not reasons,
        "reasons": reasons,
        "achieved_rate_per_s": summary["achieved_rate_per_s"],
        "launched": summary["launched"],
        "latency_ms": summary["latency_ms"],
        "error_rate": round(summary["failed"] / launched, 5),
        "first_attempt_error_rate": round(summary.get("first_attempt_failed", 0) / launched, 5),
        "rate_429": round(summary.get("rate_limited_responses", 0) / launched, 5),
        "missed_starts": summary["missed_starts"],
        "run_id": summary["run_id"],
        "limiting_factor": None if not reasons else limiting_factor(summary),
    }


def search(run_step: Callable[[float], dict[str, Any]], slo: SLO, *, start: float, maximum: float,
           growth: float = 1.5, precision: float = 0.05, max_steps: int = 20,
           on_step: Callable[[dict[str, Any]], None] = lambda _s: None) -> dict[str, Any]:
    """Find the sustainable rate; returns the capacity summary (``sustainable_rate_per_s``, ``steps``)."""
    began = time.monotonic()
    steps: list[dict[str, Any]] = []
    best: float | None = None
    worst: float | None = None

    def run(rate: float) -> bool:
        summary = run_step(rate)
        reasons = judge(summary, slo)
        rec = _step_record(rate, summary, reasons)
        steps.append(rec)
        on_step(rec)
        return not reasons

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
    failing = [s for s in steps if not s["passed"]]
    return {
        "sustainable_rate_per_s": round(best, 3) if best is not None else 0.0,
        "first_failing_rate_per_s": round(worst, 3) if worst is not None else None,
        "precision": precision,
        "confidence": ("bracketed: passed at sustainable_rate_per_s, failed at first_failing_rate_per_s"
                       if best is not None and worst is not None else
                       "lower bound only: no step failed up to --max" if best is not None else
                       "no step passed: even --start fails the SLO"),
        "limiting_factor": failing[-1]["limiting_factor"] if failing else None,
        "slo": {"p95_ms": slo.p95_ms, "max_error_rate": slo.max_error_rate},
        "steps": steps,
        "search_duration_s": round(time.monotonic() - began, 1),
        "passed": best is not None,
    }
