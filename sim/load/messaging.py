"""One simulated customer messaging an inbound message flow through Open Messaging (API reference §11): it posts
its scripted messages to the integration and reads the flow's replies from a :class:`Mailbox` (the webhook
receiver's, ``sim.run.replies``). Never raises for what the platform answers or fails to answer.

A message is answered when at least one reply came and then none for ``settle_s``; none within
``reply_timeout_s`` ends the conversation (``no_reply``). Every reply the customer received is kept (id, text,
time, sender), in order of arrival, so the ledger can account for each delivery; one whose platform time is
earlier than a reply already read arrived out of order.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from sim.load.breaks import broken
from sim.load.captures import apply_captures
from sim.load.utterances import pick_line
from sim.load.client import Attempt, FlowClient
from sim.load.conversation import render
from sim.load.identity import Identity
from sim.load.inbox import Reply
from sim.load.messaging_script import MessageSpec, MessagingSpec

__all__ = ["Mailbox", "Chat", "chat", "message_body", "inbound_path", "customer_id", "TAGS_PATH"]

TAGS_PATH = "/api/v2/conversations/{id}/tags"


class Mailbox(Protocol):
    def expect(self, customer_id: str) -> None: ...
    def wait(self, customer_id: str, until: float) -> list[Reply]: ...
    def forget(self, customer_id: str) -> list[Reply]: ...
    def close(self) -> None: ...


def inbound_path(integration: str) -> str:
    return f"/api/v2/conversations/messages/{integration}/inbound/open/message"


def customer_id(prefix: str, run_id: str, seq: int) -> str:
    """A customer's ``from.id``: new for every conversation (the same id would join an open one)."""
    return f"{prefix}-{run_id}-{seq}"


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_body(from_id: str, id_type: str, nickname: str, text: str, *, run_id: str, n: int) -> dict[str, Any]:
    """An OpenInboundNormalizedMessage; ``messageId`` is the customer's own (unique per message)."""
    return {"channel": {"from": {"id": from_id, "idType": id_type, "nickname": nickname},
                        "time": _now_iso(), "messageId": f"{from_id}-m{n}"},
            "text": text, "metadata": {"flowsimRun": run_id}}


@dataclass
class Chat:
    """How a conversation went: its first message (an Attempt: the run's unit), every message, every reply."""

    start: Attempt
    from_id: str
    conversation_id: str | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    """Every reply read, in arrival order (``Reply.to_dict``; ``unread``: still waiting when the customer left)."""
    out_of_order: int = 0
    end: str = "not_started"
    """transferred, no_reply, script_ended (see ``sim.load.messaging_script.ENDS``), or send_failed, interrupted,
    max_turns, not_started."""
    end_reason: str | None = None
    failures: list[str] = field(default_factory=list)
    ended_at: float | None = None
    tag_status: int | None = None


@dataclass
class _Reader:
    """Reads one message's replies: the first within the timeout, then until none has come for ``settle_s``."""

    mailbox: Mailbox
    cid: str
    spec: MessagingSpec
    stopping: Callable[[], bool]
    now: Callable[[], float]
    """The clock ``sent`` is on (the client's: a worker's is the master's, ``sim.run.clock``); waiting is local."""
    latest: str = ""

    def read(self, chat: Chat, sent: float) -> list[Reply]:
        got: list[Reply] = []
        deadline = time.time() + max(0.0, sent + self.spec.reply_timeout_s - self.now())
        while True:
            until = min(deadline, time.time() + 0.25) if not got else time.time() + self.spec.settle_s
            new = self.mailbox.wait(self.cid, until)
            for r in new:
                self.keep(chat, r)
            got += new
            if (got and not new) or (not got and (time.time() >= deadline or self.stopping())):
                return got

    def keep(self, chat: Chat, r: Reply, *, unread: bool = False) -> None:
        if r.time and self.latest and r.time < self.latest:
            chat.out_of_order += 1
        self.latest = max(self.latest, r.time)
        chat.replies.append({**r.to_dict(), "unread": True} if unread else r.to_dict())


def _turn(n: int, text: str, a: Attempt, sent: float, got: list[Reply], found: list[dict[str, str]]) -> dict[str, Any]:
    """One message as the ledger keeps it (``step``: its place in the script); what broke in words (``failed``) and
    as data (``broken``: ``sim.load.breaks``)."""
    return {"n": n, "step": n, "text": text, "status": a.status, "attempts": a.attempts,
            "attempt_statuses": list(a.statuses), "latency_ms": round(a.elapsed_ms, 3), "error": a.error,
            "reply_ms": round((got[0].received_at - sent) * 1000, 3) if got else None,
            "each_reply_ms": [round((r.received_at - sent) * 1000, 3) for r in got],
            "replies": [r.message_id for r in got], "failed": [b["text"] for b in found],
            "broken": [{k: b[k] for k in ("check", "expected", "got")} for b in found]}


def _break(conv: Chat, n: int, b: dict[str, str]) -> None:
    """A broken expectation about how the conversation went on, kept on its last message."""
    conv.failures.append(f"message {n}: {b['text']}")
    if conv.turns:
        conv.turns[-1]["failed"].append(b["text"])
        conv.turns[-1]["broken"].append({k: b[k] for k in ("check", "expected", "got")})


