"""The simulated Genesys Cloud API as an ASGI app: ``create_app(org)``.

Paths, bodies, status codes and headers follow ``shared/reference/genesys-platform-api.md``.
Admin endpoints live under ``/_sim``, outside ``/api/v2`` (``sim.platform.admin``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sim.platform import (admin, bot_analytics, bot_api, contacts, conversation_details, messaging_api, models,
                          nlu_api, reporting_turns)
from sim.platform.contacts import Contacts
from sim.platform.messaging import Messaging
from sim.platform.analytics import AnalyticsQueryError, run_query
from sim.platform.auth import RateLimiter, Token, TokenStore, parse_basic_auth
from sim.platform.executions import Execution, ExecutionStore, draw_latency_s
from sim.platform.faults import FaultInjector
from sim.platform.http import (
    JSON, ConnectionDropped, SimState, apply_fault, error, flow_faults, ok, read_json, requires,
)
from sim.platform.org import Flow, Latency, Org
from sim.platform.schema import FlowValidator, Problem, unknown_field_problems

__all__ = ["create_app", "SimState", "ConnectionDropped", "NetworkDelay", "PERM_ANALYTICS", "PERM_LAUNCH",
           "PERM_VIEW_EXECUTION", "PERM_VIEW_FLOW", "analytics_query", "get_execution", "get_flow",
           "get_flow_version", "launch", "oauth_token", "org_limits"]

PERM_LAUNCH = "architect:flow:launch"
PERM_VIEW_EXECUTION = "architect:flowExecution:view"
PERM_VIEW_FLOW = "architect:flow:view"
PERM_ANALYTICS = "analytics:flowExecutionAggregate:view"


async def oauth_token(request: Request) -> Response:
    state: SimState = request.app.state.sim
    creds = parse_basic_auth(request.headers.get("authorization"))
    form = parse_qs((await request.body()).decode("latin-1"))
    if form.get("grant_type") != ["client_credentials"]:
        return JSON({"error": "unsupported_grant_type", "description": "grant_type must be client_credentials"},
                    status_code=400)
    client = state.org.client(creds[0]) if creds else None
    if client is None or creds is None or client.secret != creds[1]:
        state.count("oauth.rejected")
        return JSON({"error": "invalid_client", "description": "client not found",
                     "error_description": "client not found"}, status_code=401)
    token, lifetime = state.tokens.issue(client)
    state.count("oauth.issued")
    return JSON({"access_token": token, "token_type": "bearer", "expires_in": lifetime})


_MAX_DEPTH = 32
"""inputData nesting accepted (flow inputs are scalars or arrays of scalars; deep nesting is an attack)."""


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level and depth <= _MAX_DEPTH:
        nxt: list[Any] = []
        for v in level:
            if isinstance(v, dict):
                nxt.extend(v.values())
            elif isinstance(v, list):
                nxt.extend(v)
        if not nxt:
            break
        depth, level = depth + 1, nxt
    return depth


@requires(PERM_LAUNCH)
async def launch(state: SimState, request: Request, token: Token, cid: str,
                rl: dict[str, str]) -> Response:
    got = await read_json(state, request, cid, rl, "FlowExecutionLaunchRequest")
    if isinstance(got, JSON):
        return got
    raw, body = got
    for key, kinds, what in (("flowVersion", (str, type(None)), "a string"), ("name", (str, type(None)), "a string"),
                             ("inputData", (dict, type(None)), "an object")):
        if key in body and not isinstance(body[key], kinds):
            return error(state, 400, "invalid.value", f"{key} must be {what}, got {type(body[key]).__name__}",
                          cid=cid, headers=rl, details=[{"fieldName": key, "errorCode": "invalid.value"}])
    if _depth(body.get("inputData")) > _MAX_DEPTH:
        return error(state, 400, "invalid.value", f"inputData nests deeper than {_MAX_DEPTH} levels", cid=cid,
                      headers=rl, details=[{"fieldName": "inputData", "errorCode": "invalid.value"}])
    strict = state.org.settings.strict_unknown_fields
    problems = unknown_field_problems(body) if strict else []
    flow_id = body.get("flowId")
    if not problems and (not isinstance(flow_id, str) or not flow_id):
        return error(state, 400, "invalid.value", "flowId is required (a string: the id of a workflow).",
                      cid=cid, headers=rl, details=[{"fieldName": "flowId", "errorCode": "invalid.value"}])
    flow = state.org.flow(flow_id) if isinstance(flow_id, str) else None
    if not problems:
        if flow is None:
            return error(state, 404, "architect.flow.not.found", f"Flow {flow_id} could not be found.",
                          cid=cid, headers=rl, params={"flowId": str(flow_id)})
        if flow.type != "workflow":
            # [U] The code for launching a non-workflow flow is not documented.
            return error(state, 400, "invalid.value",
                          f"Flow '{flow.name}' is of type {flow.type}; only workflow flows can be launched "
                          "through /api/v2/flows/executions.", cid=cid, headers=rl)
    version = body.get("flowVersion") or (flow.version if flow else "")
    if not problems and flow is not None and version not in (flow.version, *flow.older_versions):
        return error(state, 404, "architect.flow.version.missing",
                      f"Version {version!r} of flow '{flow.name}' does not exist; published: {flow.version}.",
                      cid=cid, headers=rl)
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        problems.append(Problem(field="name", message="name must be a string"))
    input_data = body.get("inputData")
    if input_data is None:
        input_data = {}
    if flow is not None:
        problems.extend(state.validators[flow.id].problems(input_data, strict=strict))
    if problems:
        message = "; ".join(p.message for p in problems)
        return error(state, 400, "invalid.value", message, cid=cid, headers=rl,
                      details=[{"fieldName": p.field, "errorCode": "invalid.value"} for p in problems])
    if flow is None:  # unreachable: no problems implies a known workflow; keeps the type checker honest
        return error(state, 500, "internal.server.error", "flow lookup failed", cid=cid)
    failed = await flow_faults(state, flow, cid)
    if failed is not None:
        return failed
    r = state.rng.random()
    outcome = "FAILED" if r < flow.failure_rate else "ERROR" if r < flow.failure_rate + flow.error_rate else "COMPLETED"
    execution = Execution(id=state.new_id(), name=name, flow=flow, version=version, input_data=input_data,
                          client_id=token.client.id, launched_at=state.clock(),
                          duration_s=draw_latency_s(flow.duration, state.rng), outcome=outcome, size=len(raw))
    state.store.add(execution)
    state.count("launch.accepted")
    return ok(models.launch_json(execution), cid, rl)


@requires(PERM_VIEW_EXECUTION)
async def get_execution(state: SimState, request: Request, _token: Token, cid: str,
                       rl: dict[str, str]) -> Response:
    execution = state.store.get(request.path_params["execution_id"])
    if execution is None:
        return error(state, 404, "not.found", "The requested flow execution could not be found.",
                      cid=cid, headers=rl)
    failed = await apply_fault(state, state.faults.decide(state.org.faults, execution.flow.faults), cid)
    if failed is not None:
        return failed
    state.count("status.served")
    version = state.versions[(execution.flow.id, execution.version)]
    return ok(models.execution_json(execution, state.clock(), version, cid), cid, rl)


def _flow_or_404(state: SimState, request: Request, cid: str, rl: dict[str, str]) -> Flow | JSON:
    flow = state.org.flow(request.path_params["flow_id"])
    if flow is None:
        return error(state, 404, "architect.flow.not.found",
                      f"Flow {request.path_params['flow_id']} could not be found.", cid=cid, headers=rl)
    return flow


@requires(PERM_VIEW_FLOW)
async def get_flow(state: SimState, request: Request, _token: Token, cid: str,
                  rl: dict[str, str]) -> Response:
    flow = _flow_or_404(state, request, cid, rl)
    if isinstance(flow, JSON):
        return flow
    state.count("flow.served")
    return ok(models.flow_json(flow, state.org), cid, rl)


@requires(PERM_VIEW_FLOW)
async def get_flow_version(state: SimState, request: Request, _token: Token, cid: str,
                          rl: dict[str, str]) -> Response:
    flow = _flow_or_404(state, request, cid, rl)
    if isinstance(flow, JSON):
        return flow
    version = state.versions.get((flow.id, request.path_params["version_id"]))
    if version is None:
        return error(state, 404, "architect.flow.version.missing",
                      f"Version {request.path_params['version_id']!r} of flow '{flow.name}' does not exist.",
                      cid=cid, headers=rl)
    return ok(version, cid, rl)


@requires(PERM_ANALYTICS)
async def analytics_query(state: SimState, request: Request, _token: Token, cid: str,
                         rl: dict[str, str]) -> Response:
    try:
        result = run_query(orjson.loads(await request.body()), state.org, state.store, state.clock())
    except orjson.JSONDecodeError:
        return error(state, 400, "bad.request", "The body is not valid JSON.", cid=cid, headers=rl)
    except AnalyticsQueryError as exc:
        return error(state, 400, "invalid.value", str(exc), cid=cid, headers=rl)
    return ok(result, cid, rl)


@requires(None)  # the vendor SDK documents the limits endpoints as "Requires no permissions"
async def org_limits(state: SimState, request: Request, _token: Token, cid: str, rl: dict[str, str]) -> Response:
    """``GET /api/v2/organizations/limits/namespaces/{namespace}``: this org's effective limits (LimitsEntityListing)."""
    st = state.org.settings
    ns = request.path_params["namespace"]
    entities = [] if ns != "platform.api" else [
        {"key": "client.credentials.token.rate.per.minute", "namespace": ns,
         "value": int(st.rate_limit_per_window * 60 / st.rate_limit_window_s)},
        {"key": "request.bytes.max", "namespace": ns, "value": st.request_bytes_max},
    ]
    return ok({"entities": entities}, cid, rl)


