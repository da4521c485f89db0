"""``flowsim compare A.json B.json``: has B regressed from A beyond tolerances? The CI gate.

Tolerances absorb run-to-run noise: a latency percentile must rise by more than both a relative and
an absolute margin; error rates by more than an absolute margin; rates must drop by more than a
relative margin. Works for run summaries and capacity summaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Tolerances", "compare"]


@dataclass(frozen=True, kw_only=True)
class Tolerances:
    latency_rel: float = 0.20
    """A latency percentile regresses when it rises by more than 20 % ..."""
    latency_abs_ms: float = 5.0
    """... and by more than 5 ms."""
    error_rate_abs: float = 0.01
    """An error or missed-start rate regresses when it rises by more than 1 percentage point."""
    rate_rel: float = 0.05
    """A rate (achieved or sustainable) regresses when it drops by more than 5 %."""


def _rate(s: dict[str, Any], key: str) -> float:
    return float(s[key]) / max(1, s["launched"]) if key in s else 0.0


def _metrics(s: dict[str, Any]) -> dict[str, tuple[float | None, str]]:
    """name → (value, kind) where kind is latency / error / rate (higher is better)."""
    if "sustainable_rate_per_s" in s:
        return {"sustainable_rate_per_s": (s["sustainable_rate_per_s"], "rate")}
    lat = s.get("latency_ms", {})
    return {
        "achieved_rate_per_s": (s.get("achieved_rate_per_s"), "rate"),
        "latency_p50_ms": (lat.get("p50"), "latency"),
        "latency_p95_ms": (lat.get("p95"), "latency"),
        "latency_p99_ms": (lat.get("p99"), "latency"),
        "error_rate": (_rate(s, "failed"), "error"),
        "missed_start_rate": (float(s.get("missed_starts", 0)) / max(1, s.get("scheduled", 1)), "error"),
    }


def compare(a: dict[str, Any], b: dict[str, Any], tol: Tolerances = Tolerances()) -> list[dict[str, Any]]:
    """One row per metric: values, change and whether B regressed."""
    ma, mb = _metrics(a), _metrics(b)
    rows = []
    for name, (va, kind) in ma.items():
        vb = mb.get(name, (None, kind))[0]
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
        rows.append({"metric": name, "a": va, "b": vb, "change": change, "regressed": regressed})
    return rows
