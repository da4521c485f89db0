"""Conversation scenarios (digital bot flows): scripts as data, one conversation against the simulator, and
whole runs — single process and master + workers, preflight refusals, Ctrl-C mid-conversation."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sim.errors import ConfigError
from sim.load.client import FlowClient, TokenManager
from sim.load.conversation import converse, session_body
from sim.load.identity import IdentityFactory
from sim.load.ledger import ledger_files, read_records
from sim.load.scenario import load_scenario, resolve_target
from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from tests.conftest import LOAD_CLIENT, TEST_FLOW
from tests.e2e import ENV, flowsim_run, start_run

ROOT = Path(__file__).resolve().parent.parent
TEST_BOT = "b07f1e00-0000-4000-8000-000000000010"
PROD_BOT = "b07f1e00-0000-4000-8000-0000000000a1"

SCENARIO = """
[scenario]
name = "conv"
kind = "conversation"
think_time_s = {think}
seed = 3

[[flows]]
id = "{flow}"
input = {{ "Flow.customerName" = "{{identity.full_name}}" }}
{turns}

[[stages]]
duration = "{duration}"
rate = {rate}

[thresholds]
expectation_failure_rate = 0.0
launch_error_rate = 0.0
"""

ORDER_TURNS = """
[[flows.turns]]
say = ["where is my order {run.seq}", "track my order {run.seq}"]
expect = { next_action = "WaitForInput", prompt_contains = "what name" }
[[flows.turns]]
say = ["my name is {identity.full_name}"]
[[flows.turns]]
say = "yes"
expect = { next_action = "Exit", exit_reason = "TriggeredByFlow", output = { "Flow.orderStatus" = "SHIPPED" } }
"""


def bot_sessions(sim: SimulatorThread, **params: object) -> dict[str, Any]:
    """The simulator's admin listing of bot sessions (``/_sim/botsessions``)."""
    return dict(httpx.get(f"{sim.url}/_sim/botsessions", params={"limit": 100000, **params}, timeout=30).json())


def write(tmp_path: Path, *, turns: str = ORDER_TURNS, flow: str = TEST_BOT, rate: float = 4, duration: str = "5s",
          think: float = 0.1) -> Path:
    p = tmp_path / "conv.toml"
    p.write_text(SCENARIO.format(flow=flow, turns=turns, rate=rate, duration=duration, think=think))
    return p


