"""OAuth client-credentials tokens for the load side: a pool per process and client, fetched before the first
request is due, refreshed in the background before expiry and replaced after a 401. No request ever waits on a
lock held across a network call. No secret or token ever reaches a repr, a log line or an exception."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from sim.errors import FlowsimError, PlatformError, TransportError
from sim.load.network import describe, ssl_context

__all__ = ["TokenManager", "Reporter", "Spawn", "no_report"]

Spawn = Callable[[Callable[[], None]], None]
"""Runs a function in the background (a thread; under Locust's gevent, a greenlet). Tests run it at once."""


class Reporter(Protocol):
    def __call__(self, *, request_type: str, name: str, response_time: float, response_length: int,
                 exception: BaseException | None, context: dict[str, Any]) -> None: ...


def no_report(**_kw: Any) -> None:
    return None


def _thread(fn: Callable[[], None]) -> None:
    threading.Thread(target=fn, daemon=True, name="flowsim-token").start()


_TRANSIENT = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float
    """From here on a replacement is fetched in the background; the token is still handed out."""
    expires_at: float
    generation: int
    """Fetch order (newest wins when a request must pick a replacement)."""


class TokenManager:
    """Client-credentials tokens for one OAuth client, shared by all users of a process.

    :meth:`prefetch` fills the pool (``pool_size`` tokens, at most ``parallel`` requests at once) before the
    first launch is due. A token is refreshed in the background ``refresh_margin_s`` before expiry (or a quarter
    of its lifetime early, for short-lived tokens) and handed out until its replacement arrives, so a request
    never waits for a token while a valid one exists. Tokens go out round-robin (the platform limits requests
    per token); a 429 on the per-token limit may :meth:`grow` the pool up to ``max_pool_size``. A 401 retires
    the whole pool and :meth:`replace` hands the retry a fresh token. A token request that fails on the way
    (transport error, 429, 5xx) is retried ``fetch_retries`` times with backoff; bad credentials are not.

    The lock guards the pool's bookkeeping only: every HTTP request happens outside it.
    """

    def __init__(self, *, login_url: str, client_id: str, client_secret: str, pool_size: int = 1,
                 refresh_margin_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 timeout_s: float = 30.0, report: Reporter = no_report,
                 transport: httpx.BaseTransport | None = None, ca_bundle: str | None = None,
                 max_pool_size: int | None = None, spawn: Spawn = _thread, parallel: int = 16,
                 fetch_retries: int = 3, sleep: Callable[[float], None] = time.sleep) -> None:
        self._login_url = login_url
        self._ca_bundle = ca_bundle
        self._client_id = client_id
        self._secret = client_secret
        self._margin = refresh_margin_s
        self._clock = clock
        self._report = report
        self._spawn = spawn
        self._parallel = max(1, parallel)
        self._fetch_retries = fetch_retries
        self._sleep = sleep
        self._timeout_s = timeout_s
        self._lock = threading.Lock()  # gevent-patched into a cooperative lock under Locust
        self._changed = threading.Condition(self._lock)
        self._slots: list[_Token | None] = [None] * pool_size
        self._fetching: set[int] = set()
        """Slots whose (re)fetch is under way."""
        self._queued: list[int] = []
        """Slots waiting for one of the ``parallel`` fetch places."""
        self._running = 0
        self._error: FlowsimError | None = None
        """Why the last fetch failed (raised to a request that finds no token at all)."""
        self.max_pool_size = max_pool_size or max(2 * pool_size, pool_size + 4)
        """How far :meth:`grow` may take the pool when the per-token limit is hit anyway."""
        self._next = 0
        self._generation = 0
        self._http = httpx.Client(timeout=timeout_s, verify=ssl_context(ca_bundle), transport=transport)
        self.fetched = 0

    def __repr__(self) -> str:  # never show the secret or tokens
        return f"TokenManager(client_id={self._client_id!r}, pool_size={len(self._slots)})"

    # -- what requests call ---------------------------------------------------------------------------------
    def prefetch(self, *, wait_s: float | None = None) -> None:
        """Fetch every empty slot now, ``parallel`` at a time. ``wait_s``: block until the pool is full (or that
        long) and raise the last error if no token at all could be had."""
        with self._lock:
            start = self._schedule([i for i, t in enumerate(self._slots) if t is None])
        self._start(start)
        if wait_s is None:
            return
        deadline = time.monotonic() + wait_s
        with self._lock:
            while self._fetching and time.monotonic() < deadline:
                self._changed.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            if not any(t is not None for t in self._slots) and self._error is not None:
                raise self._error

    def token(self) -> str:
        """A valid token, round-robin. Waits only when the pool holds no valid token at all (before the
        prefetch ended, or after a 401 retired it); raises the fetch's error if none can be had."""
        with self._lock:
            value, start = self._pick()
            if value is None:
                self._error = None
                start += self._schedule([i for i, t in enumerate(self._slots) if t is None or self._expired(t)])
        self._start(start)
        if value is not None:
            return value
        wait_s = self._timeout_s * (self._fetch_retries + 1)
        deadline = time.monotonic() + wait_s
        with self._lock:
            while True:
                value, start = self._pick()
                if value is not None:
                    break
                if not self._fetching:
                    raise self._error or TransportError(f"no token from {self._login_url}/oauth/token")
                if time.monotonic() >= deadline:
                    raise TransportError(f"no token from {self._login_url}/oauth/token within {wait_s:.0f} s")
                self._changed.wait(0.5)
        self._start(start)
        return value

    def replace(self, failed: str) -> str:
        """``failed`` got a 401: retire it and every older token; return a fresh token for the retry (the one
        another request already fetched in its place, if any)."""
        start: list[int] = []
        with self._lock:
            if any(t is not None and t.value == failed for t in self._slots):
                # Retire the whole pool: a revocation takes every token issued before it, and which ones those
                # are cannot be told apart. Requests already in flight on them fail once and land here.
                self._slots = [None] * len(self._slots)
                start = self._schedule(list(range(len(self._slots))))
        self._start(start)
        return self.token()

    def grow(self) -> str | None:
        """The per-token limit was hit: add a token to the pool and return it (None: the pool is at its bound, or
        no token came). A request then retries at once on it instead of holding its slot for a Retry-After."""
        with self._lock:
            if len(self._slots) >= self.max_pool_size:
                return None
            self._slots.append(None)
            i = len(self._slots) - 1
            self._fetching.add(i)
        tok = self._fetch_into(i)
        return tok.value if tok is not None else None

    @property
    def pool_size(self) -> int:
        return len(self._slots)

    @property
    def ready(self) -> int:
        """Valid tokens in the pool now."""
        with self._lock:
            return sum(1 for t in self._slots if t is not None and not self._expired(t))

    # -- bookkeeping: the lock is held in the _-methods below unless they say otherwise --------------------
    def _expired(self, t: _Token) -> bool:
        return self._clock() >= t.expires_at

    def _pick(self) -> tuple[str | None, list[int]]:
        """The next valid token, and the fetches to start (its refresh, if due)."""
        n = len(self._slots)
        now = self._clock()
        for _ in range(n):
            i = self._next
            self._next = (i + 1) % n
            t = self._slots[i]
            if t is None or now >= t.expires_at:
                continue
            # Still valid past its refresh time: handed out while its replacement is fetched.
            return t.value, (self._schedule([i]) if now >= t.refresh_at else [])
        return None, []

    def _schedule(self, slots: list[int]) -> list[int]:
        """Queue these slots' fetches; the ones that may start now (``parallel`` at most), for :meth:`_start`."""
        for i in slots:
            if i not in self._fetching:
                self._fetching.add(i)
                self._queued.append(i)
        start = []
        while self._queued and self._running < self._parallel:
            start.append(self._queued.pop(0))
            self._running += 1
        return start

    def _start(self, slots: list[int]) -> None:
        """Without the lock: run these fetches in the background."""
        for i in slots:
            self._spawn(lambda i=i: self._background(i))  # type: ignore[misc]

    def _background(self, i: int) -> None:
        """Without the lock: one queued fetch, then the next queued one takes its place."""
        try:
            self._fetch_into(i)
        finally:
            with self._lock:
                self._running -= 1
                start = self._schedule([])
            self._start(start)

    def _fetch_into(self, i: int) -> _Token | None:
        """Without the lock: fetch slot ``i``'s token and store it; None (and ``_error`` set) on failure."""
        tok: _Token | None = None
        err: FlowsimError | None = None
        try:
            tok = self._fetch()
        except FlowsimError as exc:
            err = exc
        with self._lock:
            self._fetching.discard(i)
            if tok is not None and i < len(self._slots):
                self._slots[i] = tok
            if err is not None:
                self._error = err
            self._changed.notify_all()
        return tok

    # -- the token request --------------------------------------------------------------------------------
    def _fetch(self) -> _Token:
        """One token, retrying transport errors, 429s and 5xx answers with backoff; bad credentials at once."""
        attempt = 0
        while True:
            try:
                return self._fetch_once()
            except (TransportError, PlatformError) as exc:
                transient = isinstance(exc, TransportError) or exc.status in _TRANSIENT
                if not transient or attempt >= self._fetch_retries:
                    raise
                attempt += 1
                self._sleep(min(4.0, 0.5 * 2 ** (attempt - 1)))

    def _fetch_once(self) -> _Token:
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
        now = self._clock()
        with self._lock:
            self.fetched += 1
            self._generation += 1
            generation = self._generation
        return _Token(value=value, generation=generation, expires_at=now + lifetime,
                      refresh_at=now + lifetime - min(self._margin, lifetime / 4))

    def close(self) -> None:
        self._http.close()
