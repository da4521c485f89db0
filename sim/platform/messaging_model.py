"""What the org file says about inbound message flows and Open Messaging integrations (API reference §11), and
its parser for those tables.

An inbound message flow (``type = "inboundshortmessage"``) has a ``[flows.messaging]`` table: a greeting, the
digital bot flow it calls, what it says when the bot hands over (the conversation then waits in a queue: the
flow has ended), its error path and how long each reply takes. An integration (``[[open_messaging]]``) routes
customers' messages to one such flow and posts the replies to its webhook, signed with its secret; its
``[open_messaging.faults]`` disturb those deliveries as a real network and platform can.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim._toml import TableReader
from sim.platform.webhooks import webhook_url_problem

__all__ = ["MessagingFlow", "DeliveryFaults", "OpenIntegrationDef", "parse_messaging", "parse_integration",
           "MIN_SECRET_LENGTH"]

MIN_SECRET_LENGTH = 16
"""The webhook signature secret must be longer than 15 characters (the platform's rule)."""


@dataclass(frozen=True, kw_only=True)
class MessagingFlow:
    greeting: str = "Thanks for your message."
    bot_flow_id: str | None = None
    """The digital bot flow the flow calls after its greeting (None: no bot; the flow transfers at once)."""
    transfer_text: str = "Connecting you to an agent."
    queue: str = "Support"
    """Where a hand-over (the bot's exit) transfers the conversation; the flow ends there."""
    error_text: str = "Sorry, something went wrong. Please try again later."
    error_rate: float = 0.0
    """Share of conversations whose flow fails at its start: the error text, then the conversation ends."""
    reply_latency_ms: tuple[float, float] = (150.0, 900.0)
    """Each reply's delay after the message that caused it (log-normal: median, p99)."""


@dataclass(frozen=True, kw_only=True)
class DeliveryFaults:
    drop_rate: float = 0.0
    """Share of replies never delivered."""
    duplicate_rate: float = 0.0
    """Share of replies delivered twice (the platform retries when it believes a delivery failed)."""
    reorder_rate: float = 0.0
    """Share of replies delivered after the reply that follows them."""
    late_rate: float = 0.0
    late_ms: float = 5000.0
    """A share ``late_rate`` of replies is held ``late_ms`` longer."""


@dataclass(frozen=True, kw_only=True)
class OpenIntegrationDef:
    id: str
    name: str
    flow_id: str
    """The inbound message flow the integration's recipient routes to."""
    webhook_url: str = ""
    """Where replies are posted (``outboundNotificationWebhookUrl``; PATCH changes it)."""
    secret: str
    """``outboundNotificationWebhookSignatureSecretToken``: the key of each delivery's HMAC-SHA256 signature."""
    webhook_headers: tuple[tuple[str, str], ...] = ()
    faults: DeliveryFaults = DeliveryFaults()
    retry_interval_s: float = 5.0
    """Between delivery attempts (the platform's ~5 s; tests shorten it)."""


def _rate(r: TableReader, key: str) -> float:
    return float(r.get(key, float, 0.0, minimum=0.0, maximum=1.0))


def parse_messaging(r: TableReader) -> MessagingFlow:
    r.check_keys({"greeting", "bot", "transfer_text", "queue", "error_text", "error_rate", "reply_latency_ms"})
    lat = r.sub("reply_latency_ms")
    latency = (150.0, 900.0)
    if lat is not None:
        lat.check_keys({"median", "p99"})
        median = lat.get("median", float, minimum=0.0)
        latency = (median, lat.get("p99", float, minimum=median))
    return MessagingFlow(
        greeting=r.get("greeting", str, MessagingFlow.greeting), bot_flow_id=r.get("bot", str, None),
        transfer_text=r.get("transfer_text", str, MessagingFlow.transfer_text),
        queue=r.get("queue", str, MessagingFlow.queue), error_text=r.get("error_text", str, MessagingFlow.error_text),
        error_rate=_rate(r, "error_rate"), reply_latency_ms=latency)


def parse_integration(r: TableReader, message_flows: dict[str, str]) -> OpenIntegrationDef:
    """``message_flows``: id → name of the org's inbound message flows (an integration routes to one)."""
    r.check_keys({"id", "name", "flow", "webhook_url", "secret", "webhook_headers", "faults", "retry_interval_s"})
    flow = r.get("flow", str)
    by_name = {name: fid for fid, name in message_flows.items()}
    flow_id = by_name.get(flow, flow)
    if flow_id not in message_flows:
        raise r.fail("flow", f"{flow!r} is no inbound message flow of this org (type = \"inboundshortmessage\" "
                             f"with [flows.messaging]); known: {', '.join(sorted(message_flows.values())) or 'none'}")
    secret = r.get("secret", str)
    if len(secret) < MIN_SECRET_LENGTH:
        raise r.fail("secret", f"must be longer than {MIN_SECRET_LENGTH - 1} characters")
    url = r.get("webhook_url", str, "")
    why = webhook_url_problem(url) if url else None
    if why:
        raise r.fail("webhook_url", why)
    headers_r = r.sub("webhook_headers")
    headers = tuple((k, headers_r.get(k, str)) for k in headers_r.table) if headers_r is not None else ()
    f = r.sub("faults")
    faults = DeliveryFaults()
    if f is not None:
        f.check_keys({"drop_rate", "duplicate_rate", "reorder_rate", "late_rate", "late_ms"})
        faults = DeliveryFaults(drop_rate=_rate(f, "drop_rate"), duplicate_rate=_rate(f, "duplicate_rate"),
                                reorder_rate=_rate(f, "reorder_rate"), late_rate=_rate(f, "late_rate"),
                                late_ms=f.get("late_ms", float, 5000.0, minimum=0.0, maximum=600_000.0))
    return OpenIntegrationDef(id=r.get("id", str), name=r.get("name", str), flow_id=flow_id, webhook_url=url,
                              secret=secret, webhook_headers=headers, faults=faults,
                              retry_interval_s=r.get("retry_interval_s", float, 5.0, minimum=0.01, maximum=60.0))
