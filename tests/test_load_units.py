"""Load-side building blocks without Locust: schedule, identities, payloads, scenarios, ledger, logs."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import structlog

from sim import logs
from sim.errors import ConfigError
from sim.load.identity import EXAMPLE_DOMAINS, IdentityFactory, is_fictional_phone
from sim.load.records import LaunchRecord, OutcomeRecord, SessionOpenRecord, SessionRecord
from sim.load.ledger import Ledger, ledger_files, replay, summarize
from sim.load.payload import PayloadBuilder
from sim.load.scenario import Stage, load_scenario, parse_duration
from sim.load.schedule import Schedule

ROOT = Path(__file__).resolve().parent.parent


def test_constant_stage_spaces_launches_evenly() -> None:
    """50/s for 20 s schedules 1000 launches exactly 20 ms apart."""
    s = Schedule((Stage(duration_s=20, rate_per_s=50),))
    assert s.total == 1000
    assert s.due_s(0) == 0 and s.due_s(1) == pytest.approx(0.02) and s.due_s(999) == pytest.approx(19.98)


def test_ramp_follows_the_integral_of_the_rate() -> None:
    """A 0→10/s ramp over 60 s then 60 s at 10/s: 300 + 600 launches; the ramp's first half holds a quarter."""
    s = Schedule((Stage(duration_s=60, rate_per_s=10, ramp=True), Stage(duration_s=60, rate_per_s=10)))
    assert s.total == 900
    assert s.seq_at(30) == 75
    dues = [s.due_s(i) for i in range(s.total)]
    assert dues == sorted(dues) and dues[-1] < 120
    assert s.rate_at(30) == pytest.approx(5)


def test_identities_are_unreachable_and_unique() -> None:
    """Every phone is from a fictional range, every e-mail on an example domain, ids unique."""
    for locale in ("en_US", "en_GB"):
        f = IdentityFactory(locale=locale)
        ids = [f.make(i) for i in range(2000)]
        assert len({i.id for i in ids}) == 2000
        assert all(is_fictional_phone(i.phone) for i in ids)
        assert all(i.email.rsplit("@", 1)[1] in EXAMPLE_DOMAINS for i in ids)
        assert all(i.email.isascii() for i in ids)
    assert IdentityFactory(locale="en_GB").make(0).phone.startswith("+447700900")


def test_seeded_identities_are_reproducible_per_sequence_number() -> None:
    """With a seed, identity N is the same whatever order or process makes it."""
    a, b = IdentityFactory(seed=7), IdentityFactory(seed=7)
    first = [a.make(i) for i in range(5)]
    assert [b.make(i) for i in reversed(range(5))][::-1] == first


def test_payload_fills_template_and_tags_run() -> None:
    """inputData is filled from the identity, the run id input added when declared, the name tagged."""
    sc = load_scenario(ROOT / "scenarios" / "smoke.toml")
    ident = IdentityFactory(seed=1).make(12)
    body = PayloadBuilder(sc, "R1", {sc.flows[0].id: {"Flow.loadTestRunId", "Flow.customerName"}}).build(12, ident)
    assert body["name"] == "flowsim-R1-12"
    assert body["inputData"]["Flow.customerName"] == ident.full_name
    assert body["inputData"]["Flow.priority"] == 3
    assert body["inputData"]["Flow.loadTestRunId"] == "R1"
    assert set(body) == {"flowId", "name", "inputData"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[scenario]\nmax_concurency = 3\n', "scenario.max_concurency: unknown field"),
        ('[[flows]]\nid = "f"\n[flows.input]\ncustomerId = "x"\n[[stages]]\nduration="1s"\nrate=1\n',
         "use 'Flow.customerId'"),
        ('[[flows]]\nid = "f"\n[flows.input]\n"Flow.x" = "{identity.ssn}"\n[[stages]]\nduration="1s"\nrate=1\n',
         "unknown placeholder {identity.ssn}"),
        ('[[flows]]\nid = "f"\n[[stages]]\nduration = "soon"\nrate = 1\n', "stages[0].duration"),
        ('[scenario]\ntarget = "mars_north_1"\n[[flows]]\nid = "f"\n[[stages]]\nduration="1s"\nrate=1\n',
         "us_east_1"),
        ('[[flows]]\nid = "f"\n', "[[stages]]"),
    ],
)
def test_bad_scenarios_name_file_and_field(tmp_path: Path, text: str, fragment: str) -> None:
    """A bad scenario raises ConfigError naming the file and what is wrong."""
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    assert str(p) in str(e.value) and fragment in str(e.value)


def test_shipped_scenarios_load() -> None:
    """Every scenario under scenarios/ is valid."""
    names = {load_scenario(p).name for p in (ROOT / "scenarios").glob("*.toml")}
    assert {"smoke", "steady", "ramp", "journey"} <= names


