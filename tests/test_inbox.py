"""flowsim's webhook inbox (``sim.load.inbox``), driven with bytes and a fake clock: signatures verified over the
raw body, duplicates answered 200 once and counted, replies routed by channel.to.id, late and unknown
recipients counted, malformed and oversized bodies refused — every outcome a status and a count, never a
traceback. And the simulator's own signed deliveries pass it (two independent HMAC implementations agree)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from sim.load.inbox import MAX_BODY_BYTES, OUTCOMES, Inbox

SECRET = "flowsim-local-webhook-secret"


def _signed(msg: Any, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    sig = "sha256=" + base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()
    return raw, {"X-Hub-Signature-256": sig, "Content-Type": "application/json"}


def _reply(mid: str, to: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"id": mid, "channel": {"platform": "Open", "type": "Private", "to": {"id": to, "idType": "Opaque"},
                                   "from": {"id": "integration"}, "time": "2026-11-30T10:00:00Z"},
            "type": "Text", "text": text, "direction": "Outbound", "originatingEntity": "Bot",
            "conversationId": "c1", **extra}


def test_replies_reach_their_customer_once_in_order() -> None:
    now = [100.0]
    inbox = Inbox(SECRET, clock=lambda: now[0])
    inbox.expect("ada")
    inbox.expect("bob")
    assert inbox.deliver(*_signed(_reply("m1", "ada", "one"))) == (200, "routed")
    now[0] = 101.0
    assert inbox.deliver(*_signed(_reply("m2", "bob", "for bob"))) == (200, "routed")
    assert inbox.deliver(*_signed(_reply("m3", "ada", "two",
                                         content=[{"contentType": "QuickReply", "quickReply": {"text": "Yes"}}])))[0] \
        == 200
    assert inbox.deliver(*_signed(_reply("m1", "ada", "one"))) == (200, "duplicate")  # the platform's retry
    got = inbox.take("ada")
    assert [(r.text, r.received_at, r.quick_replies) for r in got] == [("one", 100.0, ()), ("two", 101.0, ("Yes",))]
    assert inbox.take("ada") == [] and [r.text for r in inbox.take("bob")] == ["for bob"]
    assert inbox.counts == {"routed": 3, "duplicate": 1}


def test_a_reply_after_the_customer_gave_up_and_one_for_nobody_are_counted_apart() -> None:
    inbox = Inbox(SECRET, clock=lambda: 0.0)
    inbox.expect("ada")
    inbox.deliver(*_signed(_reply("m1", "ada")))
    assert [r.message_id for r in inbox.forget("ada")] == ["m1"]  # unread when it gave up
    assert inbox.deliver(*_signed(_reply("m2", "ada"))) == (200, "after_give_up")
    assert inbox.deliver(*_signed(_reply("m3", "stranger"))) == (404, "unknown_recipient")


@pytest.mark.parametrize(("raw", "headers", "expected"), [
    (None, {"X-Hub-Signature-256": "sha256=AAAA"}, (401, "bad_signature")),
    (None, {}, (401, "bad_signature")),
    (b"{not json", "sign", (400, "malformed")),
    (json.dumps({"id": "m", "channel": {}}).encode(), "sign", (400, "malformed")),
    (json.dumps(_reply("m", "ada") | {"direction": "Inbound"}).encode(), "sign", (400, "malformed")),
    (b"x" * (MAX_BODY_BYTES + 1), "sign", (413, "too_large")),
])
def test_what_is_not_a_signed_outbound_message_is_refused_and_counted(raw: bytes | None, headers: Any,
                                                                      expected: tuple[int, str]) -> None:
    inbox = Inbox(SECRET, clock=lambda: 0.0)
    inbox.expect("ada")
    body = raw if raw is not None else json.dumps(_reply("m", "ada")).encode()
    hdrs = _signed(body)[1] if headers == "sign" else headers
    assert inbox.deliver(body, hdrs) == expected
    assert inbox.counts == {expected[1]: 1} and inbox.take("ada") == []
    assert expected[1] in OUTCOMES


def test_a_signature_with_another_secret_is_refused() -> None:
    inbox = Inbox(SECRET, clock=lambda: 0.0)
    inbox.expect("ada")
    assert inbox.deliver(*_signed(_reply("m", "ada"), secret="someone-elses-secret")) == (401, "bad_signature")


def test_the_simulators_signed_deliveries_pass_the_inbox() -> None:
    """The simulator signs with sim.platform.webhooks.sign; the inbox verifies with its own code."""
    from sim.platform.webhooks import sign

    inbox = Inbox(SECRET, clock=lambda: 0.0)
    inbox.expect("ada")
    raw = json.dumps(_reply("m9", "ada")).encode()
    assert inbox.deliver(raw, {"x-hub-signature-256": sign(SECRET, raw)}) == (200, "routed")


def test_memory_stays_bounded_over_a_long_run() -> None:
    inbox = Inbox(SECRET, clock=lambda: 0.0, seen_max=100, gone_max=10)
    for i in range(1000):
        inbox.expect(f"c{i}")
        inbox.deliver(*_signed(_reply(f"m{i}", f"c{i}")))
        inbox.forget(f"c{i}")
    assert len(inbox._seen) == 100 and len(inbox._gone) == 10 and not inbox._waiting


class _ReceiverThread:
    """flowsim's receiver on its own gevent hub in a thread (as it will run beside a Locust process's users)."""

    def __init__(self, inbox: Inbox) -> None:
        import threading

        self.inbox, self.ready = inbox, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        import gevent

        from sim.run.receiver import Receiver

        self.receiver = Receiver(self.inbox).start()
        self.stopper = gevent.get_hub().loop.async_()
        self.stopper.start(self.receiver.stop)
        self.ready.set()
        self.receiver.server.serve_forever()

    def close(self) -> None:
        self.stopper.send()
        self.thread.join(10)


def test_the_simulator_delivers_to_flowsims_receiver_and_each_customer_gets_its_replies() -> None:
    """End to end over HTTP: the simulator's signed deliveries reach the receiver, which routes them to the
    customer waiting for them; a forged, an oversized and a malformed POST get a 4xx and a count."""
    import time

    import httpx

    from sim.platform.server import SimulatorThread
    from tests.conftest import token
    from tests.test_messaging_simulator import INTEGRATION, _message, _org, _point

    inbox = Inbox(SECRET, clock=time.time)
    inbox.expect("cust-r1")
    box = _ReceiverThread(inbox)
    try:
        with SimulatorThread(_org()) as sim, httpx.Client(base_url=sim.url) as http:
            auth = token(http)
            _point(http, auth, box.receiver.url)
            http.post(f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message", headers=auth,
                      json=_message("cust-r1", "hi"))
            got: list[Any] = []
            for _ in range(200):  # bounded: until the three replies are in
                got += inbox.take("cust-r1")
                if len(got) >= 3:
                    break
                time.sleep(0.05)
            url = box.receiver.url
            forged = httpx.post(url, content=b'{"id":"x"}', headers={"X-Hub-Signature-256": "sha256=AAAA"})
            huge = httpx.post(url, content=b"x" * (MAX_BODY_BYTES + 1), headers=_signed(b"x")[1])
            malformed = httpx.post(url, content=b"{", headers=_signed(b"{")[1])
            wrong_path = httpx.post(url + "x", content=b"{}")
    finally:
        box.close()
    assert [r.text for r in got] == ["Thanks for messaging the flowsim test line.", "Hi, I'm the flowsim test bot.",
                                     "What can I help you with today?"]
    assert (forged.status_code, huge.status_code, malformed.status_code, wrong_path.status_code) == (401, 413, 400, 404)
    assert inbox.counts == {"routed": 3, "bad_signature": 1, "too_large": 1, "malformed": 1}
