"""The reference: Locust's own users posting the same launch body to the same target, back to back.

Selected with ``locust -f bench/_reference_users.py HttpLaunch`` or ``FastHttpLaunch``.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, HttpUser, constant, constant_throughput, task

BODY = os.environ["BENCH_BODY"].encode()
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