def test_durations() -> None:
    """Durations accept seconds, 20s, 5m, 1h30m and reject nonsense."""
    assert [parse_duration(v) for v in (20, "20s", "5m", "1h30m")] == [20, 20, 300, 5400]
    with pytest.raises(ConfigError):
        parse_duration("-3s")


def test_ledger_survives_a_torn_line_and_finds_duplicates(tmp_path: Path) -> None:
    """A half-written last line is skipped; duplicate names and unresolved launches are counted."""
    led = Ledger(tmp_path)
    for seq in (0, 1, 1):
        led.write(LaunchRecord(run_id="R", seq=seq, name=f"p-R-{seq}", http_status=200, execution_id=f"e{seq}",
                               intended_at=1.0, sent_at=1.0))
    led.write(OutcomeRecord(run_id="R", seq=0, name="p-R-0", flow_status="COMPLETED", intended_at=1.0,
                            answered_at=1.1, observed_at=2.0))
    led.close()
    with open(led.path, "ab") as f:
        f.write(b'{"event": "launch", "na')
    s = summarize(ledger_files(tmp_path))
    assert s["launch_attempts"] == 3 and s["duplicate_names"] == 1
    assert s["outcomes"] == {"COMPLETED": 1} and s["accepted_without_outcome"] == 1


def test_a_session_opened_and_never_closed_counts_as_started_and_lost(tmp_path: Path) -> None:
    """A crash leaves session_open records: replay counts each as a started session that ended "lost"; one that
    closed counts once, by its closing record; ledger summary says how many never closed."""
    start: dict[str, Any] = {
        "run_id": "R", "flow_id": "b", "identity_id": "i", "http_status": 200, "attempt_statuses": [200],
        "attempt_ms": [5.0], "intended_at": 100.0, "sent_at": 100.0, "answered_at": 100.005, "latency_ms": 5.0,
        "worker": "w"}
    led = Ledger(tmp_path)
    for seq in (0, 1):
        led.write(SessionOpenRecord(**start, seq=seq, name=f"p-R-{seq}", session_id=f"s{seq}"))
    led.write(SessionRecord(**start, seq=0, name="p-R-0", session_id="s0", end="Exit", end_reason="TriggeredByFlow",
                            ended_at=101.0, billable_sessions=1))
    led.close()
    stats, duplicates = replay(ledger_files(tmp_path), t0=100.0)
    assert stats.counters["launched"] == 2 == stats.counters["sessions"] and duplicates == 0
    assert stats.endings == {"Exit:TriggeredByFlow": 1, "lost": 1}
    s = summarize(ledger_files(tmp_path))
    assert s["kind"] == "session" and s["sessions_never_closed"] == 1 and "accepted_without_outcome" not in s
    assert s["accepted"] == 2 and s["launch_attempts"] == 2  # the open one was started all the same


def test_logs_redact_secrets() -> None:
    """Tokens, client secrets and Authorization headers never reach a log line."""
    out = io.StringIO()
    logs.configure(level="debug", json=True, stream=out)  # type: ignore[arg-type]
    try:
        structlog.get_logger().info("token.refreshed", access_token="tok-123", client_secret="s3cr3t",
                                    headers={"Authorization": "Bearer abc.def"},
                                    note="sent Authorization: Basic Zm9vOmJhcg== and client_secret=s3cr3t")
    finally:
        logs.reset()
    line = json.loads(out.getvalue())
    text = out.getvalue()
    for secret in ("tok-123", "s3cr3t", "abc.def", "Zm9vOmJhcg=="):
        assert secret not in text
    assert line["access_token"] == logs.REDACTED and line["event"] == "token.refreshed"


def test_unsent_launches_aggregate_past_50_a_second_and_still_count_exactly(tmp_path: Path) -> None:
    """120 missed starts in one second and 3 in the next: 50 + 1 aggregate + 3 ledger lines, 123 counted."""
    from sim.load.ledger import replay
    from sim.run.records import Unsent

    led = Ledger(tmp_path)
    unsent = Unsent(led.write, run_id="R", prefix="p", worker="w")
    t0 = 1000.0
    for i in range(120):
        unsent.add("missed", i, t0 + 0.5 + i / 1000)
    for i in range(120, 123):
        unsent.add("missed", i, t0 + 1.5)
    unsent.flush()
    led.close()
    assert led.lines == 54
    stats, _dupes = replay(ledger_files(tmp_path), t0)
    assert stats.counters["missed_starts"] == 123
    assert summarize(ledger_files(tmp_path))["missed_starts"] == 123


