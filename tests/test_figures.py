"""Figures that say what they are: per-attempt and end-to-end launch latency side by side, first-attempt
and after-retry errors, thresholds that name their figure, and abort_on_fail evaluated live."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim._toml import TableReader
from sim.errors import ConfigError
from sim.load.stats import RunStats
from sim.load.figures import figures
from sim.load.thresholds import Thresholds, judge, read_thresholds
from sim.platform.org import Faults
from sim.platform.server import SimulatorThread
from tests.conftest import org_with
from tests.e2e import flowsim_run, launches, write_scenario


@pytest.mark.slow
def test_with_503s_both_latencies_are_reported_and_labelled(tmp_path: Path) -> None:
    """10 % 503s, retried: per-attempt latency counts every answered attempt; end-to-end includes the retry
    waits (each retry waits at least 1 s by the client's backoff); first-attempt errors show what retries hid."""
    with SimulatorThread(org_with(flow={"faults": Faults(error_rates={503: 0.1})})) as sim:
        code, s, out = flowsim_run(write_scenario(tmp_path, rate=25, duration="4s",
                                                  thresholds="launch_p95_ms = 60000\nlaunch_e2e_p95_ms = 60000"),
                                   tmp_path, sim.url)
    assert s, out
    recs = launches(tmp_path, s["run_id"])
    answered_attempts = sum(len(r["attempt_ms"]) for r in recs)
    assert s["attempt_latency_ms"]["count"] == answered_attempts > len(recs) == s["launched"] == 100
    first_failed = sum(1 for r in recs if r["attempt_statuses"][0] != 200)
    assert s["first_attempt_failed"] == first_failed > 0
    assert s["latency_ms"]["max"] >= 1000.0  # a retried launch waited >= 1 s before its retry
    assert s["attempt_latency_ms"]["max"] < s["latency_ms"]["max"]
    assert "latency    per attempt" in out and "latency    end to end" in out and "errors     first attempt" in out
    th = {t["name"]: t for t in s["thresholds"]}
    assert "per attempt" in th["launch_p95_ms"]["describes"] and "end to end" in th["launch_e2e_p95_ms"]["describes"]
    # Per second, first-attempt failures and retries add up to the run's counts, and the report draws them
    ts = s["timeseries"]
    assert sum(r.get("first_failed", 0) for r in ts) == first_failed
    assert sum(r.get("retries", 0) for r in ts) == s["retries"] > 0
    assert sum(r.get("failed", 0) for r in ts) == s["failed"]
    from sim.results.report import run_report
    from sim.results.summary import RunSummary

    page = run_report(RunSummary.from_dict(s))
    assert "failed at first attempt" in page and "retries (attempts after the first)" in page
    assert "Launches in flight" in page


@pytest.mark.slow
def test_abort_on_fail_stops_the_run_at_the_first_live_failure(tmp_path: Path) -> None:
    """Every launch fails: launch_error_rate with abort_on_fail stops a 40 s run once 20 launches are answered."""
    with SimulatorThread(org_with(flow={"faults": Faults(error_rates={503: 1.0})})) as sim:
        code, s, out = flowsim_run(write_scenario(
            tmp_path, rate=10, duration="40s",
            thresholds='launch_error_rate = 0.01\nabort_on_fail = ["launch_error_rate"]'), tmp_path, sim.url)
    assert code == 1, out
    assert "abort_on_fail" in (s["aborted"] or "") and s["passed"] is False
    assert s["launched"] < s["scheduled"] == 400
    assert "RESULT     FAIL" in out


def _th(table: dict[str, object]) -> Thresholds:
    return read_thresholds(TableReader(table, "t.toml", "thresholds"))


@pytest.mark.parametrize(("table", "message"), [
    ({"abort_on_fail": ["min_achieved_rate_ratio"], "min_achieved_rate_ratio": 0.9}, "cannot be checked live"),
    ({"abort_on_fail": ["launch_p95_ms"]}, "has no limit"),
    ({"abort_on_fail": ["nonsense"]}, "cannot be checked live"),
])
def test_abort_on_fail_is_validated(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _th(table)


def test_live_judgement_uses_the_figures_so_far() -> None:
    stats = RunStats()
    for seq in range(30):
        status = 503 if seq % 3 == 0 else 200
        stats.add_json({"seq": 0, "event": "launch", "intended_at": 100.0 + seq / 10, "sent_at": 100.0, "answered_at": 100.1,
                   "http_status": status, "attempt_statuses": [status], "attempt_ms": [5.0], "latency_ms": 5.0}, 100.0)
    th = _th({"launch_error_rate": 0.2, "launch_p95_ms": 10, "abort_on_fail": ["launch_error_rate", "launch_p95_ms"]})
    results = {r.name: r for r in judge(figures(stats).observed(), th, th.abort_on_fail)}
    assert results["launch_error_rate"].observed == pytest.approx(1 / 3, abs=1e-3)
    assert not results["launch_error_rate"].passed and results["launch_p95_ms"].passed


@pytest.mark.slow
def test_log_lines_are_plain_by_default_and_json_with_log_json(tmp_path: Path) -> None:
    import json

    from sim.platform.org import default_org

    with SimulatorThread(default_org()) as sim:
        scenario = write_scenario(tmp_path, rate=5, duration="2s")
        code_plain, _, plain = flowsim_run(scenario, tmp_path, sim.url)
        code_json, _, js = flowsim_run(scenario, tmp_path, sim.url, "--log-json")
    assert code_plain == code_json == 0, plain + js
    finished = [ln for ln in plain.splitlines() if "run.finished" in ln]
    assert finished and not finished[0].lstrip().startswith("{") and "verdict=PASS" in finished[0]
    record = next(json.loads(ln) for ln in js.splitlines() if '"run.finished"' in ln)
    assert record["verdict"] == "PASS" and record["level"] == "info"


def _mixed_run() -> RunStats:
    """A run with everything a view can show: retried 503s, final failures, 429s, missed and late starts, refused
    launches, outcomes (one interrupted by the stop)."""
    st, t0 = RunStats(), 1000.0
    for seq in range(200):
        due = t0 + seq * 0.05
        statuses = [503, 200] if seq % 10 == 0 else [503, 503, 503] if seq % 25 == 1 else [429, 200] if seq % 40 == 2 \
            else [200]
        st.add_json({"event": "launch", "seq": seq, "intended_at": due, "sent_at": due + 0.001,
                "answered_at": due + 0.02 * len(statuses), "http_status": statuses[-1], "attempt_statuses": statuses,
                "attempts": len(statuses), "attempt_ms": [5.0 + seq % 7] * len(statuses),
                "latency_ms": 20.0 * len(statuses)}, t0)
        if statuses[-1] == 200 and seq % 3 == 0:
            st.add_json({"seq": 0, "event": "outcome", "intended_at": due, "answered_at": due + 0.02, "observed_at": due + 1.0,
                    "flow_status": "INTERRUPTED" if seq == 198 else "FAILED" if seq % 9 == 0 else "COMPLETED",
                    "polls": 2, "poll_429": 0}, t0)
    st.add_json({"seq": 0, "event": "missed", "intended_at": t0 + 3.0, "count": 4}, t0)
    st.add_json({"seq": 0, "event": "late", "intended_at": t0 + 4.0}, t0)
    st.add_json({"seq": 0, "event": "not_sent", "intended_at": t0 + 5.0, "count": 2}, t0)
    return st


def test_every_view_shows_the_same_figures_for_the_same_run() -> None:
    """One figures function: the progress line, the live terminal, Prometheus, the web tab, the live thresholds and
    the summary agree on the achieved rate, failures, 429s and the missed-start rate of one run."""
    import re

    from sim.results.summary import build_summary
    from sim.run.watch import progress_fields
    from sim.run.metrics import Snapshot, registry_for
    from sim.run.terminal import figures as view_figures
    from sim.run.webui import tab_rows

    stats = _mixed_run()
    snap = Snapshot(run_id="r", scenario="s", target_rate_per_s=20.0, stats=stats, in_flight=0, verdict="RUNNING")
    f = snap.figures
    assert f.launched == 200 and f.failed == 8 and f.first_attempt_failed == 33 and f.rate_limited["launch"] == 5
    assert f.achieved_rate_per_s == pytest.approx(199 / 9.95)
    assert f.missed_start_rate == pytest.approx(4 / (200 + 4 + 1 + 2))
    # 67 followed, one INTERRUPTED by the stop (left out), FAILED for seqs divisible by 9 among the rest.
    followed = {k: v for k, v in f.flow_completion.outcomes.items()}
    assert f.flow_completion.failure_rate == pytest.approx(followed["FAILED"] / (sum(followed.values()) - 1))

    progress = progress_fields(snap, elapsed_s=10.0, target_rate_per_s=20.0)
    terminal = view_figures(snap, elapsed_s=10.0, duration_s=10.0, scheduled=207, workers=0)
    prom = {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in registry_for(lambda: snap).collect() for s in fam.samples}
    tab = {r["figure"]: r["value"] for r in tab_rows(snap, None, None, Thresholds(missed_start_rate=0.5))}
    live = judge(f.observed(), Thresholds(missed_start_rate=0.5, flow_failure_rate=0.5))
    summary = build_summary(stats, run_id="r", scenario="s", target="t", thresholds=Thresholds(
        missed_start_rate=0.5, flow_failure_rate=0.5), scheduled=207, duration_s=10.0, rate_at=lambda _t: 20.0,
        workers=1, workers_lost=(), ledger_path="", ledger={}, duplicates=0, aborted=None, interrupted=False,
        analytics={})
    labels = (("run_id", "r"), ("scenario", "s"))

    rate = round(f.achieved_rate_per_s, 2)
    assert progress["achieved_rate_per_s"] == terminal["achieved_rate_per_s"] == rate
    assert summary.achieved_rate_per_s == round(f.achieved_rate_per_s, 3)
    assert f"achieved so far {f.achieved_rate_per_s:.2f}/s" in tab["launch rate"]
    assert progress["failed_after_retries"] == terminal["failed"] == summary.failed == f.failed
    assert prom[("flowsim_launches_total", (("result", "failed"), *labels))] == f.failed
    assert f"failed {f.failed}" in tab["launches"]
    assert progress["first_attempt_failed"] == terminal["first_attempt_failed"] == summary.first_attempt_failed
    assert prom[("flowsim_first_attempt_failures_total", labels)] == f.first_attempt_failed
    assert progress["r429"] == summary.rate_limited_responses == sum(terminal["rate_limited"].values())
    assert progress["missed"] == terminal["missed"] == summary.missed_starts == 4
    observed = {r.name: r.observed for r in live}
    final = {t.name: t.observed for t in summary.thresholds}
    assert observed == final  # the live judgement and the final one read the same figures
    assert "1.93% ≤ 50.00%" in tab["threshold missed_start_rate"]  # in the threshold's unit, as the summary says it


def test_a_run_that_follows_nothing_has_no_flow_failures_and_stopped_flows_are_not_failures() -> None:
    """Without follow-up polling no flow is judged: flow_failure_rate is 0, not a missing figure that fails the
    threshold; flows the run's stop interrupted are left out (12 COMPLETED + 2 INTERRUPTED is 0 %, not 14 %)."""
    st = _mixed_run()
    st.outcomes.clear()
    assert figures(st).observed()["flow_failure_rate"] == 0.0
    st.outcomes.update({"COMPLETED": 12, "INTERRUPTED": 2})
    assert figures(st).observed()["flow_failure_rate"] == 0.0
    st.outcomes.update({"FAILED": 1})
    assert figures(st).observed()["flow_failure_rate"] == pytest.approx(1 / 13)


def test_recorded_buckets_are_hdrh_recorded_iterators_steps() -> None:
    """``recorded`` yields exactly what hdrh's recorded iterator does (value iterated to, count in that step),
    for values across the histogram's whole range, repeats and an empty histogram."""
    import random

    from hdrh.histogram import HdrHistogram

    from sim.load.stats import recorded

    rng = random.Random(7)
    for n in (0, 1, 20, 5000):
        h = HdrHistogram(1, 3_600_000_000, 3)
        for _ in range(n):
            h.record_value(int(rng.choice([rng.uniform(1, 50), rng.uniform(1_000, 900_000), 3_599_000_000])))
        expected = [(it.value_iterated_to, it.count_added_in_this_iter_step) for it in h.get_recorded_iterator()]
        assert recorded(h) == expected and sum(c for _, c in expected) == n
