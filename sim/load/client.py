"""The platform client the load side uses: OAuth token manager, launch, status, follow.

Plain httpx (sync); under Locust, gevent makes it cooperative. No locust import here: every HTTP
attempt is reported through a callback, which the Locust user wires to ``events.request``.

Retries: 429 honours Retry-After (jittered, capped); 502/503/504 back off and retry; 401 refreshes
the token and retries once. Each retry is reported as its own request (``<name> (retry)``), so the
first failure stays visible. A launch whose connection broke is **not** retried: the platform has no
idempotency key, and a retry could launch the flow twice.
"""

from __future__ import annotations

import functools
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

from sim.errors import PlatformError, TransportError

__all__ = ["TokenManager", "FlowClient", "Attempt", "LaunchResult", "FollowResult", "Reporter", "shared_ssl_context",
           "RETRY_STATUSES", "TERMINAL"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
TERMINAL = frozenset({"COMPLETED", "FAILED", "ERROR", "TERMINATED"})
@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One SSL context for every client: building one costs ~25 ms of CPU (load-generator baseline)."""
    return ssl.create_default_context()


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
    round-robin (the platform limits requests per token). A 401 (revoked or expired early) retires the
    whole pool (refetched as used) and :meth:`replace` hands the retry a fresh token: a revocation costs
    each in-flight request at most one retry.
    """

    def __init__(self, *, login_url: str, client_id: str, client_secret: str, pool_size: int = 1,
                 refresh_margin_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 timeout_s: float = 30.0, report: Reporter = _no_report,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._login_url = login_url
        self._client_id = client_id
        self._secret = client_secret
        self._margin = refresh_margin_s
        self._clock = clock
        self._report = report
        self._lock = threading.Lock()  # gevent-patched into a cooperative lock under Locust
        self._slots: list[_Token | None] = [None] * pool_size
        self._next = 0
        self._generation = 0
        self._http = httpx.Client(timeout=timeout_s, verify=shared_ssl_context(), transport=transport)
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

    def _fetch(self) -> _Token:
        start = time.perf_counter()
        exc: BaseException | None = None
        try:
            r = self._http.post(f"{self._login_url}/oauth/token", auth=(self._client_id, self._secret),
                                data={"grant_type": "client_credentials"})
        except httpx.HTTPError as e:
            self._report(request_type="POST", name="oauth token", response_time=(time.perf_counter() - start) * 1000,
                         response_length=0, exception=e, context={})
            raise TransportError(f"token request to {self._login_url} failed: {type(e).__name__}") from None
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


@dataclass(slots=True)
class Attempt:
    """The final answer to a request, after retries."""

    status: int
    """HTTP status; 0 when no answer came (transport error)."""
    body: Any
    attempts: int
    retries: int
    first_status: int
    elapsed_ms: float
    error: str | None = None
    """ErrorBody code, or the transport error's type."""
    context_id: str | None = None
    statuses: tuple[int, ...] = ()
    """Every attempt's HTTP status in order (0: no answer)."""


@dataclass(slots=True)
class LaunchResult(Attempt):
    execution_id: str | None = None


@dataclass(frozen=True, slots=True)
class FollowResult:
    """How following an execution ended: its terminal status (or TIMEOUT / UNKNOWN), polls, 429s seen."""

    status: str
    polls: int
    rate_limited: int


@dataclass
class FlowClient:
    """Launch and status calls for one Locust user (one httpx.Client per user: see the baseline)."""

    api_url: str
    tokens: TokenManager
    report: Reporter = _no_report
    max_retries: int = 3
    max_retry_wait_s: float = 30.0
    timeout_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    transport: httpx.BaseTransport | None = None
    """None: httpx's default transport. Inside Locust: sim.load.transport.GeventTransport (faster)."""
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.api_url, timeout=self.timeout_s, verify=shared_ssl_context(),
                                 limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
                                 headers={"Content-Type": "application/json"}, transport=self.transport)

    def close(self) -> None:
        self.http.close()

    def _wait_s(self, response: httpx.Response | None, attempt: int) -> float:
        if response is not None and response.status_code == 429:
            try:
                base = float(response.headers.get("Retry-After", "3"))  # vendor SDKs wait 3 s without it
            except ValueError:
                base = 3.0
        else:
            base = min(8.0, 0.5 * 2 ** attempt)
        return base * self.rng.uniform(1.0, 1.25)  # jitter after the server's minimum, never before

    def request(self, method: str, path: str, name: str, *, body: bytes | None = None,
                retry_transport: bool) -> Attempt:
        first_status: int | None = None
        statuses: list[int] = []
        attempts = retries = 0
        auth_retried = False
        start_all = time.perf_counter()
        token: str | None = None
        while True:
            attempts += 1
            token = token or self.tokens.token()
            label = name if attempts == 1 else f"{name} (retry)"
            start = time.perf_counter()
            try:
                r = self.http.request(method, path, content=body, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as e:
                ms = (time.perf_counter() - start) * 1000
                self.report(request_type=method, name=label, response_time=ms, response_length=0,
                            exception=TransportError(f"{type(e).__name__} on {method} {name}"), context={})
                if first_status is None:
                    first_status = 0
                statuses.append(0)
                if retry_transport and retries < self.max_retries:
                    retries += 1
                    self.sleep(self._wait_s(None, retries))
                    continue
                return Attempt(status=0, body=None, attempts=attempts, retries=retries, first_status=first_status,
                               elapsed_ms=(time.perf_counter() - start_all) * 1000, error=type(e).__name__,
                               statuses=tuple(statuses))
            ms = (time.perf_counter() - start) * 1000
            status = r.status_code
            if first_status is None:
                first_status = status
            statuses.append(status)
            try:
                data = orjson.loads(r.content) if r.content else None
            except orjson.JSONDecodeError:
                data = None
            exc = None if status < 400 else PlatformError.from_body(status, data)
            self.report(request_type=method, name=label, response_time=ms, response_length=len(r.content),
                        exception=exc, context={"status": status})
            if status == 401 and not auth_retried:
                auth_retried = True
                retries += 1
                token = self.tokens.replace(token)  # the retry goes out on a fresh token
                continue
            token = None
            if status in RETRY_STATUSES and retries < self.max_retries:
                wait = self._wait_s(r, retries + 1)
                if wait <= self.max_retry_wait_s:
                    retries += 1
                    self.sleep(wait)
                    continue
            return Attempt(status=status, body=data, attempts=attempts, retries=retries, first_status=first_status,
                           elapsed_ms=(time.perf_counter() - start_all) * 1000,
                           error=exc.code if isinstance(exc, PlatformError) else None,
                           context_id=r.headers.get("ININ-Correlation-Id"), statuses=tuple(statuses))

    def launch(self, body: dict[str, Any]) -> LaunchResult:
        a = self.request("POST", "/api/v2/flows/executions", "launch", body=orjson.dumps(body), retry_transport=False)
        eid = a.body.get("id") if a.status == 200 and isinstance(a.body, dict) else None
        return LaunchResult(status=a.status, body=a.body, attempts=a.attempts, retries=a.retries,
                            first_status=a.first_status, elapsed_ms=a.elapsed_ms, error=a.error,
                            context_id=a.context_id, statuses=a.statuses, execution_id=eid)

    def status(self, execution_id: str) -> Attempt:
        return self.request("GET", f"/api/v2/flows/executions/{execution_id}", "execution status",
                            retry_transport=True)

    def follow(self, execution_id: str, *, poll_interval_s: float, timeout_s: float,
               clock: Callable[[], float] = time.monotonic,
               stopping: Callable[[], bool] = lambda: False) -> FollowResult:
        """Poll until a terminal status, TIMEOUT, UNKNOWN (status unreadable) or INTERRUPTED (the run stopped)."""
        deadline = clock() + timeout_s
        polls = r429 = 0
        while True:
            self.sleep(poll_interval_s)  # a flow launched a moment ago is still running: don't ask yet
            if stopping():
                return FollowResult("INTERRUPTED", polls, r429)
            a = self.status(execution_id)
            polls += a.attempts
            r429 += a.statuses.count(429)
            if a.status == 200 and isinstance(a.body, dict):
                st = str(a.body.get("status", "UNKNOWN"))
                if st in TERMINAL:
                    return FollowResult(st, polls, r429)
            elif a.status not in (0, *RETRY_STATUSES):
                return FollowResult("UNKNOWN", polls, r429)
            if clock() + poll_interval_s > deadline:
                return FollowResult("TIMEOUT", polls, r429)

    def get_json(self, path: str, name: str) -> Attempt:
        return self.request("GET", path, name, retry_transport=True)
