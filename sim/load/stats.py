"""Run statistics with HDR histograms: mergeable across Locust workers, exact enough for SLOs.

Locust rounds response times to two significant digits; these histograms keep three, from 1 µs
to one hour. A worker ships its deltas with every report (``drain``); the master ``merge``\\s them.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from hdrh.histogram import HdrHistogram

from sim.load.scenario import Thresholds

__all__ = ["RunStats", "HISTOGRAMS", "evaluate_thresholds"]

HISTOGRAMS = ("launch", "launch_from_intended", "flow_completion")
"""launch: first send → final answer; launch_from_intended: due time → final answer
(coordinated omission visible); flow_completion: launch answer → terminal status seen."""

_MAX_US = 3_600_000_000


def _hist() -> HdrHistogram:
    return HdrHistogram(1, _MAX_US, 3)


def _bucket_hist() -> HdrHistogram:
    return HdrHistogram(1, _MAX_US, 2)  # two digits per second-bucket: charts, not SLOs


class TimeSeries:
    """Per-second counts and launch latencies, keyed by whole seconds since the run's start."""

    def __init__(self) -> None:
        self.counts: dict[int, Counter[str]] = {}
        self.hist: dict[int, HdrHistogram] = {}

    def count(self, second: int, key: str, n: int = 1) -> None:
        c = self.counts.get(second)
        if c is None:
            c = self.counts[second] = Counter()
        c[key] += n

    def latency(self, second: int, ms: float) -> None:
        h = self.hist.get(second)
        if h is None:
            h = self.hist[second] = _bucket_hist()
        h.record_value(min(_MAX_US, max(1, int(ms * 1000))))

    def encode(self) -> dict[str, Any]:
        return {"counts": {str(k): dict(v) for k, v in self.counts.items()},
                "hist": {str(k): h.encode().decode("ascii") for k, h in self.hist.items()}}

    def merge(self, data: dict[str, Any]) -> None:
        for k, v in data.get("counts", {}).items():
            for key, n in v.items():
                self.count(int(k), key, n)
        for k, enc in data.get("hist", {}).items():
            h = self.hist.get(int(k))
            if h is None:
                h = self.hist[int(k)] = _bucket_hist()
            h.add(HdrHistogram.decode(enc.encode("ascii")))

    def rows(self, rate_at: Any = None) -> list[dict[str, Any]]:
        """One row per second: target and achieved rate, failures, 429s, missed starts, latency percentiles."""
        seconds = sorted(set(self.counts) | set(self.hist))
        out = []
        for sec in range(seconds[0], seconds[-1] + 1) if seconds else []:
            c = self.counts.get(sec, Counter())
            h = self.hist.get(sec)
            row: dict[str, Any] = {"t": sec, "launched": c["launched"], "failed": c["failed"], "r429": c["r429"],
                                   "missed": c["missed"], "outcome_failed": c["outcome_failed"]}
            if rate_at is not None:
                row["target"] = round(rate_at(sec + 0.5), 3)
            if h is not None and h.get_total_count():
                row.update({f"p{p}": round(h.get_value_at_percentile(p) / 1000, 2) for p in (50, 95, 99)})
            out.append(row)
        return out

    def window(self, last_second: int, seconds: int) -> Counter[str]:
        """Counts summed over ``seconds`` seconds ending at ``last_second``."""
        total: Counter[str] = Counter()
        for sec in range(last_second - seconds + 1, last_second + 1):
            total.update(self.counts.get(sec, Counter()))
        return total


