"""The live metrics endpoint, scraped while a run goes (single process and master + 2 workers), parsed
with Prometheus' own parser; the last scrape never exceeds, and the run's summary equals, the ledger."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from sim.run.runner import free_port
from tests.e2e import launches, start_run, write_scenario


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(url, timeout=5).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_prometheus_endpoint_is_scraped_during_a_run(tmp_path: Path, workers: int) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with SimulatorThread(default_org()) as sim:
        proc = start_run(write_scenario(tmp_path, rate=20, duration="10s"), tmp_path, sim.url,
                         "--workers", str(workers), "--prometheus", f"127.0.0.1:{port}")
        scrapes = []
        try:
            for _ in range(120):  # bounded: at most ~60 s of polling
                if proc.poll() is not None:
                    break
                try:
                    m = _scrape(url)
                except httpx.HTTPError:
                    m = {}
                if m.get("flowsim_launches_total"):
                    scrapes.append(m)
                time.sleep(0.5)
            out, _ = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == 0, out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert scrapes, f"never scraped a run's metrics\n{out}"
    last = scrapes[-1]
    ok = {lab["result"]: v for lab, v in last["flowsim_launches_total"]}
    assert all(lab["run_id"] == summary["run_id"] for lab, _ in last["flowsim_launches_total"])
    sent = len(launches(tmp_path, summary["run_id"]))
    assert 0 < ok["ok"] + ok["failed"] <= sent == summary["launched"] == 200
    counts = [sum(v for _, v in s["flowsim_launches_total"]) for s in scrapes]
    assert counts == sorted(counts)  # a counter never goes down
    bases = {lab["basis"] for lab, _ in last["flowsim_launch_latency_ms"]}
    assert bases == {"attempt", "end_to_end"}
    # the histogram: per basis, cumulative buckets that never decrease and end at _count (aggregatable by le)
    for basis in bases:
        buckets = [(float(lab["le"]), v) for lab, v in last["flowsim_launch_latency_seconds_bucket"]
                   if lab["basis"] == basis]
        count = next(v for lab, v in last["flowsim_launch_latency_seconds_count"] if lab["basis"] == basis)
        values = [v for _, v in sorted(buckets)]
        assert values == sorted(values) and values[-1] == count > 0
    assert {lab["scope"] for lab, _ in last["flowsim_rate_limited_responses_total"]} == {"launch", "status_poll"}
    assert last["flowsim_target_rate_per_second"][0][1] in (0.0, 20.0)


@pytest.mark.slow
def test_a_busy_metrics_port_is_one_line_exit_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as held, SimulatorThread(default_org()) as sim:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = start_run(write_scenario(tmp_path, rate=5, duration="2s"), tmp_path, sim.url,
                         "--prometheus", f"127.0.0.1:{port}")
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert f"cannot serve metrics on 127.0.0.1:{port}" in out and "Traceback" not in out


def test_a_bad_metrics_address_is_refused_before_anything_starts() -> None:
    import sys

    r = subprocess.run([sys.executable, "-m", "sim.cli", "run", "--prometheus", "9646"], capture_output=True, text=True)
    assert r.returncode == 2 and "HOST:PORT" in r.stderr


def test_the_grafana_dashboard_only_queries_metrics_flowsim_serves() -> None:
    """Every metric a dashboard panel queries is one the collector exposes (a renamed metric breaks this)."""
    import re

    from sim.load.stats import RunStats
    from sim.run.metrics import Snapshot, registry_for

    stats = RunStats()
    stats.add_json({"seq": 0, "event": "launch", "intended_at": 1.0, "sent_at": 1.0, "answered_at": 1.1, "http_status": 200,
               "attempt_statuses": [200], "attempt_ms": [5.0], "latency_ms": 5.0}, 0.0)
    stats.add_json({"seq": 0, "event": "outcome", "intended_at": 1.0, "answered_at": 1.1, "observed_at": 2.0,
               "flow_status": "COMPLETED", "polls": 1}, 0.0)
    snap = Snapshot(run_id="r", scenario="s", target_rate_per_s=1.0, stats=stats, in_flight=0, verdict="RUNNING")
    served = {s.name for fam in registry_for(lambda: snap).collect() for s in fam.samples}
    from sim.drivers.conversation import CONVERSATION  # the bot panels query what a conversation run serves

    bots = RunStats()
    bots.add_json({"seq": 0, "event": "session", "session_id": "s1", "intended_at": 1.0, "sent_at": 1.0,
                   "answered_at": 1.1, "http_status": 200, "attempt_statuses": [200], "attempt_ms": [5.0],
                   "latency_ms": 5.0, "end": "Exit", "end_reason": "TriggeredByFlow", "ended_at": 3.0,
                   "expectation_failures": [],
                   "turns": [{"status": 200, "latency_ms": 40.0, "attempts": 1, "attempt_statuses": [200]}]}, 0.0)
    conv = Snapshot(run_id="r", scenario="s", target_rate_per_s=1.0, stats=bots, in_flight=0, verdict="RUNNING",
                    section=CONVERSATION.section)
    served |= {s.name for fam in registry_for(lambda: conv).collect() for s in fam.samples}
    dash = json.loads((Path(__file__).parent.parent / "dashboards" / "flowsim-grafana.json").read_text())
    queried = {m for p in dash["panels"] for t in p["targets"] for m in re.findall(r"\bflowsim_[a-z0-9_]+", t["expr"])}
    assert queried and queried <= served, queried - served
    for panel_title in ("Bot conversations", "Retries", "Run state", "histogram"):
        assert any(panel_title in p["title"] for p in dash["panels"]), panel_title


def test_a_conversation_run_exports_its_bot_figures() -> None:
    from sim.drivers.conversation import CONVERSATION
    from sim.load.stats import RunStats
    from sim.run.metrics import Snapshot, registry_for

    stats = RunStats()
    stats.add_json({"seq": 0, "event": "session", "session_id": "s1", "intended_at": 1.0, "sent_at": 1.0, "answered_at": 1.1,
               "http_status": 200, "attempt_statuses": [200], "attempt_ms": [5.0], "latency_ms": 5.0,
               "end": "Exit", "end_reason": "TriggeredByFlow", "ended_at": 3.0, "expectation_failures": [],
               "turns": [{"status": 200, "latency_ms": 40.0, "attempts": 1, "attempt_statuses": [200]}] * 4}, 0.0)
    snap = Snapshot(run_id="r", scenario="s", target_rate_per_s=1.0, stats=stats, in_flight=0, verdict="RUNNING",
                    section=CONVERSATION.section)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in registry_for(lambda: snap).collect() for s in fam.samples}
    assert samples[("flowsim_bot_turns_total", (("run_id", "r"), ("scenario", "s")))] == 4
    assert samples[("flowsim_bot_sessions_total", (("ending", "Exit:TriggeredByFlow"), ("run_id", "r"),
                                                   ("scenario", "s")))] == 1
    assert samples[("flowsim_bot_turn_latency_ms", (("quantile", "0.95"), ("run_id", "r"), ("scenario", "s")))] \
        == pytest.approx(40, rel=0.01)
