"""What a run or a capacity step looks like in the terminal: plain lines, units, labelled scopes."""

from __future__ import annotations

from sim.drivers import driver_for
from sim.load.figures import counts_text as _counts
from sim.results.summary import CapacityResult, CapacityStep, RunSummary

__all__ = ["run_text", "step_line", "capacity_line"]


def run_text(s: RunSummary) -> str:
    lat, li, pa = s.latency_ms, s.latency_from_intended_ms, s.attempt_latency_ms
    fc = s.flow_completion
    poll = (f"; each includes up to {fc.poll_interval_s * 1000:g} ms of poll interval, the resolution of this figure"
            if fc.poll_interval_s else "")
    lines: list[str | None] = [
        f"run {s.run_id}  ({s.scenario}, target {s.target}, {s.workers} worker(s))",
        f"  rate      target {s.target_rate_per_s}/s  achieved {s.achieved_rate_per_s}/s",
        f"  launches  scheduled {s.scheduled}  launched {s.launched}  succeeded {s.succeeded}  failed {s.failed}  "
        f"missed starts {s.missed_starts}  not sent {s.not_sent} (late {s.late}, refused {s.refused})  retries {s.retries}",
        f"  unanswered {s.transport_errors} launches got no HTTP answer (timed out or dropped): they may have run",
        f"  429s      {s.rate_limited_responses} responses ("
        + ", ".join(f"{k.replace('_', ' ')} attempts {v}" for k, v in s.rate_limited.items()) + ")",
        f"  http      final status of launches: {_counts(s.http_status)}",
        f"  latency   per attempt (each HTTP attempt, like Locust): p50 {pa.p50} ms  p95 {pa.p95} ms  "
        f"p99 {pa.p99} ms  max {pa.max} ms  ({pa.count} attempts)",
        f"  latency   end to end (first send to final answer, retry waits included): p50 {lat.p50} ms  "
        f"p95 {lat.p95} ms  p99 {lat.p99} ms  max {lat.max} ms  (from intended start: p99 {li.p99} ms)",
        f"  errors    first attempt {s.first_attempt_error_rate:.2%}  after retries {s.error_rate:.2%}  "
        f"(of {s.launched} launches)",
        None if fc.poll_interval_s is None else f"  flows     followed {fc.followed}  outcomes {_counts(fc.outcomes)}  duration p50 {fc.duration_ms.p50} ms  "
        f"p95 {fc.duration_ms.p95} ms (launch answer to terminal status seen{poll})",
        f"  ledger    {s.ledger_path} (counts from {s.ledger.get('counts_source', '?')})",
        "  analytics " + str(s.analytics.get("note", "")),
    ]
    drv = driver_for(s.load)
    if drv.unit != "launch":
        lines[2:2] = [f"  (a launch here is a {drv.unit}: POST {drv.path})"]
    if s.section is not None:
        lines += s.section.text_lines()
    if s.live:
        lines.append(f"  live      {s.live}")
    if s.duplicate_launches:
        lines.append(f"  DUPLICATES {s.duplicate_launches} sequence numbers were launched more than once")
    if s.unrecorded:
        lines.append(f"  UNRECORDED {s.unrecorded} launches were sent but could not be written to the ledger: "
                     "the run stopped there, and every count above is partial")
    if s.workers_lost:
        lines.append(f"  workers   lost mid-run: {', '.join(s.workers_lost)} (their share moved to the others)")
    if s.aborted:
        lines.append(f"  ABORTED   {s.aborted}")
    for t in s.thresholds:
        lines.append(f"  threshold {t.name:<24} limit {t.limit:<8} observed {t.observed}  {'PASS' if t.passed else 'FAIL'}"
                     + (f"  ({t.describes})" if t.describes else ""))
    lines.append("  RESULT    " + s.verdict)
    return "\n".join(line for line in lines if line is not None)


def step_line(st: CapacityStep) -> str:
    return (f"step {st.rate_per_s:>9}/s  achieved {st.achieved_rate_per_s:>9}/s  p95 {st.latency_ms.p95} ms end to end  "
            f"errors {st.first_attempt_error_rate:.2%} first attempt / {st.error_rate:.2%} after retries  "
            f"429s {st.rate_429:.2%}  missed {st.missed_starts}  "
            + (f"turn p95 {st.turn_p95_ms} ms  " if st.turn_p95_ms is not None else "")
            + ('pass' if st.passed else 'FAIL: ' + '; '.join(st.reasons)))


def capacity_line(c: CapacityResult) -> str:
    return (f"sustainable rate: {c.sustainable_rate_per_s} {c.unit}/s ({c.confidence}); "
            f"limited by: {c.limiting_factor or 'nothing up to --max'}; search took {c.search_duration_s} s")