def create_app(org: Org, *, seed: int = 0, clock: Callable[[], float] = time.time) -> Starlette:
    """The simulator app for ``org``. ``seed`` makes ids, durations, outcomes and faults reproducible."""
    rng = random.Random(seed)
    settings = org.settings
    versions = {(f.id, v): models.version_json(f, v) for f in org.flows for v in (f.version, *f.older_versions)}
    state = SimState(
        org=org, clock=clock, rng=rng,
        tokens=TokenStore(org, clock=clock, rng=rng),
        limiter=RateLimiter(limit=settings.rate_limit_per_window, window_s=settings.rate_limit_window_s, clock=clock),
        store=ExecutionStore(max_executions=settings.store_max_executions, max_age_s=settings.store_max_age_s,
                             max_bytes=settings.store_max_bytes,
                             clock=clock),
        faults=FaultInjector(rng),
        validators={f.id: FlowValidator(f) for f in org.flows},
        versions=versions,
        meters={},
        bots=bot_api.BotSessions(org, clock=clock, rng=rng),
    )
    state.contacts = Contacts(max_contacts=settings.store_max_executions)
    state.messaging = Messaging(org, clock=clock, rng=rng, new_id=state.new_id, contacts=state.contacts)
    async def internal_error(request: Request, exc: Exception) -> Response:
        # Whatever went wrong, the answer is the platform's ErrorBody, never a text/plain page.
        return error(state, 500, "internal.server.error", "The server encountered an unexpected condition.")

    app = Starlette(exception_handlers={Exception: internal_error}, routes=[
        Route("/oauth/token", oauth_token, methods=["POST"]),
        Route("/api/v2/flows/executions", launch, methods=["POST"]),
        Route("/api/v2/flows/executions/{execution_id}", get_execution, methods=["GET"]),
        Route("/api/v2/flows/{flow_id}", get_flow, methods=["GET"]),
        Route("/api/v2/flows/{flow_id}/versions/{version_id}", get_flow_version, methods=["GET"]),
        Route("/api/v2/analytics/flowexecutions/aggregates/query", analytics_query, methods=["POST"]),
        Route("/api/v2/organizations/limits/namespaces/{namespace}", org_limits, methods=["GET"]),
        *admin.ROUTES,
        *bot_api.ROUTES,
        *bot_analytics.ROUTES,
        *messaging_api.ROUTES,
        *contacts.ROUTES,
        *conversation_details.ROUTES,
        *reporting_turns.ROUTES,
        *nlu_api.ROUTES,
    ])
    app.state.sim = state
    if org.network is not None:
        app.add_middleware(NetworkDelay, latency=org.network, rng=random.Random(seed + 1))
    return app


class NetworkDelay:
    """ASGI middleware: every request waits a round trip drawn from the org's ``[network]`` latency before it is
    handled (each request on its own: a slow answer never holds up another)."""

    def __init__(self, app: Any, *, latency: Latency, rng: random.Random) -> None:
        self.app, self.latency, self.rng = app, latency, rng

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(draw_latency_s(self.latency, self.rng))
        await self.app(scope, receive, send)
