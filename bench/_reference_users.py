"""The reference: Locust's own users posting the same launch body to the same target, back to back.

Selected with ``locust -f bench/_reference_users.py HttpLaunch`` or ``FastHttpLaunch``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import time
import uuid
from typing import Any

import gevent
import gevent.queue
from locust import FastHttpUser, HttpUser, constant, constant_throughput, events, task

BODY = os.environ.get("BENCH_BODY", "{}").encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ.get("BENCH_TOKEN", "bench-token")}


class HttpLaunch(HttpUser):
    wait_time = constant(0)

    @task
    def launch(self) -> None:
        self.client.post("/api/v2/flows/executions", data=BODY, headers=HEADERS, name="launch")


class FastHttpLaunch(FastHttpUser):
    wait_time = constant(0)

    @task
    def launch(self) -> None:
        self.client.post("/api/v2/flows/executions", data=BODY, headers=HEADERS, name="launch")


class PacedFastHttpLaunch(FastHttpUser):
    """Locust's own fastest user at a fixed rate: BENCH_RATE launches/s over all users (memory bench)."""

    wait_time = constant_throughput(float(os.environ.get("BENCH_RATE_PER_USER", "1")))

    @task
    def launch(self) -> None:
        self.client.post("/api/v2/flows/executions", data=BODY, headers=HEADERS, name="launch")


class _Conversation:
    """The same conversation flowsim's bench scenario scripts, as a Locust user would code it by hand:
    start a session, NoOp while NoOp, say the next line on WaitForInput, stop at Exit/Disconnect."""

    LINES = ("where is my order 42", "my name is Ada Example", "yes")

    def converse(self, post) -> None:  # type: ignore[no-untyped-def]
        r = post("/api/v2/textbots/botflows/sessions", {"flow": {"id": os.environ["BENCH_BOT"]},
                                                       "externalSessionId": "bench", "channel": {"name": "Messaging"}},
                 "bot session start")
        sid, prev, lines, event, text = r["id"], None, list(self.LINES), "NoOp", None
        while True:
            body: dict = {"inputEventType": event}
            if prev:
                body["previousTurn"] = {"id": prev}
            if text is not None:
                body["inputEventUserInput"] = {"mode": "Text", "alternatives": [{"transcript": {"text": text}}]}
            a = post(f"/api/v2/textbots/botflows/sessions/{sid}/turns", body, "bot turn")
            prev, nat = a["id"], a["nextActionType"]
            if nat in ("Exit", "Disconnect") or (nat == "WaitForInput" and not lines):
                return
            event, text = ("NoOp", None) if nat == "NoOp" else ("UserInput", lines.pop(0))


class HttpConversation(HttpUser, _Conversation):
    wait_time = constant(0)

    @task
    def talk(self) -> None:
        self.converse(lambda path, body, name: self.client.post(path, json=body, headers=HEADERS, name=name).json())


class FastHttpConversation(FastHttpUser, _Conversation):
    wait_time = constant(0)

    @task
    def talk(self) -> None:
        self.converse(lambda path, body, name: self.client.post(path, json=body, headers=HEADERS, name=name).json())


# -- Open Messaging, by hand: a webhook receiver in this process and a user that posts and waits ---------------
_REPLIES: dict[str, Any] = {}
"""customer id → gevent queue of replies, filled by the receiver below."""


def _webhook(environ: dict[str, Any], start: Any) -> list[bytes]:
    """What a careful hand-written receiver does: check the signature, route by channel.to.id, answer 200."""
    raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    want = "sha256=" + base64.b64encode(hmac.new(os.environ["BENCH_SECRET"].encode(), raw, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(environ.get("HTTP_X_HUB_SIGNATURE_256", ""), want):
        start("401 Unauthorized", [("Content-Length", "0")])
        return [b""]
    msg = json.loads(raw)
    queue = _REPLIES.get(msg["channel"]["to"]["id"])
    if queue is not None:
        queue.put(time.perf_counter())
    start("200 OK", [("Content-Length", "0")])
    return [b""]


@events.init.add_listener
def _receiver(environment: Any, **_kw: Any) -> None:
    port = os.environ.get("BENCH_WEBHOOK_PORT")
    if port:
        from gevent.pywsgi import WSGIServer

        WSGIServer(("127.0.0.1", int(port)), _webhook, log=None, error_log=None).start()


class FastHttpMessaging(FastHttpUser):
    """The same exchange flowsim's messaging bench scripts: "hi" (three replies), then asking for an agent (two
    replies); each reply's latency reported as a request named "reply". BENCH_RATE_PER_USER: conversations/s each."""

    wait_time = constant_throughput(float(os.environ.get("BENCH_RATE_PER_USER", "1000")))
    EXCHANGE = (("hi", 3), ("I want to talk to an agent", 2))

    def on_start(self) -> None:
        """Spread the users' first conversations over one interval, so the offered rate holds from the start."""
        gevent.sleep(random.uniform(0, 1 / float(os.environ.get("BENCH_RATE_PER_USER", "1000"))))

    @task
    def talk(self) -> None:

        cid = f"bench-{uuid.uuid4()}"
        queue: gevent.queue.Queue[float] = gevent.queue.Queue()
        _REPLIES[cid] = queue
        path = f"/api/v2/conversations/messages/{os.environ['BENCH_INTEGRATION']}/inbound/open/message"
        try:
            for text, replies in self.EXCHANGE:
                body = {"channel": {"from": {"id": cid, "idType": "Opaque", "nickname": "Ada"},
                                    "time": "2026-11-30T10:00:00.000Z"}, "text": text}
                sent = time.perf_counter()
                self.client.post(path, json=body, headers=HEADERS, name="open message")
                for _ in range(replies):
                    try:
                        at = queue.get(timeout=10)
                    except gevent.queue.Empty:
                        events.request.fire(request_type="WEBHOOK", name="reply", response_time=10_000,
                                            response_length=0, exception=TimeoutError("no reply"), context={})
                        return
                    events.request.fire(request_type="WEBHOOK", name="reply", response_time=(at - sent) * 1000,
                                        response_length=0, exception=None, context={})
        finally:
            _REPLIES.pop(cid, None)
