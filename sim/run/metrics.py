"""Live metrics of a run in Prometheus' exposition format, served by the master (or single process).

Reads the same live stats as the progress line (a worker's deltas merged on the master every Locust
report, ~3 s), so Prometheus sees what the terminal shows. Counters are cumulative for the run;
launch latency is a histogram (``flowsim_launch_latency_seconds``, fixed buckets: aggregates across runs and
workers) and, for a glance, quantiles over the run so far (``flowsim_launch_latency_ms``), per attempt and end
to end (label ``basis``). Grafana:
``dashboards/flowsim-grafana.json``. No locust import.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from sim.load.figures import Figures, figures
from sim.load.stats import RunStats

__all__ = ["Snapshot", "RunCollector", "registry_for", "LATENCY_BUCKETS_S"]

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""The launch latency histogram's upper bounds (s): fixed, so runs and processes aggregate (sum by le)."""


@dataclass(frozen=True)
class Snapshot:
    run_id: str
    scenario: str
    target_rate_per_s: float
    """The schedule's rate at this moment."""
    stats: RunStats
    in_flight: int | None
    """Launches and follows in progress (None: not known here)."""
    verdict: str
    """RUNNING, or the finished run's PASS / FAIL / INTERRUPTED."""
    section: Callable[[RunStats], Any] | None = None
    """The driver's own figures from the stats (``Driver.section``)."""

    @functools.cached_property
    def figures(self) -> Figures:
        """The figures of ``stats`` (``sim.load.figures``): what every live view shows."""
        return figures(self.stats, section=self.section)


class RunCollector(Collector):
    """One scrape = one snapshot of the current (or last) run; nothing before the first run."""

    def __init__(self, snapshot: Callable[[], Snapshot | None]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        if snap is None:
            return
        labels, values = ["run_id", "scenario"], [snap.run_id, snap.scenario]
        f = snap.figures

        def family(name: str, doc: str, kind: str, points: dict[str, float], label: str | None = None) -> Metric:
            m = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name, doc, labels=[*labels, label] if label else labels)
            for key, value in points.items():
                m.add_metric([*values, key] if label else values, value)
            return m

        yield family("flowsim_target_rate_per_second", "Scheduled launch rate now (launches/s)", "gauge",
                     {"": snap.target_rate_per_s})
        yield family("flowsim_launches", "Launches sent, by final result after retries", "counter",
                     {"ok": f.succeeded, "failed": f.failed}, "result")
        yield family("flowsim_first_attempt_failures", "Launches whose first attempt was not a 200", "counter",
                     {"": f.first_attempt_failed})
        yield family("flowsim_retries", "Launch retries (attempts after the first)", "counter", {"": f.retries})
        yield family("flowsim_missed_starts", "Launches due while every user was busy: never sent", "counter",
                     {"": f.missed_starts})
        yield family("flowsim_late", "Launches overdue past the late limit (paused/starved process): never sent",
                     "counter", {"": f.late})
        yield family("flowsim_rate_limited_responses", "429 answers, by request kind", "counter",
                     {k: float(v) for k, v in f.rate_limited.items()}, "scope")
        yield family("flowsim_flow_outcomes", "Followed executions by terminal status", "counter",
                     {k: float(v) for k, v in f.flow_completion.outcomes.items()}, "status")
        lat = GaugeMetricFamily("flowsim_launch_latency_ms",
                                "Launch latency over the run so far (ms); basis: attempt (each HTTP attempt) or "
                                "end_to_end (first send to final answer, retry waits included)",
                                labels=[*labels, "basis", "quantile"])
        for basis, p in (("attempt", f.attempt_latency_ms), ("end_to_end", f.latency_ms)):
            for q, v in (("0.5", p.p50), ("0.95", p.p95), ("0.99", p.p99)):
                if v is not None:
                    lat.add_metric([*values, basis, q], v)
        yield lat
        yield _latency_histogram(snap.stats, labels, values)
        fd = f.flow_completion.duration_ms
        if fd.p95 is not None:
            yield family("flowsim_flow_duration_ms", "Launch answer to terminal status seen (ms)", "gauge",
                         {"0.5": fd.p50 or 0.0, "0.95": fd.p95}, "quantile")
        if f.section is not None:  # the kind of traffic's own figures (a conversation's sessions and turns)
            for m in f.section.metrics():
                yield family(m.name, m.doc, m.kind, m.values, m.label)
        if snap.in_flight is not None:
            yield family("flowsim_in_flight", "Launches and follows in progress", "gauge", {"": snap.in_flight})
        yield family("flowsim_run_state", "1 for the run's current state", "gauge", {snap.verdict: 1}, "state")


def _latency_histogram(stats: RunStats, labels: list[str], values: list[str]) -> Metric:
    """Launch latency as a Prometheus histogram (cumulative buckets in seconds, _sum, _count): unlike quantiles,
    these add up across runs and workers (histogram_quantile over sum by (le))."""
    h = HistogramMetricFamily("flowsim_launch_latency_seconds",
                              "Launch latency (s); basis: attempt (each HTTP attempt) or end_to_end (first send to "
                              "final answer, retry waits included)", labels=[*labels, "basis"])
    for basis, name in (("attempt", "launch_attempt"), ("end_to_end", "launch")):
        counts, total, total_ms = stats.cumulative(name, tuple(b * 1000 for b in LATENCY_BUCKETS_S))
        h.add_metric([*values, basis], [(f"{b:g}", float(n)) for b, n in zip(LATENCY_BUCKETS_S, counts)]
                     + [("+Inf", float(total))], sum_value=total_ms / 1000)
    return h


def registry_for(snapshot: Callable[[], Snapshot | None]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(snapshot))
    return registry
