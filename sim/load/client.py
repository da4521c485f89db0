"""The platform client the load side uses: launch, status, follow (tokens come from ``sim.load.tokens``).

Plain httpx (sync); under Locust, gevent makes it cooperative. No locust import here: every HTTP
attempt is reported through a callback, which the Locust user wires to ``events.request``.

Retries: 429 honours Retry-After (jittered, capped); 502/503/504 back off and retry; 401 refreshes
the token and retries once. Each retry is reported as its own request (``<name> (retry)``), so the
first failure stays visible. A launch whose connection broke is **not** retried: the platform has no
idempotency key, and a retry could launch the flow twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from sim.errors import FlowsimError, PlatformError, TransportError
from sim.load.network import describe, ssl_context
from sim.load.tokens import Reporter, TokenManager, no_report

__all__ = ["TokenManager", "FlowClient", "Attempt", "LaunchResult", "FollowResult", "Reporter",
           "RETRY_STATUSES", "TERMINAL"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
TERMINAL = frozenset({"COMPLETED", "FAILED", "ERROR", "TERMINATED"})


def _per_token_limit(body: Any) -> bool:
    """A 429 whose ErrorBody names the per-token limit (more tokens help; other limits they do not)."""
    limit = body.get("limit") if isinstance(body, dict) else None
    return isinstance(limit, dict) and limit.get("key") == "client.credentials.token.rate.per.minute"


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
    cause: str | None = None
    """Why the last attempt got no answer, in words (``sim.load.network.describe``)."""
    attempt_ms: tuple[float, ...] = ()
    """Each answered attempt's own latency (send → answer), in order; waits between attempts excluded."""
    sent_at: float | None = None
    """Wall-clock (epoch s) when the first attempt was handed to the connection, token in hand."""
    unsent: str | None = None
    """Why the request never left (None: it was sent): ``late`` (past ``not_after`` when it could go),
    ``refused`` (no connection could be made), ``no_token`` (no OAuth token could be had)."""

    @property
    def sent(self) -> bool:
        return self.unsent is None


@dataclass(slots=True)
class LaunchResult(Attempt):
    execution_id: str | None = None


def _unsent(why: str, *, cause: str | None = None, error: str | None = None) -> Attempt:
    """A request that never left (``Attempt.unsent``): nothing can have run."""
    return Attempt(status=0, body=None, attempts=0, retries=0, first_status=0, elapsed_ms=0.0, error=error or why,
                   cause=cause, unsent=why)


@dataclass(slots=True)
class _Tries:
    """One request's bookkeeping across its attempts."""

    start: float
    """perf_counter at the first send (end-to-end latency is measured from it)."""
    attempts: int = 0
    retries: int = 0
    first_status: int | None = None
    sent_at: float | None = None
    statuses: list[int] = field(default_factory=list)
    attempt_ms: list[float] = field(default_factory=list)
    auth_retried: bool = False
    cause: str | None = None

    def result(self, *, status: int, body: Any = None, error: str | None = None, cause: str | None = None,
               context_id: str | None = None) -> Attempt:
        return Attempt(status=status, body=body, attempts=self.attempts, retries=self.retries,
                       first_status=self.first_status or 0, elapsed_ms=(time.perf_counter() - self.start) * 1000,
                       error=error, context_id=context_id, statuses=tuple(self.statuses), cause=cause,
                       attempt_ms=tuple(self.attempt_ms), sent_at=self.sent_at)