class RunStats:
    def __init__(self) -> None:
        self.series = TimeSeries()
        self.counters: Counter[str] = Counter()
        self.http_status: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.hist = {name: _hist() for name in HISTOGRAMS}
        self.first_send: float = math.inf
        self.last_send: float = 0.0

    def record_ms(self, name: str, ms: float) -> None:
        self.hist[name].record_value(min(_MAX_US, max(1, int(ms * 1000))))

    def sent(self, at: float) -> None:
        self.first_send = min(self.first_send, at)
        self.last_send = max(self.last_send, at)

    def drain(self) -> dict[str, Any]:
        """Everything recorded since the last drain, as plain data, and reset."""
        data = {
            "counters": dict(self.counters), "http_status": dict(self.http_status),
            "outcomes": dict(self.outcomes),
            "hist": {k: h.encode().decode("ascii") for k, h in self.hist.items() if h.get_total_count()},
            "series": self.series.encode(),
            "first_send": self.first_send if self.first_send != math.inf else None,
            "last_send": self.last_send or None,
        }
        self.__init__()  # type: ignore[misc]
        return data

    def merge(self, data: dict[str, Any]) -> None:
        self.counters.update(data.get("counters", {}))
        self.http_status.update(data.get("http_status", {}))
        self.outcomes.update(data.get("outcomes", {}))
        for k, encoded in data.get("hist", {}).items():
            self.hist[k].add(HdrHistogram.decode(encoded.encode("ascii")))
        if "series" in data:
            self.series.merge(data["series"])
        if data.get("first_send") is not None:
            self.first_send = min(self.first_send, data["first_send"])
        if data.get("last_send") is not None:
            self.last_send = max(self.last_send, data["last_send"])

    def percentiles(self, name: str) -> dict[str, float | None]:
        h = self.hist[name]
        if not h.get_total_count():
            return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
        return {"count": h.get_total_count(),
                **{f"p{p}": round(h.get_value_at_percentile(p) / 1000, 3) for p in (50, 95, 99)},
                "max": round(h.get_max_value() / 1000, 3)}

    def achieved_rate_per_s(self) -> float:
        """Send rate actually achieved: (launches − 1) / (last send − first send)."""
        n = self.counters["launched"]
        span = self.last_send - self.first_send
        return (n - 1) / span if n > 1 and span > 0 else float(n)

    def summary(self, *, run_id: str, target_rate_per_s: float, scheduled: int,
                thresholds: Thresholds, extra: dict[str, Any] | None = None, rate_at: Any = None) -> dict[str, Any]:
        c = self.counters
        launched, succeeded = c["launched"], c["accepted"]
        followed = sum(self.outcomes.values())
        s: dict[str, Any] = {
            "run_id": run_id,
            "target_rate_per_s": round(target_rate_per_s, 3),
            "achieved_rate_per_s": round(self.achieved_rate_per_s(), 3),
            "scheduled": scheduled,
            "launched": launched,
            "succeeded": succeeded,
            "failed": launched - succeeded,
            "missed_starts": c["missed_starts"],
            # Scheduled but neither sent nor counted missed: a dead worker's share until the re-split,
            # or an interrupted run.
            "not_sent": max(0, scheduled - launched - c["missed_starts"]),
            "retries": c["retries"],
            "first_attempt_failed": c["first_attempt_failed"],
            "transport_errors": c["transport_errors"],
            "http_status": dict(sorted(self.http_status.items())),
            "latency_ms": self.percentiles("launch"),
            "latency_from_intended_ms": self.percentiles("launch_from_intended"),
            "flow_completion": {"followed": followed, "outcomes": dict(sorted(self.outcomes.items())),
                                "duration_ms": self.percentiles("flow_completion")},
        }
        s["rate_limited_responses"] = sum(c.get("r429", 0) for c in self.series.counts.values())
        s["timeseries"] = self.series.rows(rate_at)
        if extra:
            s.update(extra)
        s["thresholds"] = evaluate_thresholds(s, thresholds)
        s["passed"] = all(t["passed"] for t in s["thresholds"])
        return s


def evaluate_thresholds(s: dict[str, Any], th: Thresholds) -> list[dict[str, Any]]:
    """Each configured threshold with its observed value and pass/fail."""
    launched = max(1, s["launched"])
    scheduled = max(1, s["scheduled"])
    followed = s["flow_completion"]["followed"]
    observed = {
        "launch_p95_ms": s["latency_ms"]["p95"],
        "launch_p99_ms": s["latency_ms"]["p99"],
        "launch_error_rate": s["failed"] / launched,
        "missed_start_rate": s["missed_starts"] / scheduled,
        "flow_failure_rate": ((followed - s["flow_completion"]["outcomes"].get("COMPLETED", 0)) / followed
                              if followed else 0.0),
        "min_achieved_rate_ratio": (s["achieved_rate_per_s"] / s["target_rate_per_s"]
                                    if s["target_rate_per_s"] else 1.0),
    }
    out = []
    for name, value in observed.items():
        limit = getattr(th, name)
        if limit is None:
            continue
        if value is None:
            passed = False
        elif name.startswith("min_"):
            passed = value >= limit
        else:
            passed = value <= limit
        out.append({"name": name, "limit": limit, "observed": None if value is None else round(value, 4),
                    "passed": passed})
    return out