def chat(client: FlowClient, mailbox: Mailbox, spec: MessagingSpec, script: tuple[MessageSpec, ...], *,
         identity: Identity, seq: int, run_id: str, prefix: str, flow_id: str, rng: random.Random,
         think_time_s: float, max_turns: int, stopping: Callable[[], bool] = lambda: False,
         sleep: Callable[[float], None] = time.sleep, not_after: float | None = None,
         on_started: Callable[[Chat], None] = lambda _chat: None) -> Chat:
    """One customer's whole conversation. ``not_after``: the first message is not sent later than this (epoch s);
    ``on_started`` is called once it is answered (the chat then grows message by message)."""
    cid = customer_id(prefix, run_id, seq)
    path = inbound_path(spec.integration)
    reader = _Reader(mailbox, cid, spec, stopping, client.wall)
    mailbox.expect(cid)
    conv = Chat(start=Attempt(status=0, body=None, attempts=0, retries=0, first_status=0, elapsed_ms=0.0,
                              unsent="not_started"), from_id=cid)
    try:
        _converse(client, conv, reader, path, spec, script, identity=identity, seq=seq, run_id=run_id, prefix=prefix,
                  flow_id=flow_id, rng=rng, think_time_s=think_time_s, max_turns=max_turns, stopping=stopping,
                  sleep=sleep, not_after=not_after, on_started=on_started)
    finally:
        for r in mailbox.forget(cid):
            reader.keep(conv, r, unread=True)
        conv.ended_at = client.wall()
    return conv


def _converse(client: FlowClient, conv: Chat, reader: _Reader, path: str, spec: MessagingSpec,
              script: tuple[MessageSpec, ...], *, identity: Identity, seq: int, run_id: str, prefix: str,
              flow_id: str, rng: random.Random, think_time_s: float, max_turns: int, stopping: Callable[[], bool],
              sleep: Callable[[float], None], not_after: float | None, on_started: Callable[[Chat], None]) -> None:
    captures: dict[str, str] = {}
    for n, msg in enumerate(script, start=1):
        if n > max_turns:
            conv.end = "max_turns"
            return
        if n > 1 and think_time_s > 0:
            sleep(think_time_s * rng.uniform(0.5, 1.5))
        if n > 1 and stopping():
            conv.end = "interrupted"
            return
        text = render(pick_line(msg.say, msg.pick, rng, seq), identity, seq=seq, run_id=run_id, prefix=prefix, flow_id=flow_id,
                      captures=captures)
        body = orjson.dumps(message_body(conv.from_id, spec.id_type, identity.first_name, text, run_id=run_id, n=n))
        a = client.request("POST", path + ("?prefetchConversationId=true" if n == 1 else ""), "open message",
                           body=body, retry_transport=False, not_after=not_after if n == 1 else None)
        sent = a.sent_at or client.wall()
        if n == 1:
            conv.start = a
            if not a.sent:
                return
            if a.status == 200 and isinstance(a.body, dict) and a.body.get("conversationId"):
                conv.conversation_id = str(a.body["conversationId"])
            on_started(conv)
            if conv.conversation_id and spec.tag_conversations:
                tag = client.request("PUT", TAGS_PATH.format(id=conv.conversation_id), "conversation tag",
                                     body=orjson.dumps({"externalTag": f"{prefix}-{run_id}"}), retry_transport=False)
                conv.tag_status = tag.status
        if a.status != 200:
            conv.turns.append(_turn(n, text, a, sent, [], []))
            conv.end, conv.end_reason = "send_failed", f"HTTP {a.status} {a.error or ''}".strip()
            return
        got = reader.read(conv, sent)
        found = msg.expect.failures([r.text for r in got], [q for r in got for q in r.quick_replies],
                                    [r.originating_entity for r in got]) if got else []
        if got and msg.expect.capture:
            found += apply_captures(msg.expect.capture, " ".join(r.text for r in got), captures)
        if not got and not stopping():
            found = [broken("reply", f"a reply within {spec.reply_timeout_s:g} s", "none",
                            f"no reply within {spec.reply_timeout_s:g} s")]
        conv.turns.append(_turn(n, text, a, sent, got, found))
        conv.failures.extend(f"message {n}: {b['text']}" for b in found)
        if not got:
            conv.end = "interrupted" if stopping() else "no_reply"
            _check_end(conv, msg, n)
            return
        marker = spec.transferred_when
        if marker and any(marker.lower() in r.text.lower() for r in got):
            conv.end = "transferred"
            if n < len(script):
                _break(conv, n, broken("transferred", f"{len(script) - n} more scripted message(s)", "transferred",
                                       f"transferred with {len(script) - n} scripted message(s) unsent"))
            _check_end(conv, msg, n)
            return
        if n == len(script):
            conv.end = "script_ended"
            _check_end(conv, msg, n)


def _check_end(conv: Chat, msg: MessageSpec, n: int) -> None:
    want = msg.expect.ends
    if want is not None and conv.end != want:
        _break(conv, n, broken("ends", want, conv.end, f"the conversation ended {conv.end}, expected {want}"))