def test_series_is_compact_mergeable_and_close_to_exact() -> None:
    """Per-second series: counts exact, percentiles within one bucket (±10 %), merge of drained parts equals the
    whole, and a day costs megabytes, not gigabytes."""
    import random

    from sim.load.series import TimeSeries

    rng = random.Random(1)
    whole, parts = TimeSeries(), [TimeSeries(), TimeSeries()]
    samples = {s: [rng.lognormvariate(1, 0.5) for _ in range(200)] for s in range(100, 110)}
    for s, values in samples.items():
        for j, ms in enumerate(values):
            for ts in (whole, parts[j % 2]):
                ts.count(s, "launched")
                ts.latency(s, ms)
    merged = TimeSeries()
    for part in parts:
        merged.merge(part.encode())
    assert merged.rows() == whole.rows() and [r["t"] for r in whole.rows()] == list(range(100, 110))
    for row in whole.rows():
        exact = sorted(samples[row["t"]])[math.ceil(200 * 0.95) - 1]
        assert row["launched"] == 200 and abs(row["p95"] - exact) / exact < 0.10
    day = TimeSeries()
    for s in range(0, 86_400, 60):
        day.count(s, "launched")
    day.count(86_399, "launched")
    assert day.nbytes() < 40_000_000 and sum(r["launched"] for r in day.rows()) == 1441
    assert whole.window(109, 3)["launched"] == 600


def test_live_table_carries_the_approval_reference(tmp_path: Path) -> None:
    """`[live] approval = "CASE-9"` is read into the scenario; an unknown [live] key is refused by name."""
    p = tmp_path / "live.toml"
    p.write_text((ROOT / "scenarios" / "smoke.toml").read_text() + '\n[live]\napproval = "CASE-9"\n')
    assert load_scenario(p).approval == "CASE-9"
    p.write_text((ROOT / "scenarios" / "smoke.toml").read_text() + '\n[live]\napprove = "CASE-9"\n')
    with pytest.raises(ConfigError, match="live.approve"):
        load_scenario(p)


def test_every_ledger_record_round_trips_through_json_and_keeps_the_old_keys() -> None:
    """One JSON round trip per record type; fields only some lines carry are left out when None; a line as this
    flowsim wrote it before records were typed parses to the same record."""
    import orjson

    from sim.load.records import UnsentRecord, parse

    unit: dict[str, Any] = {"run_id": "R", "seq": 3, "name": "p-R-3", "flow_id": "f", "identity_id": "i",
                            "intended_at": 10.0, "worker": "w", "http_status": 200, "attempt_statuses": [503, 200],
                            "attempts": 2, "attempt_ms": [4.0, 5.0], "sent_at": 10.001, "answered_at": 10.2,
                            "latency_ms": 199.0}
    records = [
        LaunchRecord(**unit, execution_id="e3"),
        LaunchRecord(**{**unit, "http_status": 0, "answered_at": None, "latency_ms": None}, error="unanswered_at_stop",
                     cause="in flight", given_up_at=12.0),
        OutcomeRecord(run_id="R", seq=3, name="p-R-3", execution_id="e3", intended_at=10.0, answered_at=10.2,
                      worker="w", flow_status="COMPLETED", polls=2, observed_at=11.3),
        SessionOpenRecord(**unit, session_id="s3"),
        SessionRecord(**unit, session_id="s3", turns=[{"n": 1, "status": 200, "latency_ms": 20.0}], end="Exit",
                      end_reason="TriggeredByFlow", output={"Flow.x": 1}, ended_at=14.0, billable_sessions=1),
        UnsentRecord(event="missed", run_id="R", seq=4, name="p-R-4", intended_at=10.05, worker="w"),
        UnsentRecord(event="late", run_id="R", seq=60, intended_at=11.0, worker="w", count=7, seq_last=66),
        UnsentRecord(event="not_sent", run_id="R", seq=5, name="p-R-5", intended_at=10.1, worker="w",
                     reason="refused", cause="connection refused"),
    ]
    for rec in records:
        assert parse(orjson.loads(orjson.dumps(rec.to_json()))) == rec
    assert "given_up_at" not in records[0].to_json() and "cause" not in records[0].to_json()
    assert records[1].to_json()["given_up_at"] == 12.0
    assert set(records[6].to_json()) == {"event", "run_id", "seq", "intended_at", "worker", "count", "seq_last"}
    old_launch = ('{"event":"launch","run_id":"R","seq":3,"name":"p-R-3","flow_id":"f","identity_id":"i",'
                  '"intended_at":10.0,"worker":"w","execution_id":"e3","http_status":200,"error":null,'
                  '"context_id":null,"attempts":2,"attempt_statuses":[503,200],"attempt_ms":[4.0,5.0],'
                  '"sent_at":10.001,"answered_at":10.2,"latency_ms":199.0}')
    assert parse(orjson.loads(old_launch)) == records[0]
    assert set(orjson.loads(old_launch)) == set(records[0].to_json())
    assert parse({"event": "something_new", "seq": 1}) is None
