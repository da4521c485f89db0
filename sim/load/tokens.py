"""OAuth client-credentials tokens for the load side: a pool per process and client, refreshed before expiry
and replaced after a 401. No secret or token ever reaches a repr, a log line or an exception."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from sim.errors import PlatformError, TransportError
from sim.load.network import describe, ssl_context

__all__ = ["TokenManager", "Reporter"]


class Reporter(Protocol):
    def __call__(self, *, request_type: str, name: str, response_time: float, response_length: int,
                 exception: BaseException | None, context: dict[str, Any]) -> None: ...


def _no_report(**_kw: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float
    generation: int
    """Fetch order (newest wins when a request must pick a replacement)."""


class TokenManager:
    """Client-credentials tokens for one OAuth client, shared by all users of a process.

    Fetches on first use and refreshes before expiry: ``refresh_margin_s`` early, or a quarter of the
    lifetime for tokens that live less than four margins. Holds ``pool_size`` tokens and hands them out
    round-robin (the platform limits requests per token); a 429 on the per-token limit may :meth:`grow` it,
    up to ``max_pool_size``. A 401 (revoked or expired early) retires the
    whole pool (refetched as used) and :meth:`replace` hands the retry a fresh token: a revocation costs
    each in-flight request at most one retry.
    """

    def __init__(self, *, login_url: str, client_id: str, client_secret: str, pool_size: int = 1,
                 refresh_margin_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 timeout_s: float = 30.0, report: Reporter = _no_report,
                 transport: httpx.BaseTransport | None = None, ca_bundle: str | None = None,
                 max_pool_size: int | None = None) -> None:
        self._login_url = login_url
        self._ca_bundle = ca_bundle
        self._client_id = client_id
        self._secret = client_secret
        self._margin = refresh_margin_s
        self._clock = clock
        self._report = report
        self._lock = threading.Lock()  # gevent-patched into a cooperative lock under Locust
        self._slots: list[_Token | None] = [None] * pool_size
        self.max_pool_size = max_pool_size or max(2 * pool_size, pool_size + 4)
        """How far :meth:`grow` may take the pool when the per-token limit is hit anyway."""
        self._next = 0
        self._generation = 0
        self._http = httpx.Client(timeout=timeout_s, verify=ssl_context(ca_bundle), transport=transport)
        self.fetched = 0

    def __repr__(self) -> str:  # never show the secret or tokens
        return f"TokenManager(client_id={self._client_id!r}, pool_size={len(self._slots)})"

    def token(self) -> str:
        with self._lock:
            i = self._next
            self._next = (i + 1) % len(self._slots)
            cur = self._slots[i]
            if cur is None or self._clock() >= cur.refresh_at:
                cur = self._slots[i] = self._fetch()
            return cur.value

    def replace(self, failed: str) -> str:
        """``failed`` got a 401: retire it and every older token; return a fresh token for the retry (the one
        another request already fetched in its place, if any)."""
        with self._lock:
            at = next((i for i, t in enumerate(self._slots) if t is not None and t.value == failed), None)
            if at is None:  # already replaced by a concurrent request: use the newest token there is
                newest = max((t for t in self._slots if t is not None), key=lambda t: t.generation, default=None)
                if newest is not None:
                    return newest.value
                at = 0
            # Retire the whole pool: a revocation takes every token issued before it, and which ones those
            # are cannot be told apart. Requests already in flight on them fail once and land above.
            self._slots = [None] * len(self._slots)
            fresh = self._slots[at] = self._fetch()
            return fresh.value

    def grow(self) -> str | None:
        """The per-token limit was hit: add a token to the pool and return it (None: the pool is at its bound).
        A request then retries at once on it instead of holding its slot for a whole Retry-After."""
        with self._lock:
            if len(self._slots) >= self.max_pool_size:
                return None
            fresh = self._fetch()
            self._slots.append(fresh)
            return fresh.value

    @property
    def pool_size(self) -> int:
        return len(self._slots)

    def _fetch(self) -> _Token:
        start = time.perf_counter()
        exc: BaseException | None = None
        try:
            r = self._http.post(f"{self._login_url}/oauth/token", auth=(self._client_id, self._secret),
                                data={"grant_type": "client_credentials"})
        except httpx.HTTPError as e:
            self._report(request_type="POST", name="oauth token", response_time=(time.perf_counter() - start) * 1000,
                         response_length=0, exception=e, context={})
            why = describe(e, url=self._login_url, ca_bundle=self._ca_bundle)
            raise TransportError(f"token request to {self._login_url}/oauth/token failed: {why}") from None
        if r.status_code != 200:
            exc = PlatformError(status=r.status_code, code="oauth.failed",
                                message=f"client {self._client_id!r} could not get a token (HTTP {r.status_code})")
        self._report(request_type="POST", name="oauth token", response_time=(time.perf_counter() - start) * 1000,
                     response_length=len(r.content), exception=exc, context={})
        if exc is not None:
            raise exc
        try:
            body = r.json()
            value, lifetime = str(body["access_token"]), float(body.get("expires_in", 86400))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise PlatformError(status=r.status_code, code="oauth.bad_answer",
                                message=f"{self._login_url}/oauth/token answered "
                                        f"{r.headers.get('content-type', 'no content type')} without an access_token: "
                                        "is the target a Genesys Cloud region (or flowsim serve)?") from None
        self.fetched += 1
        self._generation += 1
        return _Token(value=value, generation=self._generation,
                      refresh_at=self._clock() + lifetime - min(self._margin, lifetime / 4))

    def close(self) -> None:
        self._http.close()
