"""Conversation analytics for Open Messaging (API reference §11): the simulator's conversation details (validation,
permission, filters, production conversations beside the test ones) and flowsim's separation proof over them —
this run's conversations known by addressFrom, apart by divisionId — including the verdict when they are not."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from sim.load.client import FlowClient, TokenManager
from sim.platform.analytics import iso_ms
from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from sim.results.conversation_analytics import DETAILS_PATH, check_conversation_analytics
from tests.conftest import token
from tests.test_messaging_simulator import INTEGRATION, VIEWER, _message

TEST_DIVISION = "a1b2c3d4-0000-4000-8000-00000000d7e5"


def _interval(a: float, b: float) -> str:
    return f"{iso_ms(a)}/{iso_ms(b)}"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "interval"),
    ({"interval": "2026-11-30T10:00:00Z/2026-11-30T11:00:00Z", "paging": {"pageSize": 101}}, "paging"),
    ({"interval": "2026-11-30T10:00:00Z/2026-11-30T11:00:00Z",
      "segmentFilters": [{"type": "and", "predicates": [{"dimension": "shoeSize", "value": "9"}]}]}, "segmentFilters[0]"),
])
def test_conversation_details_are_validated_like_the_platform(body: dict[str, Any], field: str) -> None:
    with SimulatorThread(default_org()) as sim, httpx.Client(base_url=sim.url) as http:
        r = http.post(DETAILS_PATH, headers=token(http), json=body)
    assert r.status_code == 400 and r.json()["code"] == "invalid.value" and field in r.json()["message"], r.text


def test_conversation_details_need_their_permission() -> None:
    with SimulatorThread(default_org()) as sim, httpx.Client(base_url=sim.url) as http:
        r = http.post(DETAILS_PATH, headers=token(http, VIEWER), json={"interval": _interval(0, 1)})
    assert r.status_code == 403


def test_details_show_each_conversation_with_its_division_tag_and_customer_beside_production() -> None:
    with SimulatorThread(default_org()) as sim, httpx.Client(base_url=sim.url) as http:
        auth = token(http)
        began = time.time()
        posted = http.post(f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message",
                           params={"prefetchConversationId": "true"}, headers=auth, json=_message("cust-a1", "hi"))
        conv_id = posted.json()["conversationId"]
        http.put(f"/api/v2/conversations/{conv_id}/tags", headers=auth, json={"externalTag": "run-a1"})
        window = _interval(began - 3600, time.time() + 1)
        everything = http.post(DETAILS_PATH, headers=auth, json={"interval": window, "paging": {"pageSize": 100}})
        recent = http.post(DETAILS_PATH, headers=auth, json={"interval": _interval(began - 1, time.time() + 1)})
        tagged = http.post(DETAILS_PATH, headers=auth, json={"interval": window, "conversationFilters": [
            {"type": "and", "predicates": [{"dimension": "externalTag", "value": "run-a1"}]}]})
    convs = everything.json()["conversations"]
    ours = [c for c in recent.json()["conversations"] if c["conversationId"] == conv_id]
    assert len(ours) == 1 and ours[0]["divisionIds"] == [TEST_DIVISION] and ours[0]["externalTag"] == "run-a1"
    customer = next(p for p in ours[0]["participants"] if p["purpose"] == "customer")
    assert customer["sessions"][0]["addressFrom"] == "cust-a1" and customer["sessions"][0]["messageType"] == "open"
    # The production messaging flow ran ~1800 conversations an hour on its own, in its own division.
    assert everything.json()["totalHits"] > 1000 and {d for c in convs for d in c["divisionIds"]} - {TEST_DIVISION}
    assert [c["conversationId"] for c in tagged.json()["conversations"]] == [conv_id]


def _client(conversations: list[dict[str, Any]]) -> FlowClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        page = orjson.loads(request.content)["paging"]["pageNumber"]
        chunk = conversations[(page - 1) * 100:page * 100]
        return httpx.Response(200, json={"conversations": chunk, "totalHits": len(conversations)})

    transport = httpx.MockTransport(answer)
    tokens = TokenManager(login_url="http://login.test", client_id="c", client_secret="s", transport=transport,
                          spawn=lambda fn: fn())
    return FlowClient(api_url="http://api.test", tokens=tokens, transport=transport, sleep=lambda _s: None)


def _conv(address: str, division: str, tag: str | None = None) -> dict[str, Any]:
    return {"conversationId": address, "divisionIds": [division], **({"externalTag": tag} if tag else {}),
            "participants": [{"purpose": "customer", "sessions": [{"addressFrom": address}]}]}


def test_the_proof_reads_every_page_and_names_a_conversation_outside_the_test_division() -> None:
    ours = [_conv(f"flowsim-r1-{i}", "test", "flowsim-r1") for i in range(150)]
    leaked = _conv("flowsim-r1-150", "prod")
    others = [_conv(f"customer-{i}", "prod") for i in range(60)] + [_conv("flowsim-r2-1", "test", "flowsim-r2")]
    c = check_conversation_analytics(_client(ours + [leaked] + others), first_s=0, last_s=10, run_prefix="flowsim-r1-",
                                     run_tag="flowsim-r1", test_divisions={"test"}, ledger_conversations=151,
                                     wait_s=0)
    assert (c.run_in_test_divisions, c.run_elsewhere, c.run_tagged) == (150, {"prod": 1}, 150)
    assert c.other_divisions == {"prod": 60, "test": 1} and not c.separated and not c.caught_up and not c.partial
