"""`POST /api/v2/analytics/flowexecutions/aggregates/query`: nFlowExecutions by flow, version, division.

Counts are the executions the simulator received plus each flow's background production traffic
(``background_per_hour``), which is deterministic: the count in [a, b) is
``floor(rate*b) - floor(rate*a)``, so buckets add up to their interval.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sim.platform.executions import Execution
from sim.platform.org import Org

__all__ = ["DIMENSIONS", "AnalyticsQueryError", "run_query", "iso_ms", "OPERATORS", "check_filter", "matches",
           "parse_interval"]

DIMENSIONS = ("divisionId", "flowId", "flowObjectId", "flowVersion")
OPERATORS = ("matches", "exists", "notExists")
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class AnalyticsQueryError(ValueError):
    """A bad query; the message names the field."""


def iso_ms(epoch_s: float) -> str:
    """ISO-8601 UTC with milliseconds and Z, as the platform writes dates."""
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_instant(text: str, field: str) -> float:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AnalyticsQueryError(f"{field}: {text!r} is not an ISO-8601 instant") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def parse_interval(text: Any) -> tuple[float, float]:
    if not isinstance(text, str) or "/" not in text:
        raise AnalyticsQueryError("interval: required, as 'start/end' ISO-8601, e.g. "
                                  "'2026-11-28T00:00:00.000Z/2026-11-29T00:00:00.000Z'")
    a, b = text.split("/", 1)
    start, end = _parse_instant(a, "interval"), _parse_instant(b, "interval")
    if end <= start:
        raise AnalyticsQueryError("interval: end must be after start")
    return start, end


def _parse_duration(text: str) -> float:
    m = _DURATION.match(text)
    if not m or not any(m.groups()):
        raise AnalyticsQueryError(f"granularity: {text!r} is not an ISO-8601 duration like PT1H or P1D")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return float(d * 86400 + h * 3600 + mi * 60 + s)


def check_filter(f: Any, path: str = "filter", dimensions: tuple[str, ...] = DIMENSIONS) -> None:
    """Raise AnalyticsQueryError unless ``f`` is a filter over ``dimensions`` (flow executions' by default)."""
    if not isinstance(f, dict) or f.get("type") not in ("and", "or"):
        raise AnalyticsQueryError(f"{path}.type: must be 'and' or 'or'")
    for i, p in enumerate(f.get("predicates") or []):
        where = f"{path}.predicates[{i}]"
        if not isinstance(p, dict) or p.get("dimension") not in dimensions:
            raise AnalyticsQueryError(f"{where}.dimension: must be one of {', '.join(dimensions)}")
        if p.get("operator", "matches") not in OPERATORS:
            raise AnalyticsQueryError(f"{where}.operator: must be one of {', '.join(OPERATORS)}")
    for i, c in enumerate(f.get("clauses") or []):
        check_filter(c, f"{path}.clauses[{i}]", dimensions)


def matches(f: dict[str, Any] | None, row: dict[str, str]) -> bool:
    if not f:
        return True
    results: list[bool] = []
    for p in f.get("predicates") or []:
        value = row.get(p["dimension"])
        op = p.get("operator", "matches")
        if op == "exists":
            results.append(value is not None)
        elif op == "notExists":
            results.append(value is None)
        else:
            results.append(value == p.get("value"))
    results.extend(matches(c, row) for c in f.get("clauses") or [])
    if not results:
        return True
    return all(results) if f["type"] == "and" else any(results)


def _background(rate_per_s: float, a: float, b: float) -> int:
    return math.floor(rate_per_s * b) - math.floor(rate_per_s * a)


def run_query(body: Any, org: Org, executions: Iterable[Execution], now: float) -> dict[str, Any]:
    """Answer an aggregates query as of ``now``; raises AnalyticsQueryError for a bad body."""
    if not isinstance(body, dict):
        raise AnalyticsQueryError("body must be a JSON object")
    start, end = parse_interval(body.get("interval"))
    metrics = body.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise AnalyticsQueryError("metrics: required, e.g. [\"nFlowExecutions\"]")
    for m in metrics:
        if m != "nFlowExecutions":
            raise AnalyticsQueryError(f"metrics: unknown metric {m!r}; the only metric is nFlowExecutions")
    group_by = body.get("groupBy") or []
    for g in group_by:
        if g not in DIMENSIONS:
            raise AnalyticsQueryError(f"groupBy: unknown dimension {g!r}; allowed: {', '.join(DIMENSIONS)}")
    flt = body.get("filter")
    if flt is not None:
        check_filter(flt)
    step = _parse_duration(body["granularity"]) if body.get("granularity") else end - start
    buckets: list[tuple[float, float]] = []
    t = start
    while t < end and len(buckets) < 10_000:
        buckets.append((t, min(end, t + step)))
        t += step

    counts: dict[tuple[tuple[str, str], ...], list[int]] = {}

    def add(row: dict[str, str], per_bucket: list[int]) -> None:
        if not matches(flt, row):
            return
        key = tuple((g, row[g]) for g in group_by)
        acc = counts.setdefault(key, [0] * len(buckets))
        for i, n in enumerate(per_bucket):
            acc[i] += n

    for flow in org.flows:
        if flow.background_per_hour > 0:
            row = {"flowId": flow.id, "flowObjectId": flow.id, "flowVersion": flow.version,
                   "divisionId": flow.division_id}
            rate = flow.background_per_hour / 3600.0
            add(row, [_background(rate, a, min(b, now)) if a < now else 0 for a, b in buckets])
    for e in executions:
        if not start <= e.launched_at < end:
            continue
        row = {"flowId": e.flow.id, "flowObjectId": e.flow.id, "flowVersion": e.version,
               "divisionId": e.flow.division_id}
        add(row, [1 if a <= e.launched_at < b else 0 for a, b in buckets])

    results = []
    for key, per_bucket in sorted(counts.items()):
        data = [
            {"interval": f"{iso_ms(a)}/{iso_ms(b)}",
             "metrics": [{"metric": "nFlowExecutions", "stats": {"count": n}}]}
            for (a, b), n in zip(buckets, per_bucket) if n
        ]
        if data:
            results.append({"group": dict(key), "data": data})
    return {"results": results} if results else {}
