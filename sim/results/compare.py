"""``flowsim compare A.json B.json``: has B regressed from A beyond tolerances? The CI gate.

Tolerances absorb run-to-run noise: a latency percentile must rise by more than both a relative and
an absolute margin; error rates by more than an absolute margin; rates must drop by more than a
relative margin. Works for run summaries and capacity summaries.
"""

from __future__ import annotations

from typing import Any

from sim.errors import ConfigError
from sim.results.summary import CapacityResult, RunSummary
from sim.results.tolerances import Tolerances

__all__ = ["new_failure_groups", "Tolerances", "compare", "describe", "cells"]


def _metrics(s: RunSummary | CapacityResult) -> dict[str, tuple[float | None, str, str]]:
    """name → (value, kind, what it measures) where kind is latency / error / rate (higher is better)."""
    if isinstance(s, CapacityResult):
        return {"sustainable_rate_per_s": (s.sustainable_rate_per_s, "rate", "")}
    launched = max(1, s.launched)
    f = s.figures
    fc = f.flow_completion
    return {
        "achieved_rate_per_s": (f.achieved_rate_per_s, "rate", ""),
        "attempt_latency_p95_ms": (f.attempt_latency_ms.p95, "latency", "launch latency per attempt"),
        "latency_p50_ms": (f.latency_ms.p50, "latency", "launch latency end to end (retry waits included)"),
        "latency_p95_ms": (f.latency_ms.p95, "latency", "launch latency end to end"),
        "latency_p99_ms": (f.latency_ms.p99, "latency", "launch latency end to end"),
        "error_rate": (f.error_rate, "error", "after retries"),
        "first_attempt_error_rate": (f.first_attempt_error_rate, "error", "before retries"),
        "missed_start_rate": (f.missed_start_rate, "error", ""),
        "retries_per_launch": (f.retries / launched, "error", ""),
        "launch_429_per_launch": (f.rate_limited.get("launch", 0) / launched, "error", ""),
        "poll_429_per_launch": (f.rate_limited.get("status_poll", 0) / launched, "error", ""),
        "flow_failure_rate": (fc.failure_rate, "error", ""),
        "flow_duration_p95_ms": (fc.duration_ms.p95, "latency", "launch answer to terminal status seen"),
        **(f.section.compare_metrics() if f.section is not None else {}),
    }


def describe(s: RunSummary | CapacityResult) -> str:
    """One line naming a summary, for compare's header."""
    if isinstance(s, CapacityResult):
        return f"capacity search of {s.scenario or '?'}: sustainable {s.sustainable_rate_per_s}/s ({len(s.steps)} steps)"
    return (f"run {s.run_id} ({s.scenario}, {s.target}, {s.workers} worker(s)): target {s.target_rate_per_s}/s, "
            f"launched {s.launched}, {s.verdict}")


def compare(a: RunSummary | CapacityResult, b: RunSummary | CapacityResult,
            tol: Tolerances = Tolerances()) -> list[dict[str, Any]]:
    """One row per metric: values, change and whether B regressed. A and B must be of one kind."""
    if a.kind != b.kind:
        raise ConfigError(f"cannot compare a {a.kind} summary with a {b.kind} summary", field="B")
    ma, mb = _metrics(a), _metrics(b)
    rows = []
    for name, (va, kind, note) in ma.items():
        vb = mb.get(name, (None, kind, note))[0]
        regressed = False
        if va is not None and vb is not None:
            if kind == "latency":
                regressed = vb - va > tol.latency_abs_ms and vb > va * (1 + tol.latency_rel)
            elif kind == "error":
                regressed = vb - va > tol.error_rate_abs
            else:
                regressed = vb < va * (1 - tol.rate_rel)
        elif va is not None and vb is None:
            regressed = kind == "rate"
        change = None
        if va not in (None, 0) and vb is not None:
            change = (vb - va) / va
        rows.append({"metric": name, "a": va, "b": vb, "change": change, "regressed": regressed, "note": note,
                     "kind": kind})
    return rows


def new_failure_groups(a: RunSummary | CapacityResult, b: RunSummary | CapacityResult) -> list[str]:
    """Conversations: the groups of broken expectations B has and A has not (something that held now breaks),
    in words, most frequent first."""
    def groups(s: RunSummary | CapacityResult) -> list[dict[str, Any]]:
        sec = getattr(s, "section", None)
        return sec.failure_groups() if sec is not None else []

    seen = {(g["script"], g["step"], g["check"]) for g in groups(a)}
    return [f"script {g['script'] + 1} step {g['step']}: {g['check']} expected {g['expected'][:60]!r} "
            f"({g['count']} conversation(s))" for g in groups(b)
            if (g["script"], g["step"], g["check"]) not in seen]


def cells(row: dict[str, Any]) -> tuple[str, str, str]:
    """A row's A, B and change as a person reads them, in the metric's unit: latencies in ms with the change in ms
    (and relative while under 10x), error rates in % with the change in points, rates per second with the change
    in %."""
    va, vb, kind = row["a"], row["b"], row.get("kind", "rate")
    if kind == "latency":
        a, b = (_value(v, " ms") for v in (va, vb))
        if va is None or vb is None:
            return a, b, ""
        rel = "" if not va else f" ({(vb - va) / va:+.0%})" if abs(vb - va) < 9 * va else f" (x{vb / va:.0f})"
        return a, b, f"{vb - va:+.3g} ms{rel}"
    if kind == "error":
        a, b = ("-" if v is None else f"{v:.2%}" for v in (va, vb))
        return a, b, "" if va is None or vb is None else f"{(vb - va) * 100:+.2f} pts"
    a, b = (_value(v, "/s") for v in (va, vb))
    return a, b, "" if not va or vb is None else f"{(vb - va) / va:+.1%}"


def _value(v: float | None, unit: str) -> str:
    return "-" if v is None else f"{v:.4g}{unit}"
