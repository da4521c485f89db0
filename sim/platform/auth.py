"""Simulated OAuth: client-credentials tokens, their expiry, and per-token rate limits."""

from __future__ import annotations

import base64
import binascii
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sim.platform.org import OAuthClient, Org

__all__ = ["Token", "TokenStore", "RateLimiter", "RateDecision", "parse_basic_auth"]


@dataclass(slots=True)
class Token:
    client: OAuthClient
    issued_at: float
    expires_at: float
    """When the token stops working; earlier than advertised when early expiry is injected."""


class TokenStore:
    """Issues opaque bearer tokens and answers who holds one. Expired tokens are purged lazily."""

    def __init__(self, org: Org, *, clock: Callable[[], float], rng: random.Random) -> None:
        self._org = org
        self._clock = clock
        self._rng = rng
        self._tokens: dict[str, Token] = {}
        self._next_purge = 0.0

    def issue(self, client: OAuthClient) -> tuple[str, int]:
        """A new token for ``client`` and its advertised lifetime in seconds."""
        now = self._clock()
        self._purge(now)
        lifetime = client.token_lifetime_s
        expires_at = now + lifetime
        if self._org.faults.early_expiry_rate and self._rng.random() < self._org.faults.early_expiry_rate:
            expires_at = now + self._rng.uniform(0.05, 0.95) * lifetime
        token = secrets.token_urlsafe(32)
        self._tokens[token] = Token(client=client, issued_at=now, expires_at=expires_at)
        return token, lifetime

    def lookup(self, token: str) -> Token | None:
        """The live token, or None when unknown or expired."""
        t = self._tokens.get(token)
        if t is None:
            return None
        if t.expires_at <= self._clock():
            del self._tokens[token]
            return None
        return t

    def expire(self, client_id: str | None = None) -> int:
        """Expire every token (of one client); returns how many (admin / tests)."""
        doomed = [k for k, t in self._tokens.items() if client_id is None or t.client.id == client_id]
        for k in doomed:
            del self._tokens[k]
        return len(doomed)

    def _purge(self, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + 60
        for k in [k for k, t in self._tokens.items() if t.expires_at <= now]:
            del self._tokens[k]


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """``(client_id, secret)`` from an ``Authorization: Basic`` header, or None."""
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


@dataclass(slots=True, frozen=True)
class RateDecision:
    allowed: bool
    count: int
    limit: int
    reset_s: int
    """Whole seconds until the window resets (the Retry-After value when not allowed)."""


class RateLimiter:
    """Fixed-window request limit per token, like the platform's per-token limit."""

    def __init__(self, *, limit: int, window_s: int, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[str, list[float]] = {}  # token -> [window_start, count]

    def hit(self, key: str) -> RateDecision:
        now = self._clock()
        w = self._windows.get(key)
        if w is None or now - w[0] >= self.window_s:
            if len(self._windows) > 10_000:
                cutoff = now - self.window_s
                self._windows = {k: v for k, v in self._windows.items() if v[0] > cutoff}
            w = [now, 0]
            self._windows[key] = w
        w[1] += 1
        count = int(w[1])
        reset_s = max(1, int(w[0] + self.window_s - now + 0.999))
        return RateDecision(allowed=count <= self.limit, count=count, limit=self.limit, reset_s=reset_s)
