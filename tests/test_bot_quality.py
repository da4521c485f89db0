"""What a bot team needs from a conversation run (issue #20): broken expectations grouped by (step, check,
what was expected), counted, with what came instead and one transcript — in the text summary, the HTML report,
JUnit (one test case per scripted step) and compare (new groups) — for bot conversations and Open Messaging alike."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from sim.load.breaks import MAX_GROUPS, FailureGroups
from sim.load.records import SessionRecord
from sim.platform.org import Org, default_org
from sim.platform.server import SimulatorThread
from tests.test_messaging_run import ENV

ROOT = Path(__file__).resolve().parent.parent
TEST_BOT = "b07f1e00-0000-4000-8000-000000000010"


def _session(name: str, *, script: int = 0, broke_at: int | None = None, got: str = "Sorry?") -> SessionRecord:
    turns = [{"n": 1, "step": None, "text": None, "prompt": "Hi", "broken": []}]
    for step in (1, 2, 3):
        broken = [{"check": "prompt_contains", "expected": "is that right", "got": got}] if step == broke_at else []
        turns.append({"n": step + 1, "step": step, "text": f"line {step}", "prompt": f"answer {step}", "broken": broken,
                      "failed": [f"prompt {got!r} does not contain 'is that right'"] if broken else []})
    return SessionRecord(seq=0, name=name, intended_at=0.0, http_status=200, sent_at=0.0, session_id=f"s-{name}",
                         turns=turns, script=script)


def test_groups_count_across_workers_keep_one_transcript_and_stay_bounded() -> None:
    a, b = FailureGroups(), FailureGroups()
    for i in range(3):
        a.add(_session(f"a{i}", broke_at=2, got=f"Sorry {i % 2}"))
    b.add(_session("b0", broke_at=2, got="Sorry 0"))
    b.add(_session("b1"))
    a.merge(b.encode())
    s = a.summary()
    (g,) = s["groups"]
    assert (g["step"], g["check"], g["count"]) == (2, "prompt_contains", 4)
    assert g["got"] == [["Sorry 0", 3], ["Sorry 1", 1]] and g["sample"]["session"] == "s-a0"
    assert g["sample"]["transcript"][-2:] == [["bot", "answer 2"],
                                              ["expected", "prompt 'Sorry 0' does not contain 'is that right'"]]
    assert [(st["step"], st["reached"], st["failed"]) for st in s["steps"]] == [(1, 5, 0), (2, 5, 4), (3, 5, 0)]
    many = FailureGroups()
    for i in range(MAX_GROUPS + 7):
        rec = _session(f"m{i}", broke_at=2)
        rec.turns[2]["broken"][0]["check"] = f"check {i}"
        many.add(rec)
    assert len(many.groups) == MAX_GROUPS and many.overflow == 7


def _bot_changed() -> Org:
    """The test bot, changed the ways bots change: its confirmation no longer asks "is that right" (step 2 of the
    shipped script breaks live), its intent model renamed CheckOrderStatus to OrderStatus (the dialog goes on the
    same; step 1's intent check breaks after the run), and its reporting turns readable only 2 s after each turn."""
    org = default_org()
    flows = []
    for f in org.flows:
        if f.id == TEST_BOT and f.bot is not None:
            intents = tuple(dataclasses.replace(i, name="OrderStatus",
                                                confirm="Order {order_number} for {customer_name}, correct?")
                            if i.name == "CheckOrderStatus" else i for i in f.bot.intents)
            f = dataclasses.replace(f, bot=dataclasses.replace(f.bot, intents=intents, reporting_lag_s=2.0))
        flows.append(f)
    return dataclasses.replace(org, flows=tuple(flows))


@pytest.mark.slow
def test_a_changed_bot_shows_what_broke_live_and_in_its_reporting_turns_everywhere(tmp_path: Path) -> None:
    """One run of the shipped scenario against the changed bot: the live failure group (step 2) with its count and
    transcript, and — after waiting, with progress, for the lagging reporting turns — the intent check's group
    (step 1), in the text, the report, JUnit (those steps fail, no other) and the exit code; coverage beside."""
    with SimulatorThread(_bot_changed()) as sim:
        cmd = [sys.executable, "-m", "sim.cli", "run", str(ROOT / "scenarios" / "bot-conversation.toml"), "--target",
               sim.url, "--rate", "4", "--duration", "3s", "--summary-json", str(tmp_path / "s.json"), "--ledger-dir",
               str(tmp_path / "runs"), "--junit", str(tmp_path / "j.xml"), "--html", str(tmp_path / "r.html"),
               "--plain"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=ENV, cwd=tmp_path)
    out = r.stdout + r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    (g,) = s["conversations"]["failures"]["groups"]
    assert r.returncode == 1 and g["count"] == s["conversations"]["sessions"] == 12, out[-3000:]
    # One group for the step, though each row of the data table expects its own name ("for Ada Example, ...").
    assert (g["step"], g["check"]) == (2, "prompt_contains") and g["expected"].endswith(", is that right")
    assert g["got"][0][0].endswith(", correct?") and g["sample"]["transcript"][-1][0] == "expected"
    assert "broke      step 2: prompt_contains expected 'for " in out and "in 12 conversation(s)" in out
    assert "customer: my name is" in out or "customer: it's" in out
    report = (tmp_path / "r.html").read_text()
    assert "What broke (1 group(s)" in report and "correct?" in report and "transcript" in report
    assert "Turn latency over time" in report and "Each scripted step" in report and "Intent and slot checks" in report
    assert any("turn_p95" in row for row in s["timeseries"]) and "Endings over time" in report
    assert sum(row.get("endings", {}).get("Exit:TriggeredByFlow", 0) for row in s["timeseries"]) == 12
    steps = s["conversations"]["failures"]["steps"]
    assert [(st["step"], st["reached"], st["failed"]) for st in steps] == [(1, 12, 0), (2, 12, 12), (3, 12, 0)]
    assert all(st["p95_ms"] > 0 for st in steps)
    # After the run: the reporting turns, waited for (they lag 2 s), judged.
    tc = s["turn_check"]
    assert tc["verdict"] == "FAIL" and tc["sessions_behind"] == 0 and "reporting turns: " in r.stderr
    (ig,) = tc["failures"]["groups"]
    assert (ig["step"], ig["check"], ig["expected"], ig["got"][0][0], ig["count"]) == (
        1, "intent", "CheckOrderStatus", "OrderStatus", 12)
    assert tc["checked"] == 36 and tc["failed"] == 12 and "intents    ✗ FAIL: 36 step(s) checked" in out
    cov = tc["coverage"]
    assert cov["uncovered_intents"] == ["TalkToAgent", "UpdateEmail"] and cov["uncovered_slots"] == ["email"]
    assert cov["intents"]["OrderStatus"] > 0 and cov["endings"] == {"Exit:TriggeredByFlow": 12}
    assert "coverage   intents 1 of 3 (not exercised: TalkToAgent, UpdateEmail); slots 2 of 3 (not filled: email)" in out
    cases = {c.get("name"): c.find("failure") for c in ET.parse(tmp_path / "j.xml").iter("testcase")}
    failing = sorted(n for n, f in cases.items() if f is not None and "step" in n)
    assert len([n for n in cases if n.startswith("step ")]) == 3 and len(failing) == 2
    assert failing[0].startswith("intents step 1:") and failing[1].startswith("step 2:")


def test_compare_names_a_failure_group_new_in_b(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the command, as CI calls it: the summaries written to disk and read back (the printed rows once
    shadowed the two summaries, so the command never saw a new group)."""
    from sim.cli import main
    from sim.results.compare import new_failure_groups
    from sim.results.summary import Conversations
    from tests.test_capacity_compare_report import fake_summary

    groups = FailureGroups()
    groups.add(_session("a", broke_at=2))
    a = dataclasses.replace(fake_summary(10, p95=5), load="conversation", section=Conversations(sessions=1))
    b = dataclasses.replace(a, section=Conversations(sessions=1, failures=groups.summary()))
    line = "script 1 step 2: prompt_contains expected 'is that right' (1 conversation(s))"
    assert new_failure_groups(a, b) == [line]
    assert new_failure_groups(b, b) == [] and new_failure_groups(b, a) == []
    for name, s in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps(s.to_dict()))
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    out = capsys.readouterr().out
    assert f"new failure group in B: {line}  REGRESSED" in out and "regression in: new failure groups" in out
    assert main(["compare", str(tmp_path / "b.json"), str(tmp_path / "a.json")]) == 0


def test_turn_latency_series_is_kept_apart_and_merges() -> None:
    from sim.load.series import TimeSeries

    a, b = TimeSeries(), TimeSeries()
    a.latency(0, 5.0)
    a.latency(1, 100.0, "turn")
    b.latency(1, 100.0, "turn")
    b.latency(3, 7.0)
    a.merge(b.encode())
    rows = {r["t"]: r for r in a.rows()}
    assert "turn_p50" not in rows[0] and "p50" in rows[0] and rows[1]["turn_p99"] == pytest.approx(100, rel=0.1)
    assert "turn_p50" not in rows[3] and "p50" in rows[3]
    plain = TimeSeries()
    plain.latency(0, 5.0)
    assert "lat_turn" not in plain.encode()  # a workflow run carries no turn buckets at all


def test_endings_over_time_are_counted_by_the_second_due_merge_and_cap_their_names() -> None:
    from sim.load.series import MAX_ENDINGS, TimeSeries

    a, b = TimeSeries(), TimeSeries()
    a.count(5, "launched")
    a.ending(5, "transferred")
    b.ending(3, "no_reply")  # an earlier second than a's first: a's arrays shift right on merge
    b.ending(5, "transferred", 2)
    a.merge(b.encode())
    rows = {r["t"]: r for r in a.rows()}
    assert rows[3]["endings"] == {"no_reply": 1} and rows[5]["endings"] == {"transferred": 3}
    assert rows[4]["endings"] == {} and rows[5]["launched"] == 1
    many = TimeSeries()
    for i in range(MAX_ENDINGS + 5):
        many.ending(0, f"Exit:reason{i}")
    (row,) = many.rows()
    assert len(row["endings"]) == MAX_ENDINGS and row["endings"]["other"] == 6 and sum(row["endings"].values()) == 17
    plain = TimeSeries()
    plain.count(0, "launched")
    assert "endings" not in plain.encode() and "endings" not in plain.rows()[0]  # a workflow run: none at all


def test_a_check_the_platform_has_not_answered_yet_is_not_a_failure() -> None:
    """Reporting turns not (all) there after the wait: those steps are unchecked and the verdict says NOT CAUGHT UP
    — never a failure invented from a lag."""
    import httpx

    from sim.load.client import FlowClient, TokenManager
    from sim.results.turn_check import check_turns

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json={"entities": [{"sessionId": "s-a", "intent": {"name": "X"}}]})

    transport = httpx.MockTransport(answer)
    tokens = TokenManager(login_url="http://login.test", client_id="c", client_secret="s", transport=transport,
                          spawn=lambda fn: fn())
    client = FlowClient(api_url="http://api.test", tokens=tokens, transport=transport, sleep=lambda _s: None)
    rec = _session("a")
    rec.turns[2]["nlu"] = {"intent": "CheckOrderStatus", "slots": {}}
    tc = check_turns(client, [rec], ["bot"], wait_s=0)
    assert tc is not None and tc["verdict"] == "NOT CAUGHT UP" and (tc["checked"], tc["failed"]) == (0, 0)
    assert tc["sessions_behind"] == 1


def _scenario_with_set(tmp_path: Path, lines: str, turn: str) -> Path:
    (tmp_path / "utt").mkdir(exist_ok=True)
    (tmp_path / "utt" / "orders.txt").write_text(lines)
    (tmp_path / "utterances").mkdir(exist_ok=True)
    for name in ("agent", "email"):  # the shipped scenario's other sets and its data table, as they are
        (tmp_path / "utterances" / f"{name}.txt").write_text(
            (ROOT / "scenarios" / "utterances" / f"{name}.txt").read_text())
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "customers.csv").write_text((ROOT / "scenarios" / "data" / "customers.csv").read_text())
    text = (ROOT / "scenarios" / "bot-conversation.toml").read_text()
    text = text.replace('order_status = "utterances/order_status.txt"', 'order_status = "utt/orders.txt"')
    start = text.index("[[flows.turns]]")
    end = text.index("[[flows.turns]]", start + 1)
    p = tmp_path / "bot.toml"
    p.write_text(text[:start] + turn + "\n" + text[end:])
    return p


@pytest.mark.parametrize(("lines", "turn", "message"), [
    ("where is my order {run.seq}\n", '[[flows.turns]]\nsay_from = "shoes"', "unknown utterance set 'shoes'"),
    ("where is my order {run.seq}\n", '[[flows.turns]]\nsay_from = "order_status"\nsay = "hi"', "either say or say_from"),
    ("where is my order {run.seq}\n", '[[flows.turns]]\nsay_from = "order_status"\npick = 3', "must be 1 to 1"),
    ("where is my order {run.seq}\n", '[[flows.turns]]\nsay_from = "order_status"\npick = "some"', "must be one of"),
    ("# nothing here\n\n", '[[flows.turns]]\nsay_from = "order_status"', "holds no utterance"),
    ("ok\nwhere is {order.id}\n", '[[flows.turns]]\nsay_from = "order_status"', "line 2: unknown placeholder {order.id}"),
])
def test_a_bad_utterance_set_is_one_line_naming_the_file_and_line(tmp_path: Path, lines: str, turn: str,
                                                                   message: str) -> None:
    from sim.errors import ConfigError
    from sim.load.scenario import load_scenario

    with pytest.raises(ConfigError) as err:
        load_scenario(_scenario_with_set(tmp_path, lines, turn))
    assert message in str(err.value)
    if "line 2" in message:
        assert "orders.txt" in str(err.value)


def test_utterance_sets_pick_all_first_random_or_a_sample() -> None:
    import random

    from sim.load.scenario import load_scenario
    from sim.load.utterances import pick_line

    sc = load_scenario(ROOT / "scenarios" / "bot-conversation.toml")
    first = sc.flows[0].turns[0]
    lines = [ln for ln in (ROOT / "scenarios" / "utterances" / "order_status.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert first.say == tuple(lines) and first.pick == "cycle"
    assert [pick_line(first.say, first.pick, random.Random(1), seq) for seq in range(len(lines) + 1)] == \
        lines + lines[:1]


def test_nlu_figures_count_precision_recall_f1_none_and_close_calls() -> None:
    from sim.results.nlu_figures import NONE, Detection, nlu_figures

    d = [Detection("a1", "A", (("A", 0.9), ("B", 0.1))), Detection("a2", "A", (("B", 0.6), ("A", 0.55))),
         Detection("b1", "B", (("B", 0.7), ("A", 0.0))), Detection("b2", "B", (("B", 0.3), ("A", 0.2)))]
    f = nlu_figures(d, min_confidence=0.5, close_margin=0.1)
    assert f.confusion == {"A": {"A": 1, "B": 1, NONE: 0}, "B": {"A": 0, "B": 1, NONE: 1}}
    assert f.per_intent["A"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    assert f.per_intent["B"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert f.macro["f1"] == pytest.approx((0.6667 + 0.5) / 2, abs=1e-3)
    assert [c["text"] for c in f.close] == ["a2", "b2"] and [w["text"] for w in f.wrong] == ["a2", "b2"]


@pytest.mark.slow
def test_flowsim_nlu_passes_the_shipped_sets_and_fails_a_confusable_one(tmp_path: Path) -> None:
    shipped = subprocess.run([sys.executable, "-m", "sim.cli", "nlu", str(ROOT / "scenarios" / "bot-conversation.toml"),
                              "--json", str(tmp_path / "nlu.json")], capture_output=True, text=True, timeout=120,
                             env=ENV)
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert "intent     TalkToAgent" in shipped.stdout and "macro      precision 1.00  recall 1.00  F1 1.00" in shipped.stdout
    assert json.loads((tmp_path / "nlu.json").read_text())["macro"]["f1"] == 1.0
    # Customers who mention their order when they mean their email: the model hears an order.
    (tmp_path / "utterances").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "customers.csv").write_text((ROOT / "scenarios" / "data" / "customers.csv").read_text())
    for name in ("order_status", "agent"):
        (tmp_path / "utterances" / f"{name}.txt").write_text((ROOT / "scenarios" / "utterances" / f"{name}.txt").read_text())
    (tmp_path / "utterances" / "email.txt").write_text("the email for my order\nwhere is my order email\n"
                                                        "update my email\n")
    (tmp_path / "bot.toml").write_text((ROOT / "scenarios" / "bot-conversation.toml").read_text())
    confused = subprocess.run([sys.executable, "-m", "sim.cli", "nlu", str(tmp_path / "bot.toml")], capture_output=True,
                              text=True, timeout=120, env=ENV)
    assert confused.returncode == 1, confused.stdout + confused.stderr
    assert "✗ FAIL min_recall  lowest UpdateEmail 0.33 vs 0.80" in confused.stdout
    assert "wrong      'where is my order email': expected UpdateEmail, detected CheckOrderStatus" in confused.stdout


def test_nlu_compare_lists_what_changed_intent_and_judges_f1_with_a_tolerance() -> None:
    from sim.results.nlu_compare import nlu_changes

    def run(detected: list[str], f1: dict[str, float]) -> dict[str, object]:
        texts = [("order 1", "Order"), ("order 2", "Order"), ("agent", "Agent"), ("agent", "Agent")]
        return {"kind": "nlu", "detections": [{"text": t, "expected": e, "detected": d}
                                              for (t, e), d in zip(texts, detected)],
                "per_intent": {k: {"f1": v} for k, v in f1.items()}, "macro": {"f1": sum(f1.values()) / len(f1)}}

    a = run(["Order", "Agent", "Agent", "(none)"], {"Order": 0.67, "Agent": 0.8})
    b = run(["Agent", "Order", "Agent", "Order"], {"Order": 0.66, "Agent": 0.5})
    ch = nlu_changes(a, b, f1_abs=0.02)
    assert [(r["text"], r["a"], r["b"]) for r in ch.broke] == [("order 1", "Order", "Agent")]
    assert [(r["text"], r["a"], r["b"]) for r in ch.fixed] == [("order 2", "Agent", "Order")]
    assert [(r["text"], r["a"], r["b"]) for r in ch.moved] == [("agent", "(none)", "Order")]  # second "agent"
    assert ch.regressed == ["Agent", "macro"] and ch.only_a == ch.only_b == 0  # Order's 0.01 drop is within 0.02
    assert nlu_changes(a, a, f1_abs=0.0).regressed == [] and not nlu_changes(a, a, f1_abs=0.0).broke


@pytest.mark.slow
def test_nlu_compare_between_two_models_names_the_utterances_that_changed(tmp_path: Path) -> None:
    """`flowsim nlu --json` against the shipped bot and against one whose intent was renamed, then
    `flowsim compare`: every order utterance broke (CheckOrderStatus → OrderStatus), exit 1; a file compared with
    itself passes; a run summary compared with an NLU file is refused in one line."""
    scenario = str(ROOT / "scenarios" / "bot-conversation.toml")
    files = []
    for name, org in (("a", default_org()), ("b", _bot_changed())):
        with SimulatorThread(org) as sim:
            r = subprocess.run([sys.executable, "-m", "sim.cli", "nlu", scenario, "--target", sim.url, "--json",
                                str(tmp_path / f"{name}.json")], capture_output=True, text=True, timeout=120, env=ENV)
        assert r.returncode == (0 if name == "a" else 1), r.stdout + r.stderr
        assert "vendor     quality report (the platform's" in r.stdout
        files.append(str(tmp_path / f"{name}.json"))
    cmp_ = subprocess.run([sys.executable, "-m", "sim.cli", "compare", *files], capture_output=True, text=True,
                          timeout=60, env=ENV)
    a = json.loads(Path(files[0]).read_text())
    orders = sum(1 for d in a["detections"] if d["expected"] == "CheckOrderStatus")
    assert cmp_.returncode == 1 and orders > 0, cmp_.stdout + cmp_.stderr
    assert f"changed intent: {orders} broke (right in A, wrong in B), 0 fixed" in cmp_.stdout
    assert cmp_.stdout.count(": CheckOrderStatus → OrderStatus") == min(orders, 20)
    assert "F1 CheckOrderStatus" in cmp_.stdout and "regression in: F1 of CheckOrderStatus" in cmp_.stdout
    same = subprocess.run([sys.executable, "-m", "sim.cli", "compare", files[0], files[0]], capture_output=True,
                          text=True, timeout=60, env=ENV)
    assert same.returncode == 0 and "no regression beyond tolerances" in same.stdout, same.stdout + same.stderr
    (tmp_path / "s.json").write_text(json.dumps({"kind": "run"}))
    mixed = subprocess.run([sys.executable, "-m", "sim.cli", "compare", str(tmp_path / "s.json"), files[0]],
                           capture_output=True, text=True, timeout=60, env=ENV)
    assert mixed.returncode == 2 and "not one of each" in mixed.stderr, mixed.stdout + mixed.stderr


@pytest.mark.parametrize(("csv_text", "message"), [
    ("name,email\nAda,ada@example.com\nGrace\n", "customers.csv line 3: 1 values for 2 columns"),
    ("Name,email\nAda,ada@example.com\n", "customers.csv line 1: column names are"),
    ("name,email\n", "customers.csv has no rows under its header"),
    ("", "customers.csv has no header row"),
])
def test_a_bad_data_table_is_one_line_naming_the_file_and_line(tmp_path: Path, csv_text: str, message: str) -> None:
    from sim.errors import ConfigError
    from sim.load.scenario import load_scenario

    p = _scenario_with_set(tmp_path, "where is my order {run.seq}\n", '[[flows.turns]]\nsay_from = "order_status"')
    (tmp_path / "data" / "customers.csv").write_text(csv_text)
    with pytest.raises(ConfigError) as err:
        load_scenario(p)
    assert message in str(err.value) and str(p) in str(err.value)


def test_data_placeholders_need_a_column_of_the_flows_table(tmp_path: Path) -> None:
    from sim.errors import ConfigError
    from sim.load.scenario import load_scenario

    p = _scenario_with_set(tmp_path, "where is my order {run.seq}\n",
                           '[[flows.turns]]\nsay = "my shoe size is {data.shoe_size}"')
    (tmp_path / "data" / "customers.csv").write_text("name,email\nAda,ada@example.com\n")
    with pytest.raises(ConfigError, match=r"unknown placeholder \{data.shoe_size\}"):
        load_scenario(p)