@pytest.mark.parametrize(("turns", "message"), [
    ("", "a conversation needs a script"),
    ('[[flows.turns]]\nsay = "hi {identity.shoe_size}"', "unknown placeholder {identity.shoe_size}"),
    ('[[flows.turns]]\nsay = []', "needs what the customer says"),
    ('[[flows.turns]]\nsay = "hi"\nexpect = { next_action = "AskForIntent" }', "must be one of"),
    ('[[flows.turns]]\nsay = "hi"\nevent = "Shout"', "must be one of"),
    ('[[flows.turns]]\nsay = "hi {"', "literal brace"),
])
def test_bad_scripts_are_one_clear_error(tmp_path: Path, turns: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_scenario(write(tmp_path, turns=turns))
    assert message in str(err.value)


def test_turns_belong_to_conversation_scenarios_only(tmp_path: Path) -> None:
    text = write(tmp_path).read_text().replace('kind = "conversation"', 'kind = "workflow"')
    (tmp_path / "w.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_scenario(tmp_path / "w.toml")
    assert "flows[0].turns" in str(err.value) and "unknown field" in str(err.value)


@pytest.fixture
def bot_client() -> Iterator[tuple[SimulatorThread, FlowClient]]:
    with SimulatorThread(default_org()) as sim:
        target = resolve_target(sim.url, embedded_url=None)
        tokens = TokenManager(login_url=target.login_url, client_id=LOAD_CLIENT[0], client_secret=LOAD_CLIENT[1])
        client = FlowClient(api_url=target.api_url, tokens=tokens)
        try:
            yield sim, client
        finally:
            client.close()
            tokens.close()


def _talk(client: FlowClient, tmp_path: Path, turns: str, *, max_turns: int = 30) -> object:
    sc = load_scenario(write(tmp_path, turns=turns))
    flow, ident = sc.flows[0], IdentityFactory(seed=1).make(5)
    body = session_body(flow, ident, seq=5, run_id="r1", prefix="flowsim")
    return converse(client, body, flow.turns, identity=ident, seq=5, run_id="r1", prefix="flowsim",
                    rng=random.Random(1), think_time_s=0.0, max_turns=max_turns)


def test_a_conversation_follows_its_script_and_checks_every_answer(bot_client: tuple[SimulatorThread, FlowClient],
                                                                   tmp_path: Path) -> None:
    sim, client = bot_client
    conv = _talk(client, tmp_path, ORDER_TURNS)
    assert conv.end == "Exit" and conv.end_reason == "TriggeredByFlow" and conv.failures == []  # type: ignore[attr-defined]
    events = [(t["event"], t["next_action"]) for t in conv.turns]  # type: ignore[attr-defined]
    assert events == [("NoOp", "NoOp"), ("NoOp", "WaitForInput"), ("UserInput", "WaitForInput"),
                      ("UserInput", "WaitForInput"), ("UserInput", "Exit")]
    assert conv.output["Slot.order_number"] == "5" and conv.billable_sessions == 1  # type: ignore[attr-defined]
    # What the simulator heard: the same turns, the session tagged with the run and the identity.
    (got,) = [s for s in bot_sessions(sim, external_prefix="flowsim-r1-")["entities"]]
    assert got["externalSessionId"] == "flowsim-r1-5" and got["inputData"]["Flow.loadTestRunId"] == "r1"
    assert [t["text"] for t in got["turns"]] == [t["text"] for t in conv.turns]  # type: ignore[attr-defined]


def test_a_failed_turn_is_followed_by_a_goodbye_so_the_session_does_not_linger(tmp_path: Path) -> None:
    """A turn answered 500: the session is closed with UserDisconnect on the last good turn (best effort, no
    retry), and the conversation ends turn_failed."""
    seen: list[dict[str, Any]] = []

    def platform(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        if request.url.path.endswith("/sessions"):
            return httpx.Response(200, json={"id": "s1"})
        body = json.loads(request.content)
        seen.append(body)
        if len(seen) == 1:
            return httpx.Response(200, json={"id": "t1", "nextActionType": "WaitForInput",
                                              "prompts": {"textPrompts": {"segments": [{"text": "hi"}]}}})
        if len(seen) == 2:
            return httpx.Response(500, json={"status": 500, "code": "internal.server.error", "message": "x"})
        return httpx.Response(200, json={"id": "t3", "nextActionType": "Disconnect"})

    transport = httpx.MockTransport(platform)
    tokens = TokenManager(login_url="http://api.test", client_id="c", client_secret="s", transport=transport,
                          spawn=lambda fn: fn())
    client = FlowClient(api_url="http://api.test", tokens=tokens, transport=transport, sleep=lambda _s: None)
    conv = _talk(client, tmp_path, ORDER_TURNS)
    assert conv.end == "turn_failed" and conv.end_reason == "HTTP 500 internal.server.error"  # type: ignore[attr-defined]
    assert [b["inputEventType"] for b in seen] == ["NoOp", "UserInput", "UserDisconnect"]
    assert seen[2]["previousTurn"] == {"id": "t1"} and conv.turns[-1]["event"] == "UserDisconnect"  # type: ignore[attr-defined]


def test_broken_expectations_short_scripts_and_endless_bots_are_counted(
        bot_client: tuple[SimulatorThread, FlowClient], tmp_path: Path) -> None:
    _sim, client = bot_client
    wrong = ORDER_TURNS.replace('prompt_contains = "what name"', 'prompt_contains = "favourite colour"')
    conv = _talk(client, tmp_path, wrong)
    assert conv.end == "Exit" and len(conv.failures) == 1 and "turn 3" in conv.failures[0]  # type: ignore[attr-defined]
    short = '[[flows.turns]]\nsay = "where is my order"\n'
    conv = _talk(client, tmp_path, short)
    assert conv.end == "script_ended" and "still waits for input" in conv.failures[0]  # type: ignore[attr-defined]
    assert conv.turns[-1]["event"] == "UserDisconnect"  # type: ignore[attr-defined]
    silent = '[[flows.turns]]\nevent = "NoInput"\n' * 3  # retries = 2: the third silence ends it
    conv = _talk(client, tmp_path, silent)
    assert (conv.end, conv.end_reason) == ("Exit", "RecognitionFailure")  # type: ignore[attr-defined]
    conv = _talk(client, tmp_path, ORDER_TURNS, max_turns=3)
    assert conv.end == "max_turns" and len(conv.turns) == 4  # type: ignore[attr-defined]  # 3 + the goodbye


def _sessions(tmp_path: Path, run_id: str) -> list[dict[str, object]]:
    return [r for r in read_records(ledger_files(tmp_path / "runs" / run_id)) if r["event"] == "session"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_conversation_run_one_ledger_record_per_session_single_and_multi_worker(tmp_path: Path, workers: int) -> None:
    """The shipped scenarios/bot-conversation.toml (its rate and length overridden), 0 and 2 workers."""
    with SimulatorThread(default_org()) as sim:
        code, s, out = flowsim_run(ROOT / "scenarios" / "bot-conversation.toml", tmp_path, sim.url, "--rate", "6",
                                   "--duration", "5s", "--workers", str(workers))
        assert code == 0, out[-3000:]
        received = bot_sessions(sim, external_prefix=f"flowsim-{s['run_id']}-")["entities"]
        # The ledger reconciled against what the simulator received: its bot sessions, not flow executions.
        rec = subprocess.run([sys.executable, "-m", "sim.cli", "ledger", "summary", "--json", s["run_id"], "--ledger-dir",
                              str(tmp_path / "runs"), "--target", sim.url], capture_output=True, text=True, timeout=60)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert json.loads(rec.stdout)["reconciliation"] == {"target_received": 30, "accepted_not_received": 0,
                                                        "unanswered_but_ran": 0, "received_not_in_ledger": 0}
    ledger = _sessions(tmp_path, s["run_id"])
    assert s["scheduled"] == s["launched"] == len(ledger) == len(received) == 30
    assert sorted(r["seq"] for r in ledger) == list(range(30)) and s["duplicate_launches"] == 0
    assert {r["name"] for r in ledger} == {f"flowsim-{s['run_id']}-{i}" for i in range(30)}
    assert len({r["identity_id"] for r in ledger}) == 30 and len({r["worker"] for r in ledger}) == max(1, workers)
    lines = [ln for ln in (ROOT / "scenarios" / "utterances" / "order_status.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]
    names = [row.split(",")[0] for row in (ROOT / "scenarios" / "data" / "customers.csv").read_text().splitlines()[1:]]
    for rec in ledger:  # the utterance set, cycled by conversation; the order number captured and said back
        said = [t["text"] for t in rec["turns"] if t["text"]]
        assert said[0] == lines[rec["seq"] % len(lines)].replace("{run.seq}", str(rec["seq"]))
        assert said[-1] in ("yes, order " + str(rec["seq"]), "yes that's right", "correct")
        assert said[1].endswith(names[rec["seq"] % len(names)])  # the data table's row, cycled by conversation
    by_id = {r["id"]: r for r in received}
    for rec in ledger:  # every turn the harness recorded is one the bot took, in order
        got = by_id[rec["session_id"]]
        assert [t["text"] for t in got["turns"]] == [t["text"] for t in rec["turns"]]
        assert got["externalSessionId"] == rec["name"] and got["inputData"]["Flow.loadTestRunId"] == s["run_id"]
        assert rec["end"] == "Exit" and rec["expectation_failures"] == []
    cv = s["conversations"]
    assert cv["sessions"] == 30 and cv["turns"] == sum(len(r["turns"]) for r in ledger) == 150
    assert cv["endings"] == {"Exit:TriggeredByFlow": 30} and cv["billable_sessions"] == 30
    assert re.search(r"sessions +started 30", out) and "billing: 30 bot sessions" in out


@pytest.mark.slow
@pytest.mark.parametrize(("flow", "message"), [(TEST_FLOW, "a conversation scenario drives digitalbot flows"),
                                               (PROD_BOT, "not the test division")])
def test_preflight_refuses_a_workflow_and_a_production_bot(tmp_path: Path, flow: str, message: str) -> None:
    with SimulatorThread(default_org()) as sim:
        code, _s, out = flowsim_run(write(tmp_path, flow=flow), tmp_path, sim.url)
        received = bot_sessions(sim)["total"]
    assert code == 2 and message in out and received == 0, out[-2000:]


@pytest.mark.slow
def test_ctrl_c_mid_conversation_ends_sessions_and_counts_them(tmp_path: Path) -> None:
    """SIGINT during long conversations: each session in flight says goodbye (UserDisconnect) and is written
    as interrupted; nothing left running; the ledger matches what the bot received."""
    with SimulatorThread(default_org()) as sim:
        proc = start_run(write(tmp_path, rate=5, duration="30s", think=1.0), tmp_path, sim.url,
                         start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while bot_sessions(sim)["total"] < 10 and time.monotonic() < deadline:
                time.sleep(0.2)
            os.kill(proc.pid, signal.SIGINT)
            out, _ = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        s = json.loads((tmp_path / "summary.json").read_text())
        received = bot_sessions(sim)["entities"]
    assert proc.returncode == 130, out[-3000:]
    ledger = _sessions(tmp_path, s["run_id"])
    assert s["interrupted"] and len(ledger) == len(received) == s["launched"] >= 10
    ends = {r["end"] for r in ledger}
    assert "interrupted" in ends and ends <= {"Exit", "interrupted"}, ends
    assert all(r["turns"][-1]["event"] == "UserDisconnect" for r in ledger if r["end"] == "interrupted")
    assert all(s2["ended"] is not None for s2 in received)  # no session left open on the bot


def test_shipped_bot_scenario_loads() -> None:
    sc = load_scenario(ROOT / "scenarios" / "bot-conversation.toml")
    assert sc.kind == "conversation" and sc.flows[0].id == TEST_BOT and len(sc.flows[0].turns) == 3
    assert ENV["GENESYS_CLIENT_ID"] == LOAD_CLIENT[0]


@pytest.mark.slow
def test_validate_prints_the_sample_session_and_the_billing_estimate(tmp_path: Path) -> None:
    import subprocess
    import sys

    with SimulatorThread(default_org()) as sim:
        r = subprocess.run([sys.executable, "-m", "sim.cli", "validate", str(ROOT / "scenarios" / "bot-conversation.toml"),
                            "--target", sim.url], capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "type=digitalbot division='Load Testing'" in r.stdout and '"externalSessionId": "flowsim-preflight-0"' in r.stdout
    assert "billing: 110 bot sessions of ≈5 turns each ≈ 110 billable sessions" in r.stdout


CAPTURE_TURNS = """
[[flows.turns]]
say = "where is my order {run.seq}"
expect = { regex = "what name", not_contains = "sorry", one_of = ["order", "name"] }
[[flows.turns]]
say = "my name is {identity.full_name}"
expect = { capture = { order = "order (\\\\d+) for", nobody = "ticket (\\\\d+)" } }
[[flows.turns]]
say = "yes, order {capture.order}{capture.nobody}"
expect = { next_action = "Exit" }
"""


def test_a_value_captured_from_an_answer_is_said_later_and_a_capture_that_finds_nothing_breaks(
        bot_client: tuple[SimulatorThread, FlowClient], tmp_path: Path) -> None:
    """The bot's confirmation names the order number; the script takes it (``capture``) and says it back. A
    capture that finds nothing is a broken check of that step, and says nothing."""
    _sim, client = bot_client
    conv = _talk(client, tmp_path, CAPTURE_TURNS)
    texts = [t["text"] for t in conv.turns if t["text"]]  # type: ignore[attr-defined]
    assert texts[-1] == "yes, order 5" and conv.end == "Exit"  # type: ignore[attr-defined]
    step2 = next(t for t in conv.turns if t["step"] == 2)  # type: ignore[attr-defined]
    assert [b["check"] for b in step2["broken"]] == ["capture nobody"]


@pytest.mark.parametrize(("turns", "message"), [
    ('[[flows.turns]]\nsay = "order {capture.order}"', "a capture is said only after the step that captures it"),
    ('[[flows.turns]]\nsay = "hi"\nexpect = { capture = { Order = "x" } }', "a capture's name is"),
    ('[[flows.turns]]\nsay = "hi"\nexpect = { capture = { order = "(" } }', "is not a regular expression"),
    ('[[flows.turns]]\nsay = "hi"\nexpect = { one_of = [""] }', "list of non-empty strings"),
])
def test_bad_captures_and_text_checks_are_one_clear_error(tmp_path: Path, turns: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_scenario(write(tmp_path, turns=turns))
    assert message in str(err.value)
