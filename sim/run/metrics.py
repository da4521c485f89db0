"""Live metrics of a run in Prometheus' exposition format, served by the master (or single process).

Reads the same live stats as the progress line (a worker's deltas merged on the master every Locust
report, ~3 s), so Prometheus sees what the terminal shows. Counters are cumulative for the run;
latency quantiles are over the run so far, per attempt and end to end (label ``basis``). Grafana:
``dashboards/flowsim-grafana.json``. No locust import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from sim.load.stats import RunStats

__all__ = ["Snapshot", "RunCollector", "registry_for"]


@dataclass(frozen=True, slots=True)
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


class RunCollector(Collector):
    """One scrape = one snapshot of the current (or last) run; nothing before the first run."""

    def __init__(self, snapshot: Callable[[], Snapshot | None]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        if snap is None:
            return
        labels, values = ["run_id", "scenario"], [snap.run_id, snap.scenario]
        c, st = snap.stats.counters, snap.stats

        def counter(name: str, doc: str, value: float) -> Metric:
            m = CounterMetricFamily(name, doc, labels=labels)
            m.add_metric(values, value)
            return m

        def gauge(name: str, doc: str, value: float) -> Metric:
            m = GaugeMetricFamily(name, doc, labels=labels)
            m.add_metric(values, value)
            return m

        yield gauge("flowsim_target_rate_per_second", "Scheduled launch rate now (launches/s)", snap.target_rate_per_s)
        launches = CounterMetricFamily("flowsim_launches", "Launches sent, by final result after retries",
                                       labels=[*labels, "result"])
        launches.add_metric([*values, "ok"], c["accepted"])
        launches.add_metric([*values, "failed"], c["launched"] - c["accepted"])
        yield launches
        yield counter("flowsim_first_attempt_failures", "Launches whose first attempt was not a 200",
                      c["first_attempt_failed"])
        yield counter("flowsim_retries", "Launch retries (attempts after the first)", c["retries"])
        yield counter("flowsim_missed_starts", "Launches due while every user was busy: never sent", c["missed_starts"])
        yield counter("flowsim_late", "Launches overdue past the late limit (paused/starved process): never sent",
                      c["late"])
        r429 = CounterMetricFamily("flowsim_rate_limited_responses", "429 answers, by request kind",
                                   labels=[*labels, "scope"])
        r429.add_metric([*values, "launch"], c["launch_429"])
        r429.add_metric([*values, "status_poll"], c["poll_429"])
        yield r429
        outcomes = CounterMetricFamily("flowsim_flow_outcomes", "Followed executions by terminal status",
                                       labels=[*labels, "status"])
        for status, n in sorted(st.outcomes.items()):
            outcomes.add_metric([*values, status], n)
        yield outcomes
        lat = GaugeMetricFamily("flowsim_launch_latency_ms",
                                "Launch latency over the run so far (ms); basis: attempt (each HTTP attempt) or "
                                "end_to_end (first send to final answer, retry waits included)",
                                labels=[*labels, "basis", "quantile"])
        for basis, hist in (("attempt", "launch_attempt"), ("end_to_end", "launch")):
            p = st.percentiles(hist)
            for q, v in (("0.5", p.p50), ("0.95", p.p95), ("0.99", p.p99)):
                if v is not None:
                    lat.add_metric([*values, basis, q], v)
        yield lat
        fd = st.percentiles("flow_completion")
        if fd.p95 is not None:
            flow = GaugeMetricFamily("flowsim_flow_duration_ms", "Launch answer to terminal status seen (ms)",
                                     labels=[*labels, "quantile"])
            flow.add_metric([*values, "0.5"], fd.p50 or 0.0)
            flow.add_metric([*values, "0.95"], fd.p95)
            yield flow
        if c["sessions"]:  # a conversation run: its bot sessions and turns
            endings = CounterMetricFamily("flowsim_bot_sessions", "Bot sessions ended, by how (Exit:/Disconnect: "
                                          "reason, or the harness's reason)", labels=[*labels, "ending"])
            for ending, n in sorted(st.endings.items()):
                endings.add_metric([*values, ending], n)
            yield endings
            yield counter("flowsim_bot_turns", "Bot turns sent (sessions ended so far)", c["turns"])
            yield counter("flowsim_bot_turn_failures", "Bot turns without a 200 after retries", c["turn_failed"])
            yield counter("flowsim_bot_sessions_breaking_script", "Bot sessions with a broken scripted expectation",
                          c["sessions_failing_expectations"])
            tp = st.percentiles("turn")
            turn = GaugeMetricFamily("flowsim_bot_turn_latency_ms", "Bot turn latency, first send to final answer (ms)",
                                     labels=[*labels, "quantile"])
            for q, v in (("0.5", tp.p50), ("0.95", tp.p95), ("0.99", tp.p99)):
                if v is not None:
                    turn.add_metric([*values, q], v)
            yield turn
        if snap.in_flight is not None:
            yield gauge("flowsim_in_flight", "Launches and follows in progress", snap.in_flight)
        verdict = GaugeMetricFamily("flowsim_run_state", "1 for the run's current state",
                                    labels=[*labels, "state"])
        verdict.add_metric([*values, snap.verdict], 1)
        yield verdict


def registry_for(snapshot: Callable[[], Snapshot | None]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(snapshot))
    return registry
