"""The simulator's HTTP plumbing shared by every endpoint module: its state, JSON answers, ErrorBodies,
fault decisions, and authentication + rate limiting + authorization (``requires``)."""

from __future__ import annotations

import asyncio
import functools
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sim.platform import models
from sim.platform.auth import RateLimiter, Token, TokenStore
from sim.platform.executions import ExecutionStore
from sim.platform.faults import PASS, Decision, FaultInjector, LoadMeter
from sim.platform.org import Flow, Org
from sim.platform.schema import FlowValidator

__all__ = ["SimState", "JSON", "ConnectionDropped", "error", "ok", "apply_fault", "requires", "Handler", "read_json",
           "flow_faults", "invalid", "paging"]

_FAULT_CODES = {500: ("internal.server.error", "The server encountered an unexpected condition."),
                503: ("service.unavailable", "Service is currently unavailable (simulated)."),
                504: ("request.timeout", "The request timed out (simulated).")}


class ConnectionDropped(Exception):
    """Raised after the status line is sent, so the server closes the connection mid-response."""


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _Drop(Response):
    """Sends the status line and headers, then breaks the connection before the body."""

    def __init__(self) -> None:
        super().__init__(status_code=200, headers={"content-length": "512"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        raise ConnectionDropped("simulated connection drop")


@dataclass
class SimState:
    """Everything the simulator remembers; one per app."""

    org: Org
    clock: Callable[[], float]
    rng: random.Random
    tokens: TokenStore
    limiter: RateLimiter
    store: ExecutionStore
    faults: FaultInjector
    validators: dict[str, FlowValidator]
    versions: dict[tuple[str, str], dict[str, Any]]
    meters: dict[str, LoadMeter]
    bots: Any = None
    """The bot sessions (``sim.platform.bot_api.BotSessions``)."""
    messaging: Any = None
    """Open Messaging integrations and conversations (``sim.platform.messaging.Messaging``)."""
    contacts: Any = None
    """External contacts identity resolution made (``sim.platform.contacts.Contacts``)."""
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


_ECHO_MAX = 300
"""Characters of a user's value an error message may echo."""


def _clip(text: str) -> str:
    return text if len(text) <= _ECHO_MAX else text[:_ECHO_MAX] + f"… ({len(text):,} characters, truncated)"


def error(state: SimState, status: int, code: str, message: str, *, cid: str | None = None,
           headers: dict[str, str] | None = None, **kw: Any) -> JSON:
    cid = cid or state.new_id()
    # Never echo a user's megabytes back: every message and parameter is clipped.
    message = "; ".join(_clip(part) for part in message.split("; ")) if len(message) > _ECHO_MAX else message
    if "params" in kw and kw["params"]:
        kw["params"] = {k: _clip(str(v)) for k, v in kw["params"].items()}
    if "details" in kw and kw["details"]:
        kw["details"] = [{k: _clip(str(v)) for k, v in d.items()} for d in kw["details"]]
    state.count(f"error.{status}.{code}")
    h = {"ININ-Correlation-Id": cid, **(headers or {})}
    return JSON(models.error_body(status, code, message, cid, **kw), status_code=status, headers=h)


def invalid(state: SimState, cid: str, rl: dict[str, str], message: str, field_name: str) -> JSON:
    """400 ``invalid.value`` naming the field, as the platform's validation answers."""
    return error(state, 400, "invalid.value", message, cid=cid, headers=rl,
                 details=[{"fieldName": field_name, "errorCode": "invalid.value"}])


def paging(state: SimState, query: Any) -> tuple[int, int] | JSON:
    """An admin listing's ``limit`` (default 1000, at most 100,000) and ``offset``, or the 400 to answer."""
    try:
        limit, offset = min(int(query.get("limit", "1000")), 100_000), int(query.get("offset", "0"))
        if limit < 0 or offset < 0:
            raise ValueError
    except ValueError:
        return error(state, 400, "invalid.value", "limit and offset must be whole numbers >= 0")
    return limit, offset


def ok(data: Any, cid: str, extra: dict[str, str] | None = None) -> JSON:
    return JSON(data, headers={"ININ-Correlation-Id": cid, **(extra or {})})


async def apply_fault(state: SimState, decision: Decision, cid: str) -> Response | None:
    """Carry out a fault decision: wait, then maybe drop or fail. None means go on."""
    if decision is PASS:
        return None
    if decision.delay_s:
        await asyncio.sleep(decision.delay_s)
    if decision.drop:
        state.count("fault.drop")
        return _Drop()
    if decision.status is not None:
        code, message = _FAULT_CODES[decision.status]
        if decision.overloaded:
            message = "The flow's backend is over capacity (simulated)."
        return error(state, decision.status, code, message, cid=cid)
    return None


def _authorize(state: SimState, request: Request, permission: str | None) -> tuple[Token, str, dict[str, str]] | JSON:
    """The caller's token, a correlation id and rate-limit headers; or the error to answer."""
    cid = state.new_id()
    header = request.headers.get("authorization")
    if not header or not header[:7].lower() == "bearer ":
        return error(state, 401, "authentication.required",
                      "No authentication bearer token specified in authorization header.", cid=cid)
    token = state.tokens.lookup(header[7:].strip())
    if token is None:
        return error(state, 401, "bad.credentials", "Invalid login credentials.", cid=cid)
    rate = state.limiter.hit(header[7:].strip())
    rl = {"inin-ratelimit-count": str(rate.count), "inin-ratelimit-allowed": str(rate.limit),
          "inin-ratelimit-reset": str(rate.reset_s)}
    if not rate.allowed:
        msg = f"Rate limit exceeded the maximum [{rate.limit}] requests within [{state.limiter.window_s}] seconds"
        return error(state, 429, "too.many.requests", msg, cid=cid, headers={"Retry-After": str(rate.reset_s), **rl},
                      params={"limit": str(rate.limit), "seconds": str(state.limiter.window_s)},
                      limit={"key": "client.credentials.token.rate.per.minute", "namespace": "platform.api",
                             "value": rate.limit})
    if permission is not None and permission not in token.client.permissions:
        return error(state, 403, "missing.any.permissions",
                      f"Unable to perform the requested action. You are missing the following permission(s): "
                      f"[{permission}]", cid=cid, headers=rl, params={"permissions": permission})
    return token, cid, rl


Handler = Callable[[SimState, Request, Token, str, dict[str, str]], Awaitable[Response]]


def requires(permission: str | None) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Authenticate, rate-limit and authorize before the handler; it gets the token, correlation id and
    rate-limit headers."""
    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            state: SimState = request.app.state.sim
            auth = _authorize(state, request, permission)
            if isinstance(auth, JSON):
                return auth
            return await handler(state, request, *auth)
        return endpoint
    return wrap


async def _read_body(state: SimState, request: Request, cid: str, rl: dict[str, str]) -> bytes | JSON:
    """The body, refused past ``request_bytes_max`` (declared or sent) or when it trickles in too slowly."""
    limit = state.org.settings.request_bytes_max
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return error(state, 413, "request.entity.too.large",
                      f"The request body of {int(declared):,} bytes exceeds request.bytes.max ({limit:,}).",
                      cid=cid, headers=rl, limit={"key": "request.bytes.max", "namespace": "platform.api", "value": limit})

    async def read() -> bytes | None:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        raw = await asyncio.wait_for(read(), state.org.settings.body_timeout_s)
    except asyncio.TimeoutError:
        return error(state, 408, "request.timeout", "The request body did not arrive in time.", cid=cid, headers=rl)
    if raw is None:
        return error(state, 413, "request.entity.too.large", f"The request body exceeds request.bytes.max ({limit:,}).",
                      cid=cid, headers=rl, limit={"key": "request.bytes.max", "namespace": "platform.api", "value": limit})
    return raw


async def read_json(state: SimState, request: Request, cid: str, rl: dict[str, str],
                    what: str) -> tuple[bytes, dict[str, Any]] | JSON:
    """A JSON object body (``what``: its model's name, for the error) and its raw bytes; or the error to answer:
    415 not JSON, 413 too large, 408 too slow, 400 malformed or not an object."""
    if "json" not in request.headers.get("content-type", ""):
        return error(state, 415, "unsupported.media.type",
                     "Content-Type must be application/json.", cid=cid, headers=rl)
    raw = await _read_body(state, request, cid, rl)
    if isinstance(raw, JSON):
        return raw
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return error(state, 400, "bad.request",
                     "The request could not be understood by the server due to malformed syntax.", cid=cid, headers=rl)
    if not isinstance(body, dict):
        return error(state, 400, "bad.request", f"The body must be a {what} object.", cid=cid, headers=rl)
    return raw, body


async def flow_faults(state: SimState, flow: Flow, cid: str) -> Response | None:
    """The org's and the flow's injected faults for one request to ``flow``, and its capacity knee's overload
    (latency and errors past ``knee_per_s``): the answer they impose, or None to go on."""
    decision = state.faults.decide(state.org.faults, flow.faults)
    if flow.capacity is not None:
        over = state.faults.overload(flow.capacity, state.meters.setdefault(flow.id, LoadMeter(state.clock)).hit())
        if over is not PASS:
            decision = Decision(delay_s=decision.delay_s + over.delay_s, drop=decision.drop,
                                status=decision.status or over.status, overloaded=True)
    return await apply_fault(state, decision, cid)
