"""Inbound message flows behind Open Messaging integrations (API reference §11): the conversations a customer's
messages open, what the flow answers, and the delivery of each answer to the integration's webhook
(``sim.platform.webhooks``). The endpoints are ``sim.platform.messaging_api``.

A customer's first message (a ``from.id`` with no open conversation on that integration) opens a conversation:
the flow greets, calls its digital bot flow (the bot's welcome and question: the first message itself starts the
conversation and is not read as an answer [U]), and each later message is a bot turn. When the bot exits the flow
transfers the conversation to its queue (what it says: ``transfer_text``) — or, when the bot finished the job
(``TriggeredByFlow``) or disconnected, the conversation ends. A flow error (``error_rate``) answers the error text
and ends it. A message after the end opens a new conversation. Replies to one message are delivered in order,
each after ``reply_latency_ms``; the integration's delivery faults drop, duplicate, reorder (within the replies
to one message) or delay them.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from sim.platform.analytics import iso_ms
from sim.platform.bots import Dialog
from sim.platform.contacts import Contacts
from sim.platform.executions import draw_latency_s
from sim.platform.messaging_model import DeliveryFaults
from sim.platform.org import Flow, Latency, Org
from sim.platform.webhooks import SIGNATURE_HEADER, Delivery, post_with_retries, sign

__all__ = ["Integration", "Conversation", "Messaging", "ENDINGS"]

ENDINGS = ("transferred", "disconnected", "error")
"""How a conversation ends (``Conversation.state`` past ``open``)."""


@dataclass
class Integration:
    id: str
    name: str
    flow_id: str | None
    """The inbound message flow its recipient routes to (None: not routed; messages are accepted, nothing answers)."""
    webhook_url: str
    secret: str
    headers: dict[str, str]
    faults: DeliveryFaults
    retry_interval_s: float
    created_at: float
    modified_at: float

    def to_json(self) -> dict[str, Any]:
        """OpenIntegration (the secret is never echoed [U])."""
        return {"id": self.id, "name": self.name, "outboundNotificationWebhookUrl": self.webhook_url,
                "webhookHeaders": dict(self.headers), "status": "Active", "createStatus": "Completed",
                "recipient": {"id": self.id} if self.flow_id else None,
                "dateCreated": iso_ms(self.created_at), "dateModified": iso_ms(self.modified_at),
                "selfUri": f"/api/v2/conversations/messaging/integrations/open/{self.id}"}


@dataclass
class Conversation:
    id: str
    integration: Integration
    flow: Flow
    from_id: str
    id_type: str
    nickname: str
    started_at: float
    dialog: Dialog | None
    state: str = "open"
    """open, then one of :data:`ENDINGS`."""
    external_contact_id: str | None = None
    """The contact identity resolution made (or found) for ``from.id`` (``sim.platform.contacts``)."""
    external_tag: str | None = None
    ended_at: float | None = None
    inbound: list[dict[str, Any]] = field(default_factory=list)
    outbound: list[dict[str, Any]] = field(default_factory=list)
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "integrationId": self.integration.id, "flowId": self.flow.id,
                "divisionId": self.flow.division_id, "from": {"id": self.from_id, "idType": self.id_type,
                                                              "nickname": self.nickname},
                "state": self.state, "queue": self.flow.messaging.queue if self.flow.messaging else None,
                "externalContactId": self.external_contact_id, "externalTag": self.external_tag,
                "dateStarted": iso_ms(self.started_at),
                "dateEnded": iso_ms(self.ended_at) if self.ended_at is not None else None,
                "inbound": self.inbound, "outbound": self.outbound,
                "deliveries": [d.record() for d in self.deliveries.values()]}


class Messaging:
    """Integrations, conversations (oldest evicted beyond the org's store limit) and their deliveries."""

    def __init__(self, org: Org, *, clock: Callable[[], float], rng: random.Random, new_id: Callable[[], str],
                 contacts: Contacts) -> None:
        self.org, self.clock, self.rng, self.new_id, self.contacts = org, clock, rng, new_id, contacts
        now = clock()
        self.integrations = {d.id: Integration(id=d.id, name=d.name, flow_id=d.flow_id, webhook_url=d.webhook_url,
                                               secret=d.secret, headers=dict(d.webhook_headers), faults=d.faults,
                                               retry_interval_s=d.retry_interval_s, created_at=now, modified_at=now)
                             for d in org.integrations}
        self.open: dict[tuple[str, str], Conversation] = {}
        self.conversations: OrderedDict[str, Conversation] = OrderedDict()
        self.max = org.settings.store_max_executions
        self.tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def receive(self, integration: Integration, flow: Flow, channel: dict[str, Any], text: str) -> Conversation:
        """A customer's message: its conversation (opened if need be), its replies decided and their delivery
        under way. The message must have been validated (``sim.platform.messaging_api``)."""
        sender = channel["from"]
        key = (integration.id, sender["id"])
        conv = self.open.get(key)
        now = self.clock()
        replies: list[str]
        if conv is None:
            bot = self.org.flow(flow.messaging.bot_flow_id) if flow.messaging and flow.messaging.bot_flow_id else None
            conv = Conversation(id=self.new_id(), integration=integration, flow=flow, from_id=sender["id"],
                                id_type=sender["idType"], nickname=str(sender.get("nickname") or ""), started_at=now,
                                dialog=Dialog(bot.bot) if bot is not None and bot.bot is not None else None)
            conv.external_contact_id = self.contacts.resolve(conv.id_type, conv.from_id, conv.nickname,
                                                             new_id=self.new_id(), now=now)
            self.open[key] = conv
            self._store(conv)
            replies = self._start(conv)
        else:
            replies = self._answer(conv, text)
        conv.inbound.append({"text": text, "at": iso_ms(now), "messageId": channel.get("messageId")})
        if conv.state != "open":
            conv.ended_at = now
            self.open.pop(key, None)
        outs = [self._outbound(conv, r) for r in replies]
        if outs:
            task = asyncio.get_running_loop().create_task(self._deliver_in_order(conv, outs))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return conv

    def _start(self, conv: Conversation) -> list[str]:
        m = conv.flow.messaging
        assert m is not None
        if self.rng.random() < m.error_rate:
            conv.state = "error"
            return [m.error_text]
        replies = [m.greeting] if m.greeting else []
        if conv.dialog is None:
            conv.state = "transferred"
            return replies + [m.transfer_text]
        first = conv.dialog.turn("NoOp", None)
        replies += first["prompts"]
        if first["nextActionType"] == "NoOp":  # a welcome: then the bot's question
            replies += conv.dialog.turn("NoOp", None)["prompts"]
        return replies

    def _answer(self, conv: Conversation, text: str) -> list[str]:
        m = conv.flow.messaging
        assert m is not None and conv.dialog is not None
        answer = conv.dialog.turn("UserInput", text)
        replies = list(answer["prompts"])
        ended = conv.dialog.ended
        if ended is not None:
            if ended["type"] == "Exit" and ended["reason"] != "TriggeredByFlow":
                conv.state = "transferred"  # the bot handed over: the flow transfers to its queue
                replies.append(m.transfer_text)
            else:
                conv.state = "disconnected"
        return replies

    def _store(self, conv: Conversation) -> None:
        self.conversations[conv.id] = conv
        while len(self.conversations) > self.max:
            _, old = self.conversations.popitem(last=False)
            self.open.pop((old.integration.id, old.from_id), None)

    def _outbound(self, conv: Conversation, text: str) -> dict[str, Any]:
        """The normalised outbound message the webhook receives."""
        integ = conv.integration
        msg_id = self.new_id()
        msg: dict[str, Any] = {"id": msg_id, "channel": {
            "id": integ.id, "platform": "Open", "type": "Private", "messageId": self.new_id(),
            "to": {"id": conv.from_id, "idType": conv.id_type}, "from": {"id": integ.id, "nickname": integ.name},
            "time": iso_ms(self.clock())}, "type": "Text", "text": text, "direction": "Outbound",
            "originatingEntity": "Bot", "conversationId": conv.id}
        conv.outbound.append({"id": msg_id, "text": text, "originatingEntity": "Bot"})
        conv.deliveries[msg_id] = Delivery(msg_id)
        return msg

    async def _deliver_in_order(self, conv: Conversation, outs: list[dict[str, Any]]) -> None:
        m = conv.flow.messaging
        assert m is not None
        lat = Latency(median_ms=m.reply_latency_ms[0], p99_ms=m.reply_latency_ms[1])
        async with conv.lock:
            held: dict[str, Any] | None = None
            for msg in outs:
                await asyncio.sleep(draw_latency_s(lat, self.rng))
                msg["channel"]["time"] = iso_ms(self.clock())  # made now: a reply overtaken later is seen as such
                f = conv.integration.faults
                if held is None and msg is not outs[-1] and self.rng.random() < f.reorder_rate:
                    held = msg  # delivered after the next one
                    continue
                await self._deliver(conv, msg)
                if held is not None:
                    await self._deliver(conv, held)
                    held = None
            if held is not None:
                await self._deliver(conv, held)

    async def _deliver(self, conv: Conversation, msg: dict[str, Any]) -> None:
        integ, delivery = conv.integration, conv.deliveries[msg["id"]]
        f = integ.faults
        if not integ.webhook_url:
            delivery.outcome = "no_webhook"
            return
        if self.rng.random() < f.drop_rate:
            delivery.outcome = "dropped"
            return
        body = orjson.dumps(msg)
        headers = {**integ.headers, "Content-Type": "application/json", SIGNATURE_HEADER: sign(integ.secret, body)}
        duplicate = self.rng.random() < f.duplicate_rate
        if self.rng.random() < f.late_rate:  # held back: later replies overtake it
            task = asyncio.get_running_loop().create_task(self._post(integ.webhook_url, body, headers, delivery,
                                                                     integ.retry_interval_s, duplicate,
                                                                     delay_s=f.late_ms / 1000))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        await self._post(integ.webhook_url, body, headers, delivery, integ.retry_interval_s, duplicate)

    async def _post(self, url: str, body: bytes, headers: dict[str, str], delivery: Delivery, retry_s: float,
                    duplicate: bool, delay_s: float = 0.0) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        if self._client is None:
            self._client = httpx.AsyncClient()
        ok = await post_with_retries(self._client, url, body, headers, delivery, clock=self.clock,
                                     retry_interval_s=retry_s)
        if ok and duplicate:  # the platform believed the delivery failed and sent it again
            await post_with_retries(self._client, url, body, headers, delivery, clock=self.clock,
                                    retry_interval_s=retry_s)
        delivery.outcome = "delivered" if ok else "failed"
