"""The receiving side of an Open Messaging run (API reference §11), without a server: what flowsim's webhook
receiver does with each delivery the platform POSTs. It verifies the signature over the raw bytes, refuses what
is not a well-formed outbound message, de-duplicates on the message ``id`` (the platform retries, so duplicates
happen), and routes each reply by ``channel.to.id`` to the simulated customer waiting for it — or counts it as
arriving after that customer gave up, or for nobody this receiver knows. Every outcome is counted; nothing
raises. The HTTP server around it answers at once with :meth:`Inbox.deliver`'s status, never waiting on a
customer.

Pure and clock-injected, like ``sim.load.tokens``: a test drives it with bytes and a fake clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Reply", "Inbox", "MAX_BODY_BYTES", "SIGNATURE_HEADER", "OUTCOMES"]

MAX_BODY_BYTES = 256_000
"""A delivery larger than this is refused (413) before its signature is computed."""
SIGNATURE_HEADER = "x-hub-signature-256"
OUTCOMES = ("routed", "duplicate", "after_give_up", "unknown_recipient", "bad_signature", "malformed", "too_large")
"""What :meth:`Inbox.deliver` can make of a delivery (each one counted)."""


@dataclass(frozen=True)
class Reply:
    message_id: str
    to_id: str
    text: str
    received_at: float
    originating_entity: str
    """Bot or Human (or "" when the platform did not say)."""
    conversation_id: str
    quick_replies: tuple[str, ...]
    type: str
    time: str = ""
    """``channel.time``: when the platform made the message (ISO-8601), so a customer can tell the order."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.message_id, "to": self.to_id, "text": self.text, "at": round(self.received_at, 6),
                "from": self.originating_entity, "conversation_id": self.conversation_id,
                "quick_replies": list(self.quick_replies), "type": self.type, "time": self.time}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reply:
        return cls(message_id=d["id"], to_id=d["to"], text=d["text"], received_at=d["at"], originating_entity=d["from"],
                   conversation_id=d["conversation_id"], quick_replies=tuple(d["quick_replies"]), type=d["type"],
                   time=d["time"])


class Inbox:
    """Deliveries for the customers of one integration (one signature secret), routed by ``channel.to.id``."""

    def __init__(self, secret: str, *, clock: Callable[[], float], seen_max: int = 200_000,
                 gone_max: int = 200_000, on_routed: Callable[[str], None] = lambda _to: None) -> None:
        """``on_routed(customer_id)``: called after a reply was kept for that customer."""
        self._key = secret.encode()
        self.clock = clock
        self.on_routed = on_routed
        self._accept: list[str] = []
        self.counts: Counter[str] = Counter()
        self._waiting: dict[str, deque[Reply]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_max = seen_max
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._gone_max = gone_max

    # -- customers ----------------------------------------------------------------------------------
    def accept(self, prefix: str) -> None:
        """Keep replies for any customer whose id starts with ``prefix`` (a run's ``<tag>-<run id>-``), even before
        :meth:`expect`: a customer run by another process reads them over the network, and a first reply can
        come before it asks. The last 16 prefixes are kept."""
        if prefix not in self._accept:
            self._accept = (self._accept + [prefix])[-16:]

    def expect(self, customer_id: str) -> None:
        """A simulated customer with this ``from.id`` is in conversation: its replies are kept for it."""
        self._waiting.setdefault(customer_id, deque())
        self._gone.pop(customer_id, None)

    def take(self, customer_id: str) -> list[Reply]:
        """The replies that arrived for ``customer_id`` since the last take, in arrival order."""
        queue = self._waiting.get(customer_id)
        if not queue:
            return []
        out = list(queue)
        queue.clear()
        return out

    def forget(self, customer_id: str) -> list[Reply]:
        """The customer is done (its conversation ended, or it gave up): what was still unread, and from now on
        its replies count as ``after_give_up``."""
        left = list(self._waiting.pop(customer_id, ()))
        self._gone[customer_id] = None
        while len(self._gone) > self._gone_max:
            self._gone.popitem(last=False)
        return left

    # -- deliveries ---------------------------------------------------------------------------------
    def too_large(self, length: int) -> bool:
        """Before a server reads a body of ``length`` bytes: True (counted ``too_large``, answer 413) when it is
        over the limit, so it is refused unread."""
        if length <= MAX_BODY_BYTES:
            return False
        self.counts["too_large"] += 1
        return True

    def deliver(self, raw: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        """One POST from the platform: the HTTP status to answer and the outcome (one of :data:`OUTCOMES`).
        ``headers``: names in any case."""
        outcome, status = self._judge(raw, {k.lower(): v for k, v in headers.items()})
        self.counts[outcome] += 1
        return status, outcome

    def _judge(self, raw: bytes, headers: dict[str, str]) -> tuple[str, int]:
        if len(raw) > MAX_BODY_BYTES:  # a caller that read it anyway (a server checks too_large first)
            return "too_large", 413
        want = "sha256=" + base64.b64encode(hmac.new(self._key, raw, hashlib.sha256).digest()).decode("ascii")
        if not hmac.compare_digest(headers.get(SIGNATURE_HEADER, "").encode(), want.encode()):
            return "bad_signature", 401
        reply = self._parse(raw)
        if reply is None:
            return "malformed", 400
        if reply.message_id in self._seen:
            return "duplicate", 200  # answered 200: the platform must stop retrying it
        self._seen[reply.message_id] = None
        while len(self._seen) > self._seen_max:
            self._seen.popitem(last=False)
        queue = self._waiting.get(reply.to_id)
        if queue is None and reply.to_id not in self._gone and reply.to_id.startswith(tuple(self._accept)):
            queue = self._waiting[reply.to_id] = deque()
        if queue is not None:
            queue.append(reply)
            self.on_routed(reply.to_id)
            return "routed", 200
        if reply.to_id in self._gone:
            return "after_give_up", 200
        return "unknown_recipient", 404

    def _parse(self, raw: bytes) -> Reply | None:
        """An outbound normalised message, or None for anything else."""
        try:
            msg: Any = orjson.loads(raw)
            channel = msg["channel"]
            to_id, message_id = channel["to"]["id"], msg["id"]
            if msg.get("direction", "Outbound") != "Outbound" or not isinstance(to_id, str) \
                    or not isinstance(message_id, str) or not to_id or not message_id:
                return None
            quick = tuple(str(c.get("quickReply", {}).get("text", "")) for c in msg.get("content") or []
                          if isinstance(c, dict) and c.get("contentType") == "QuickReply")
            return Reply(message_id=message_id, to_id=to_id, text=str(msg.get("text") or ""),
                         received_at=self.clock(), originating_entity=str(msg.get("originatingEntity") or ""),
                         conversation_id=str(msg.get("conversationId") or ""), quick_replies=quick,
                         type=str(msg.get("type") or ""), time=str(channel.get("time") or ""))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return None
