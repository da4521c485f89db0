"""The simulator's digital bot flows: the dialog (pure), the textbots endpoints over HTTP, bot analytics,
and the vendor SDK's TextbotsApi driving a whole conversation unmodified."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import httpx
import pytest

from sim.platform.bots import Dialog, extract, match_intent
from sim.platform.org import Faults, default_org
from sim.platform.server import SimulatorThread
from tests.conftest import LOAD_CLIENT, TEST_FLOW, VIEWER_CLIENT, token

TEST_BOT = "b07f1e00-0000-4000-8000-000000000010"
PROD_BOT = "b07f1e00-0000-4000-8000-0000000000a1"


def _bot() -> Any:
    flow = next(f for f in default_org().flows if f.id == TEST_BOT)
    return flow.bot


def test_the_dialog_greets_asks_fills_slots_confirms_and_exits() -> None:
    d = Dialog(_bot())
    first = d.turn("NoOp", None)
    assert first["nextActionType"] == "NoOp" and "flowsim test bot" in first["prompts"][0]
    ask = d.turn("NoOp", None)
    assert ask["nextActionType"] == "WaitForInput" and ask["prompts"] == ["What can I help you with today?"]
    assert ask["nextActionWaitForInput"]["modeConstraints"]["text"]["noInputTimeoutMilliseconds"] == 30000
    # The intent's sentence already carries the order number: only the name is asked for.
    name = d.turn("UserInput", "where is my order 48213")
    assert name["prompts"] == ["What name is the order under?"] and d.slots == {"order_number": "48213"}
    confirm = d.turn("UserInput", "my name is Ada Lovelace")
    assert confirm["prompts"] == ["Order 48213 for Ada Lovelace, is that right?"]
    done = d.turn("UserInput", "yes that's right")
    assert done["nextActionType"] == "Exit"
    ex = done["nextActionExit"]
    assert ex["reason"] == "TriggeredByFlow" and ex["activeIntent"] == "CheckOrderStatus"
    assert ex["outputData"]["variables"] == {"Slot.order_number": "48213", "Slot.customer_name": "Ada Lovelace",
                                             "Flow.orderStatus": "SHIPPED"}
    assert d.ended == {"type": "Exit", "reason": "TriggeredByFlow"}


def test_no_match_and_no_input_are_reasked_then_the_bot_gives_up() -> None:
    d = Dialog(_bot())
    d.turn("NoOp", None), d.turn("NoOp", None)
    for event, text in (("UserInput", "blue elephants"), ("NoInput", None)):  # retries = 2
        again = d.turn(event, text)
        assert again["nextActionType"] == "WaitForInput" and again["prompts"][-1] == "What can I help you with today?"
    gave_up = d.turn("NoMatch", None)
    assert gave_up["nextActionType"] == "Exit" and gave_up["nextActionExit"]["reason"] == "RecognitionFailure"


def test_agent_request_no_to_confirmation_and_user_disconnect() -> None:
    d = Dialog(_bot())
    d.turn("NoOp", None), d.turn("NoOp", None)
    agent = d.turn("UserInput", "I want to talk to an agent")
    assert agent["nextActionExit"]["reason"] == "AgentRequestedByUser"
    d = Dialog(_bot())
    d.turn("NoOp", None), d.turn("NoOp", None)
    d.turn("UserInput", "update my email")
    d.turn("UserInput", "it is ada@example.com")
    over = d.turn("UserInput", "no")
    assert over["prompts"] == ["OK, let's start over. What can I help you with today?"] and d.slots == {}
    bye = d.turn("UserDisconnect", None)
    assert bye["nextActionType"] == "Disconnect" and bye["nextActionDisconnect"]["reason"] == "TriggeredByUser"


@pytest.mark.parametrize(("kind", "text", "value"), [
    ("email", "sure, ada.l@example.org thanks", "ada.l@example.org"), ("number", "order 0042 please", "0042"),
    ("name", "this is Grace Hopper", "Grace Hopper"), ("name", "Alan Turing", "Alan Turing"),
    ("phone", "call +1 (555) 010-0199", "+15550100199"), ("yesno", "nope", "no"), ("yesno", "maybe", None),
    ("number", "no digits here", None)])
def test_slot_extraction(kind: str, text: str, value: str | None) -> None:
    assert extract(kind, text) == value


def test_intent_matching_is_deterministic_word_overlap() -> None:
    bot = _bot()
    assert match_intent(bot, "Hi, can you track my order?").name == "CheckOrderStatus"  # type: ignore[union-attr]
    assert match_intent(bot, "I need a real person now").name == "TalkToAgent"  # type: ignore[union-attr]
    assert match_intent(bot, "what's the weather") is None


# -- over HTTP --------------------------------------------------------------------------------------------
def _launch(http: httpx.Client, auth: dict[str, str], flow: str = TEST_BOT, **extra: Any) -> httpx.Response:
    body = {"flow": {"id": flow}, "externalSessionId": "flowsim-test-1",
            "channel": {"name": "Messaging", "inputModes": ["Text"], "outputModes": ["Text"],
                        "userAgent": {"name": "Open"}}, **extra}
    return http.post("/api/v2/textbots/botflows/sessions", json=body, headers=auth)


def _turn(http: httpx.Client, auth: dict[str, str], sid: str, event: str, text: str | None = None,
          prev: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"inputEventType": event}
    if prev:
        body["previousTurn"] = {"id": prev}
    if text is not None:
        body["inputEventUserInput"] = {"mode": "Text", "alternatives": [{"transcript": {"text": text,
                                                                                         "confidence": 1.0}}]}
    return http.post(f"/api/v2/textbots/botflows/sessions/{sid}/turns", json=body, headers=auth)


def test_sessions_and_turns_over_http_with_the_platform_errors(http: httpx.Client, auth: dict[str, str]) -> None:
    r = _launch(http, auth)
    assert r.status_code == 200 and set(r.json()) == {"id"}
    sid = r.json()["id"]
    t1 = _turn(http, auth, sid, "NoOp").json()
    assert t1["nextActionType"] == "NoOp" and t1["prompts"]["textPrompts"]["segments"][0]["type"] == "Text"
    t2 = _turn(http, auth, sid, "NoOp", prev=t1["id"]).json()
    assert t2["previousTurn"] == {"id": t1["id"]} and t2["nextActionType"] == "WaitForInput"
    # Out of order: previousTurn names an older turn → 400 ErrorBody, and the dialog did not move.
    stale = _turn(http, auth, sid, "UserInput", "track my order", prev=t1["id"])
    assert stale.status_code == 400 and stale.json()["code"] == "bad.request"
    assert stale.json()["details"][0]["fieldName"] == "previousTurn.id" and stale.headers["ININ-Correlation-Id"]
    assert _turn(http, auth, sid, "Dance").json()["code"] == "invalid.value"
    missing_text = http.post(f"/api/v2/textbots/botflows/sessions/{sid}/turns",
                             json={"inputEventType": "UserInput"}, headers=auth)
    assert missing_text.status_code == 400
    t3 = _turn(http, auth, sid, "UserInput", "talk to an agent", prev=t2["id"]).json()
    assert t3["nextActionType"] == "Exit" and t3["nextActionExit"]["reason"] == "AgentRequestedByUser"
    after = _turn(http, auth, sid, "NoOp", prev=t3["id"])
    assert after.status_code == 400 and "has ended" in after.json()["message"]
    assert _turn(http, auth, "no-such-session", "NoOp").status_code == 404
    # Wrong flow type, unknown flow, bad channel, missing permission.
    wrong = _launch(http, auth, flow=TEST_FLOW)
    assert wrong.status_code == 400 and "only digital bot flows" in wrong.json()["message"]
    assert _launch(http, auth, flow="00000000-0000-4000-8000-000000000000").status_code == 404
    bad = http.post("/api/v2/textbots/botflows/sessions", headers=auth,
                    json={"flow": {"id": TEST_BOT}, "externalSessionId": "x", "channel": {"name": "Fax"}})
    assert bad.status_code == 400 and bad.json()["details"][0]["fieldName"] == "channel.name"
    viewer = _launch(http, token(http, VIEWER_CLIENT))
    assert viewer.status_code == 403 and "textbots:botFlowSession:execute" in viewer.json()["message"]
    listing = http.get("/_sim/botsessions", params={"external_prefix": "flowsim-test-"}).json()
    assert listing["total"] == 1 and listing["entities"][0]["botResult"] == "ExitRequestedByUser"
    assert [t["inputEventType"] for t in listing["entities"][0]["turns"]] == ["NoOp", "NoOp", "UserInput"]


def test_bot_analytics_count_sessions_and_turns_by_bot_with_no_division(http: httpx.Client,
                                                                       auth: dict[str, str]) -> None:
    for _ in range(2):
        sid = _launch(http, auth).json()["id"]
        t = _turn(http, auth, sid, "NoOp").json()
        _turn(http, auth, sid, "UserDisconnect", prev=t["id"])
    now = dt.datetime.now(dt.timezone.utc)
    interval = f"{(now - dt.timedelta(hours=1)).isoformat()}/{(now + dt.timedelta(hours=1)).isoformat()}"
    body = {"interval": interval, "groupBy": ["botId", "botResult"],
            "metrics": ["nBotSessions", "nBotSessionTurns", "tBotSession"]}
    r = http.post("/api/v2/analytics/bots/aggregates/query", json=body, headers=auth)
    assert r.status_code == 200
    (row,) = r.json()["results"]
    assert row["group"] == {"botId": TEST_BOT, "botResult": "DisconnectRequestedByUser"}
    stats = {m["metric"]: m["stats"] for m in row["data"][0]["metrics"]}
    assert stats["nBotSessions"]["count"] == 2 and stats["nBotSessionTurns"]["count"] == 4
    assert stats["tBotSession"]["count"] == 2
    no_division = http.post("/api/v2/analytics/bots/aggregates/query", headers=auth,
                            json={**body, "groupBy": ["divisionId"]})
    assert no_division.status_code == 400 and "no divisionId" in no_division.json()["message"]


def test_vendor_sdk_textbots_api_runs_a_conversation_unmodified(sim: SimulatorThread) -> None:
    import PureCloudPlatformClientV2 as gc  # noqa: N813
    from PureCloudPlatformClientV2.rest import ApiException

    gc.configuration.host = sim.url
    api = gc.TextbotsApi(gc.api_client.ApiClient().get_client_credentials_token(*LOAD_CLIENT))
    launch = gc.TextBotFlowLaunchRequest()
    launch.flow = gc.TextBotFlow()
    launch.flow.id = TEST_BOT
    launch.external_session_id = "flowsim-sdk-1"
    launch.channel = gc.TextBotChannel()
    launch.channel.name = "Messaging"
    launch.channel.input_modes = ["Text"]
    launch.channel.output_modes = ["Text"]
    launch.channel.user_agent = gc.TextBotUserAgent()
    launch.channel.user_agent.name = "Open"
    session = api.post_textbots_botflows_sessions(launch)

    def turn(event: str, prev: str | None, text: str | None = None) -> Any:
        req = gc.TextBotFlowTurnRequest()
        req.input_event_type = event
        if prev:
            req.previous_turn = gc.TextBotTurnReference()
            req.previous_turn.id = prev
        if text is not None:
            alt = gc.TextBotUserInputAlternative()
            alt.transcript = gc.TextBotTranscript()
            alt.transcript.text, alt.transcript.confidence = text, 1.0
            req.input_event_user_input = gc.TextBotUserInputEvent()
            req.input_event_user_input.mode = "Text"
            req.input_event_user_input.alternatives = [alt]
        return api.post_textbots_botflows_session_turns(session.id, req)

    t, said, prev = turn("NoOp", None), iter(["update my email", "ada@example.com", "yes"]), None
    while t.next_action_type in ("NoOp", "WaitForInput"):
        prev = t.id
        t = turn("NoOp", prev) if t.next_action_type == "NoOp" else turn("UserInput", prev, next(said))
    assert t.next_action_type == "Exit" and t.next_action_exit.reason == "TriggeredByFlow"
    assert t.next_action_exit.output_data.variables == {"Slot.email": "ada@example.com", "Flow.emailUpdated": "true"}
    assert t.prompts.text_prompts.segments[0].text == "Your email is now ada@example.com."
    with pytest.raises(ApiException) as bad:
        turn("NoOp", prev)  # prev is now the turn before the last: out of order
    body = bad.value.body
    err = json.loads(body if isinstance(body, str) else body.decode())
    assert bad.value.status == 400 and err["code"] == "bad.request" and err["status"] == 400 and err["contextId"]


def test_bot_endpoints_share_the_per_token_rate_limit_and_the_faults() -> None:
    from tests.conftest import org_with

    with SimulatorThread(org_with(settings={"rate_limit_per_window": 3, "rate_limit_window_s": 60})) as sim, \
            httpx.Client(base_url=sim.url, timeout=10) as http:
        auth = token(http)
        sid = _launch(http, auth).json()["id"]
        t1 = _turn(http, auth, sid, "NoOp")
        t2 = _turn(http, auth, sid, "NoOp", prev=t1.json()["id"])
        assert t2.status_code == 200
        limited = _turn(http, auth, sid, "NoOp", prev=t2.json()["id"])  # the token's 4th request in the window
        assert limited.status_code == 429 and limited.json()["code"] == "too.many.requests"
        assert int(limited.headers["Retry-After"]) > 0
    with SimulatorThread(org_with(faults=Faults(error_rates={503: 1.0}))) as sim, \
            httpx.Client(base_url=sim.url, timeout=10) as http:
        r = _launch(http, token(http))
        assert r.status_code == 503 and r.json()["code"] == "service.unavailable"


def test_a_refused_turn_leaves_the_dialog_where_it_was_and_idle_sessions_expire(clock: Any) -> None:
    """A 503 on a turn does not advance the dialog (the retry with the same previousTurn is in order); a session
    idle past session_ttl_s ends with Disconnect SessionExpired."""
    with SimulatorThread(default_org(), clock=clock) as sim, httpx.Client(base_url=sim.url, timeout=10) as http:
        auth = token(http)
        sid = _launch(http, auth).json()["id"]
        t1 = _turn(http, auth, sid, "NoOp").json()
        sim.app.state.sim.org = dataclasses.replace(sim.app.state.sim.org, faults=Faults(error_rates={503: 1.0}))
        assert _turn(http, auth, sid, "NoOp", prev=t1["id"]).status_code == 503
        sim.app.state.sim.org = default_org()
        t2 = _turn(http, auth, sid, "NoOp", prev=t1["id"])
        assert t2.status_code == 200 and t2.json()["nextActionType"] == "WaitForInput"
        clock.advance(601)  # the test bot's session_ttl_s is 600
        t3 = _turn(http, auth, sid, "UserInput", "track my order", prev=t2.json()["id"]).json()
        assert t3["nextActionType"] == "Disconnect" and t3["nextActionDisconnect"]["reason"] == "SessionExpired"


def test_vendor_sdk_reads_reporting_turns_with_intents_slots_and_results_unmodified(sim: SimulatorThread) -> None:
    """AnalyticsApi.get_analytics_botflow_divisions_reportingturns against the simulator: a session's turns with
    what the bot understood, paged with the cursor the API hands out."""
    import time

    import PureCloudPlatformClientV2 as gc  # noqa: N813

    from sim.platform.analytics import iso_ms
    from tests.conftest import token

    with httpx.Client(base_url=sim.url) as http:
        auth = token(http)
        sid = http.post("/api/v2/textbots/botflows/sessions", headers=auth, json={
            "flow": {"id": TEST_BOT}, "externalSessionId": "flowsim-sdk-rt", "channel": {"name": "Messaging"}}).json()["id"]
        prev = None
        for event, text in (("NoOp", None), ("NoOp", None), ("UserInput", "where is my order 42"),
                            ("UserInput", "my name is Ada Lovelace"), ("UserInput", "yes")):
            body: dict[str, Any] = {"inputEventType": event, **({"previousTurn": {"id": prev}} if prev else {})}
            if text:
                body["inputEventUserInput"] = {"mode": "Text", "alternatives": [{"transcript": {"text": text}}]}
            prev = http.post(f"/api/v2/textbots/botflows/sessions/{sid}/turns", headers=auth, json=body).json()["id"]
    gc.configuration.host = sim.url
    api = gc.AnalyticsApi(gc.api_client.ApiClient().get_client_credentials_token(*LOAD_CLIENT))
    interval = f"{iso_ms(time.time() - 60)}/{iso_ms(time.time() + 1)}"
    first = api.get_analytics_botflow_divisions_reportingturns(TEST_BOT, interval=interval, session_id=sid, page_size=3)
    after = first.next_uri.split("after=")[1]
    rest = api.get_analytics_botflow_divisions_reportingturns(TEST_BOT, interval=interval, session_id=sid,
                                                             page_size=3, after=after)
    turns = first.entities + rest.entities
    assert [t.user_input for t in turns] == ["", "", "where is my order 42", "my name is Ada Lovelace", "yes"]
    asked = turns[2]
    assert asked.intent.name == "CheckOrderStatus" and asked.intent.confidence == 1.0
    assert [(s.name, s.value) for s in asked.intent.slots] == [("order_number", "42")]
    assert (asked.ask_action.action_type, asked.ask_action_result) == ("AskForNLUIntentAction", "SuccessCollection")
    assert [(s.name, s.value) for s in turns[3].intent.slots] == [("customer_name", "Ada Lovelace")]
    assert turns[4].ask_action_result == "SuccessConfirmationYes" and turns[4].session_end_details.type == "Exit"
    assert rest.next_uri is None


def test_vendor_sdk_finds_the_bots_nlu_domain_and_detects_unmodified(sim: SimulatorThread) -> None:
    """The flow's latest configuration names its NLU domain and version; LanguageUnderstandingApi's detect answers
    every intent with a probability, most likely first, and the slot values it found."""
    import PureCloudPlatformClientV2 as gc  # noqa: N813

    from tests.conftest import token

    with httpx.Client(base_url=sim.url) as http:
        config = http.get(f"/api/v2/flows/{TEST_BOT}/latestconfiguration", headers=token(http)).json()
    settings = config["botFlowSettings"]
    gc.configuration.host = sim.url
    api = gc.LanguageUnderstandingApi(gc.api_client.ApiClient().get_client_credentials_token(*LOAD_CLIENT))
    body = gc.NluDetectionRequest()
    body.input = gc.NluDetectionInput()
    body.input.text = "has order 1234 shipped yet"
    got = api.post_languageunderstanding_domain_version_detect(settings["nluDomainId"], settings["nluDomainVersionId"],
                                                                body)
    top = got.output.intents[0]
    assert top.name == "CheckOrderStatus" and top.probability == 0.5
    assert [(e.name, e.value.resolved) for e in top.entities] == [("order_number", "1234")]
    assert [i.probability for i in got.output.intents] == sorted((i.probability for i in got.output.intents),
                                                                reverse=True)
    version = api.get_languageunderstanding_domain_version(settings["nluDomainId"], settings["nluDomainVersionId"],
                                                           include_utterances=True)
    assert {i.name for i in version.intents} == {"CheckOrderStatus", "UpdateEmail", "TalkToAgent"}
    # The platform's own quality report: each training utterance held out in turn, shares per row, macro metrics.
    report = api.get_languageunderstanding_domain_version_report(settings["nluDomainId"],
                                                                 settings["nluDomainVersionId"])
    rows = {r.name: {c.name: c.value for c in r.columns} for r in report.confusion_matrix}
    assert set(rows) == {"CheckOrderStatus", "UpdateEmail", "TalkToAgent"}
    assert all(sum(cols.values()) == pytest.approx(1.0, abs=1e-3) for cols in rows.values())
    assert rows["CheckOrderStatus"]["CheckOrderStatus"] == 1.0
    assert {m.name for m in report.summary.metrics} == {"precision", "recall", "f1_score"}