@dataclass(frozen=True, slots=True)
class _Again:
    """Try once more: on ``token`` (None: the pool's next), after ``wait_s``."""

    token: str | None
    wait_s: float = 0.0


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
    report: Reporter = no_report
    max_retries: int = 3
    max_retry_wait_s: float = 30.0
    timeout_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    wall: Callable[[], float] = time.time
    """Wall clock for ``sent_at`` and the ``not_after`` check (injected in tests)."""
    token_failure_unsent: bool = False
    """True (the load engine): a request that can get no token comes back ``unsent="no_token"`` with the cause, to
    be recorded as not sent. False (preflight, analytics): the token error is raised, one line for the user."""
    rng: random.Random = field(default_factory=random.Random)
    transport: httpx.BaseTransport | None = None
    """None: httpx's default transport. Inside Locust: sim.load.transport.GeventTransport (faster)."""
    ca_bundle: str | None = None
    """A private CA's PEM bundle to trust besides the system store (or SSL_CERT_FILE)."""
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.api_url, timeout=self.timeout_s, verify=ssl_context(self.ca_bundle),
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
                retry_transport: bool, not_after: float | None = None) -> Attempt:
        """Send with retries. ``not_after`` (epoch s): the first attempt is not sent later than this; a request
        that could only go later comes back ``unsent="late"``. The check is made with the token in hand, right
        before the request is written, and ``sent_at`` is stamped at that moment."""
        t = _Tries(start=time.perf_counter())
        token: str | None = None
        while True:
            t.attempts += 1
            try:
                token = token or self.tokens.token()
            except FlowsimError as e:
                if not self.token_failure_unsent:
                    raise
                if t.sent_at is None:  # never sent: nothing can have run
                    return _unsent("no_token", cause=str(e))
                t.attempts -= 1
                return t.result(status=t.statuses[-1], error="no_token", cause=str(e))
            if t.sent_at is None:
                t.sent_at = self.wall()
                if not_after is not None and t.sent_at > not_after:
                    return _unsent("late")
                t.start = time.perf_counter()
            label = name if t.attempts == 1 else f"{name} (retry)"
            began = time.perf_counter()
            try:
                r = self.http.request(method, path, content=body, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as e:
                failed = self._no_answer(e, t, method, name, label, (time.perf_counter() - began) * 1000)
                if failed is not None:
                    return failed
                if retry_transport and t.retries < self.max_retries:
                    t.retries += 1
                    self.sleep(self._wait_s(None, t.retries))
                    continue
                return t.result(status=0, error=type(e).__name__, cause=t.cause)
            answered = self._answered(r, t, method, label, (time.perf_counter() - began) * 1000, token)
            if isinstance(answered, Attempt):
                return answered
            token = answered.token
            if answered.wait_s:
                self.sleep(answered.wait_s)

    def _no_answer(self, e: httpx.HTTPError, t: _Tries, method: str, name: str, label: str,
                   ms: float) -> Attempt | None:
        """A request that got no HTTP answer: reported; an Attempt when it certainly never left (no connection on
        the first attempt: "not sent", never "unanswered, may have run"), else None (the caller may retry)."""
        cause = describe(e, url=self.api_url, ca_bundle=self.ca_bundle)
        if isinstance(e, httpx.ConnectError) and not t.statuses:
            self.report(request_type=method, name=label, response_time=ms, response_length=0,
                        exception=TransportError(f"ConnectError on {method} {name}: {cause}"), context={})
            return _unsent("refused", cause=cause, error="ConnectError")
        self.report(request_type=method, name=label, response_time=ms, response_length=0,
                    exception=TransportError(f"{type(e).__name__} on {method} {name}: {cause}"), context={})
        if t.first_status is None:
            t.first_status = 0
        t.statuses.append(0)
        t.cause = cause
        return None

    def _answered(self, r: httpx.Response, t: _Tries, method: str, label: str, ms: float,
                  token: str | None) -> Attempt | _Again:
        """An HTTP answer: reported, and either final (an Attempt) or to be tried again (on which token, after
        what wait). 401: once more on a fresh token; a per-token 429: at once on a new token when the pool can
        grow; 429/5xx: after a backoff within ``max_retry_wait_s``."""
        t.attempt_ms.append(round(ms, 3))
        status = r.status_code
        if t.first_status is None:
            t.first_status = status
        t.statuses.append(status)
        try:
            data = orjson.loads(r.content) if r.content else None
        except orjson.JSONDecodeError:
            data = None
        exc = None if status < 400 else PlatformError.from_body(status, data)
        self.report(request_type=method, name=label, response_time=ms, response_length=len(r.content),
                    exception=exc, context={"status": status})
        if status == 401 and not t.auth_retried:
            t.auth_retried = True
            t.retries += 1
            return _Again(token=self.tokens.replace(token or ""))  # the retry goes out on a fresh token
        if (status == 429 and t.retries < self.max_retries and _per_token_limit(data)
                and (grown := self.tokens.grow()) is not None):
            t.retries += 1  # the limit is per token: a new token in the pool, and the retry goes out on it now
            return _Again(token=grown)
        if status in RETRY_STATUSES and t.retries < self.max_retries:
            wait = self._wait_s(r, t.retries + 1)
            if wait <= self.max_retry_wait_s:
                t.retries += 1
                return _Again(token=None, wait_s=wait)
        return t.result(status=status, body=data, error=exc.code if isinstance(exc, PlatformError) else None,
                        context_id=r.headers.get("ININ-Correlation-Id"))

    def launch(self, body: dict[str, Any], *, not_after: float | None = None) -> LaunchResult:
        a = self.request("POST", "/api/v2/flows/executions", "launch", body=orjson.dumps(body), retry_transport=False,
                         not_after=not_after)
        eid = a.body.get("id") if a.status == 200 and isinstance(a.body, dict) else None
        return LaunchResult(status=a.status, body=a.body, attempts=a.attempts, retries=a.retries,
                            first_status=a.first_status, elapsed_ms=a.elapsed_ms, error=a.error,
                            context_id=a.context_id, statuses=a.statuses, cause=a.cause, attempt_ms=a.attempt_ms,
                            sent_at=a.sent_at, unsent=a.unsent, execution_id=eid)

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
