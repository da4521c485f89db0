"""Outbound delivery to an Open Messaging integration's webhook, as the platform does it (API reference §11):
each outbound message POSTed as JSON, signed ``X-Hub-Signature-256: sha256=<base64 HMAC-SHA256(secret, raw
body)>``, answered within 10 s or retried — up to 5 retries about 5 s apart on a timeout, a refused connection,
429 or 5xx — so a receiver can see a message more than once. Webhook URLs are loopback only: the simulator never
posts anywhere else."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["sign", "Attempt", "Delivery", "post_with_retries", "webhook_url_problem", "SIGNATURE_HEADER",
           "ANSWER_DEADLINE_S", "MAX_RETRIES"]

SIGNATURE_HEADER = "X-Hub-Signature-256"
ANSWER_DEADLINE_S = 10.0
MAX_RETRIES = 5


def sign(secret: str, body: bytes) -> str:
    """The header value: ``sha256=`` and the base64 of HMAC-SHA256 over the raw body."""
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode("ascii")


def webhook_url_problem(url: str) -> str | None:
    """Why the simulator will not post to ``url`` (None: it will): http(s) to a loopback address only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL"
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return None if loopback else (f"{host} is not a loopback address: the simulator delivers only to receivers on "
                                  "this machine (a real org delivers to HTTPS on port 443)")


@dataclass
class Attempt:
    at: float
    status: int
    """The receiver's HTTP status; 0: no answer (timeout, refused, reset)."""
    error: str = ""


@dataclass
class Delivery:
    """One outbound message's delivery: every attempt, and how it ended."""

    message_id: str
    attempts: list[Attempt] = field(default_factory=list)
    outcome: str = "pending"
    """pending, delivered, failed (gave up), dropped (a fault: never sent), no_webhook."""
    copies: int = 0
    """Times the receiver accepted it (2 or more: a duplicate delivery)."""

    def record(self) -> dict[str, Any]:
        return {"messageId": self.message_id, "outcome": self.outcome, "copies": self.copies,
                "attempts": [{"at": a.at, "status": a.status, **({"error": a.error} if a.error else {})}
                             for a in self.attempts]}


async def post_with_retries(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
                            delivery: Delivery, *, clock: Callable[[], float], retry_interval_s: float) -> bool:
    """POST until a 2xx (True), a 4xx other than 429 (False: the receiver refused it), or the retries run out."""
    for attempt in range(MAX_RETRIES + 1):
        if attempt:
            await asyncio.sleep(retry_interval_s)
        try:
            r = await client.post(url, content=body, headers=headers, timeout=ANSWER_DEADLINE_S)
            delivery.attempts.append(Attempt(clock(), r.status_code))
            if 200 <= r.status_code < 300:
                delivery.copies += 1
                return True
            if r.status_code != 429 and r.status_code < 500:
                return False
        except httpx.HTTPError as exc:
            delivery.attempts.append(Attempt(clock(), 0, type(exc).__name__))
    return False
