"""The simulator's Open Messaging (API reference §11), seen from outside: a customer's messages open a conversation
with the built-in inbound message flow, its replies reach a webhook receiver that is not flowsim's (stdlib HTTP
server, stdlib HMAC) signed, in order and routed by ``channel.to.id``; the platform's validation, permissions and
retries; the integration's delivery faults; the vendor SDK sends a message unmodified."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sim.platform.messaging_model import DeliveryFaults
from sim.platform.org import Org, default_org
from sim.platform.server import SimulatorThread
from tests.conftest import LOAD_CLIENT, token

INTEGRATION = "0be11a5e-0000-4000-8000-000000000030"
SECRET = "flowsim-local-webhook-secret"
VIEWER = ("flowsim-viewer-client", "flowsim-viewer-secret")


class Receiver:
    """A webhook receiver written as a customer would: it checks each signature itself, records what came, and
    answers 503 to the first ``fail_first`` deliveries."""

    def __init__(self, fail_first: int = 0) -> None:
        self.got: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.fail_first = fail_first
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                want = "sha256=" + base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()).decode()
                with outer.lock:
                    if not hmac.compare_digest(self.headers.get("X-Hub-Signature-256", ""), want):
                        outer.bad_signatures += 1
                        status = 401
                    elif outer.fail_first > 0:
                        outer.fail_first -= 1
                        status = 503
                    else:
                        outer.got.append(json.loads(raw))
                        status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        for _ in range(int(timeout_s / 0.05)):  # bounded polling, not a timing assert
            with self.lock:
                if len(self.got) >= n:
                    return list(self.got)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.got)} of {n} deliveries arrived: {self.got}")

    def close(self) -> None:
        self.server.shutdown()


def _org(faults: DeliveryFaults = DeliveryFaults(), retry_s: float = 0.05) -> Org:
    """The built-in org with quick replies (5-20 ms) and quick retries, and the given delivery faults."""
    org = default_org()
    flows = tuple(dataclasses.replace(f, messaging=dataclasses.replace(f.messaging, reply_latency_ms=(5.0, 20.0)))
                  if f.messaging is not None else f for f in org.flows)
    integrations = tuple(dataclasses.replace(i, faults=faults, retry_interval_s=retry_s) for i in org.integrations)
    return dataclasses.replace(org, flows=flows, integrations=integrations)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _message(from_id: str, text: str, **channel: Any) -> dict[str, Any]:
    return {"channel": {"from": {"id": from_id, "idType": "Opaque", "nickname": "Ada"},
                        "time": "2026-11-30T10:00:00.000Z", **channel}, "text": text}


def _point(http: httpx.Client, auth: dict[str, str], url: str) -> None:
    r = http.patch(f"/api/v2/conversations/messaging/integrations/open/{INTEGRATION}", headers=auth,
                   json={"outboundNotificationWebhookUrl": url})
    assert r.status_code == 200 and r.json()["outboundNotificationWebhookUrl"] == url, r.text


def test_a_customer_is_greeted_by_the_flow_served_by_the_bot_and_transferred(receiver: Receiver) -> None:
    with SimulatorThread(_org()) as sim, httpx.Client(base_url=sim.url) as http:
        auth = token(http)
        _point(http, auth, receiver.url)
        path = f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message"
        first = http.post(path, headers=auth, params={"prefetchConversationId": "true"}, json=_message("cust-1", "hi"))
        assert first.status_code == 200, first.text
        conv_id = first.json()["conversationId"]
        assert first.json()["channel"]["from"]["id"] == "cust-1" and first.json()["text"] == "hi"
        hello = receiver.wait_for(3)
        assert [m["text"] for m in hello] == ["Thanks for messaging the flowsim test line.",
                                             "Hi, I'm the flowsim test bot.", "What can I help you with today?"]
        for m in hello:
            assert m["channel"]["to"] == {"id": "cust-1", "idType": "Opaque"} and m["direction"] == "Outbound"
            assert m["originatingEntity"] == "Bot" and m["conversationId"] == conv_id and m["type"] == "Text"
            assert m["channel"]["platform"] == "Open" and m["channel"]["from"]["id"] == INTEGRATION
        # another customer at the same time: a conversation of its own
        other = http.post(path, headers=auth, params={"prefetchConversationId": "true"}, json=_message("cust-2", "hi"))
        assert other.json()["conversationId"] != conv_id
        same = http.post(path, headers=auth, params={"prefetchConversationId": "true"},
                         json=_message("cust-1", "talk to an agent"))
        assert same.json()["conversationId"] == conv_id  # the same from.id joins its open conversation
        got = receiver.wait_for(8)
        mine = [m["text"] for m in got if m["channel"]["to"]["id"] == "cust-1"]
        assert mine[3:] == ["Let me connect you with an agent.", "Connecting you to an agent."]
        assert receiver.bad_signatures == 0 and len({m["id"] for m in got}) == len(got)
        for _ in range(200):  # bounded: the simulator records an outcome once the receiver's answer is read
            (conv,) = http.get("/_sim/messaging", params={"from_prefix": "cust-1"}).json()["entities"]
            if all(d["outcome"] != "pending" for d in conv["deliveries"]):
                break
            time.sleep(0.05)
        assert conv["state"] == "transferred" and conv["queue"] == "flowsim Test Queue"
        assert all(d["outcome"] == "delivered" and d["copies"] == 1 for d in conv["deliveries"])
        again = http.post(path, headers=auth, params={"prefetchConversationId": "true"}, json=_message("cust-1", "hi"))
        assert again.json()["conversationId"] != conv_id  # after the transfer: a new conversation


@pytest.mark.parametrize(("change", "status", "field"), [
    (lambda b: b["channel"]["from"].pop("id"), 400, "channel.from.id"),
    (lambda b: b["channel"]["from"].update(idType="Fax"), 400, "channel.from.idType"),
    (lambda b: b["channel"].pop("time"), 400, "channel.time"),
    (lambda b: b["channel"].update(time="yesterday"), 400, "channel.time"),
    (lambda b: b.pop("channel"), 400, "channel"),
    (lambda b: b.update(text="", content=None), 400, "text"),
    (lambda b: b.update(routingData={"queueId": "x"}), 400, "routingData"),  # an invented wrapper: refused
])
def test_an_inbound_message_is_validated_like_the_platform(change: Any, status: int, field: str) -> None:
    with SimulatorThread(_org()) as sim, httpx.Client(base_url=sim.url) as http:
        body = _message("cust-v", "hi")
        change(body)
        r = http.post(f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message", headers=token(http),
                      json=body)
    assert r.status_code == status and r.json()["details"][0]["fieldName"] == field, r.text


def test_permissions_unknown_integrations_and_webhook_urls_are_refused() -> None:
    with SimulatorThread(_org()) as sim, httpx.Client(base_url=sim.url) as http:
        auth = token(http)
        path = f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message"
        assert http.post(path, headers=token(http, VIEWER), json=_message("c", "hi")).status_code == 403
        unknown = http.post("/api/v2/conversations/messages/00000000-0000-4000-8000-000000000000/inbound/open/message",
                            headers=auth, json=_message("c", "hi"))
        assert unknown.status_code == 404 and unknown.json()["code"] == "not.found"
        opened = "/api/v2/conversations/messaging/integrations/open"
        far = http.post(opened, headers=auth, json={"name": "x", "outboundNotificationWebhookUrl": "https://example.com/h",
                                                     "outboundNotificationWebhookSignatureSecretToken": "s" * 16})
        assert far.status_code == 400 and "loopback" in far.json()["message"]
        short = http.post(opened, headers=auth, json={"name": "x", "outboundNotificationWebhookUrl": "http://127.0.0.1:9/",
                                                       "outboundNotificationWebhookSignatureSecretToken": "s" * 15})
        assert short.status_code == 400 and "longer than 15" in short.json()["message"]
        made = http.post(opened, headers=auth, json={"name": "x", "outboundNotificationWebhookUrl": "http://127.0.0.1:9/",
                                                      "outboundNotificationWebhookSignatureSecretToken": "s" * 16})
        assert made.status_code == 200 and made.json()["createStatus"] == "Initiated"
        assert "outboundNotificationWebhookSignatureSecretToken" not in made.json()
        listed = http.get(opened, headers=auth).json()["entities"]
        assert {i["id"] for i in listed} == {INTEGRATION, made.json()["id"]}
        assert http.delete(f"{opened}/{made.json()['id']}", headers=auth).status_code == 204
        assert http.get(f"{opened}/{made.json()['id']}", headers=auth).status_code == 404


def test_a_receiver_answering_503_gets_the_same_message_again() -> None:
    """The platform retries on 5xx (up to 5 times): the receiver sees the message once it answers 200, with its id
    unchanged; the delivery lists every attempt."""
    receiver = Receiver(fail_first=2)
    try:
        with SimulatorThread(_org()) as sim, httpx.Client(base_url=sim.url) as http:
            auth = token(http)
            _point(http, auth, receiver.url)
            http.post(f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message", headers=auth,
                      json=_message("cust-r", "hi"))
            got = receiver.wait_for(3)
            conv = http.get("/_sim/messaging", params={"from_prefix": "cust-r"}).json()["entities"][0]
        first = conv["deliveries"][0]
        assert [a["status"] for a in first["attempts"]] == [503, 503, 200] and first["outcome"] == "delivered"
        assert got[0]["id"] == first["messageId"] and [m["text"] for m in got][0].startswith("Thanks")
    finally:
        receiver.close()


@pytest.mark.parametrize(("faults", "copies", "outcome"), [
    (DeliveryFaults(duplicate_rate=1.0), 2, "delivered"),
    (DeliveryFaults(drop_rate=1.0), 0, "dropped"),
])
def test_delivery_faults_duplicate_and_drop(faults: DeliveryFaults, copies: int, outcome: str,
                                            receiver: Receiver) -> None:
    with SimulatorThread(_org(faults)) as sim, httpx.Client(base_url=sim.url) as http:
        auth = token(http)
        _point(http, auth, receiver.url)
        http.post(f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message", headers=auth,
                  json=_message("cust-f", "hi"))
        for _ in range(200):  # bounded: until every delivery has an outcome
            conv = http.get("/_sim/messaging", params={"from_prefix": "cust-f"}).json()["entities"][0]
            if all(d["outcome"] != "pending" for d in conv["deliveries"]):
                break
            time.sleep(0.05)
    assert [(d["outcome"], d["copies"]) for d in conv["deliveries"]] == [(outcome, copies)] * 3
    assert len(receiver.got) == 3 * copies and len({m["id"] for m in receiver.got}) == (3 if copies else 0)


def test_the_vendor_sdk_sends_an_inbound_open_message_unmodified(receiver: Receiver) -> None:
    import PureCloudPlatformClientV2 as gc  # noqa: N813

    with SimulatorThread(_org()) as sim:
        gc.configuration.host = sim.url
        api = gc.ConversationsApi(gc.api_client.ApiClient().get_client_credentials_token(*LOAD_CLIENT))
        patch = gc.OpenIntegrationUpdateRequest()
        patch.outbound_notification_webhook_url = receiver.url
        api.patch_conversations_messaging_integrations_open_integration_id(INTEGRATION, body=patch)
        msg = gc.OpenInboundNormalizedMessage()
        msg.channel = gc.OpenInboundMessageMessagingChannel()
        msg.channel.pcFrom = gc.OpenMessagingFromRecipient()
        msg.channel.pcFrom.id, msg.channel.pcFrom.id_type = "sdk-customer-1", "Opaque"
        msg.channel.time = "2026-11-30T10:00:00.000Z"
        msg.text = "hi"
        echo = api.post_conversations_message_inbound_open_message(INTEGRATION, msg, prefetch_conversation_id=True)
        assert echo.conversation_id and echo.channel.pcFrom.id == "sdk-customer-1"
        got = receiver.wait_for(3)
    assert {m["channel"]["to"]["id"] for m in got} == {"sdk-customer-1"}


def test_an_org_file_cannot_point_a_webhook_off_this_machine() -> None:
    """The simulator delivers to loopback only, whichever way the URL is given (the API refuses it too)."""
    import tomllib
    from pathlib import Path

    from sim.errors import ConfigError
    from sim.platform.org_file import parse_org

    data = tomllib.loads((Path(__file__).parent.parent / "sim" / "platform" / "default_org.toml").read_text())
    data["open_messaging"][0]["webhook_url"] = "https://hooks.example.com/flowsim"
    with pytest.raises(ConfigError, match="not a loopback address"):
        parse_org(data, "org.toml")
    data["open_messaging"][0]["webhook_url"] = "http://127.0.0.1:8099/hook"
    assert parse_org(data, "org.toml").integrations[0].webhook_url == "http://127.0.0.1:8099/hook"


def test_identity_resolution_leaves_contacts_a_cleanup_can_find_and_delete_and_tags_stick(receiver: Receiver) -> None:
    """A customer's first message makes an external contact from its from.id (one per identity, reused by its
    next conversation); the contacts API finds it by the id's prefix and deletes it; a tag put on the
    conversation is on it."""
    with SimulatorThread(_org()) as sim, httpx.Client(base_url=sim.url) as http:
        auth = token(http)
        _point(http, auth, receiver.url)
        path = f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message"
        conv_ids = [http.post(path, headers=auth, params={"prefetchConversationId": "true"},
                              json=_message(who, text)).json()["conversationId"]
                    for who, text in (("flowsim-run1-0", "hi"), ("flowsim-run1-1", "hi"),
                                      ("flowsim-run1-0", "talk to an agent"), ("flowsim-run1-0", "hi again"))]
        assert conv_ids[0] == conv_ids[2] != conv_ids[3]  # the hand-over ended it: a new conversation
        found = http.get("/api/v2/externalcontacts/contacts", headers=auth, params={"q": "flowsim-run1-"}).json()
        assert found["total"] == 2  # one per identity, not per conversation
        assert {c["identifiers"][0]["value"] for c in found["entities"]} == {"flowsim-run1-0", "flowsim-run1-1"}
        assert {c["identifiers"][0]["type"] for c in found["entities"]} == {"ExternalId"}
        tagged = http.put(f"/api/v2/conversations/{conv_ids[0]}/tags", headers=auth, json={"externalTag": "run1"})
        assert tagged.status_code == 202
        assert http.put("/api/v2/conversations/nope/tags", headers=auth, json={"externalTag": "x"}).status_code == 404
        assert http.put(f"/api/v2/conversations/{conv_ids[0]}/tags", headers=token(http, VIEWER),
                        json={"externalTag": "x"}).status_code == 403
        convs = http.get("/_sim/messaging", params={"from_prefix": "flowsim-run1-0"}).json()["entities"]
        assert [c["externalTag"] for c in convs] == ["run1", None]
        contact_of = {c["externalContactId"] for c in convs}
        assert len(contact_of) == 1 and contact_of <= {c["id"] for c in found["entities"]}
        for c in found["entities"]:
            assert http.delete(f"/api/v2/externalcontacts/contacts/{c['id']}", headers=auth).status_code == 200
        left = http.get("/api/v2/externalcontacts/contacts", headers=auth, params={"q": "flowsim-run1-"}).json()
        assert left["total"] == 0
        assert http.delete(f"/api/v2/externalcontacts/contacts/{c['id']}", headers=auth).status_code == 404
