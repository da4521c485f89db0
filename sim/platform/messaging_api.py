"""The Open Messaging endpoints (API reference §11): integrations, a customer's inbound message (and its sister
event and receipt endpoints) and the admin listing ``/_sim/messaging``. Same authentication, per-token rate limits
and faults as every ``/api/v2`` endpoint; the conversations are ``sim.platform.messaging``.

[U] choices, documented here because no source confirms them: the integration permissions are
``messaging:integration:view/add/edit/delete``; a missing or malformed field is 400 ``invalid.value`` naming it;
a message with neither ``text`` nor ``content`` is 400; an integration's secret is never echoed; a new integration
answers ``createStatus: Initiated`` and reads ``Completed`` afterwards; an integration routed to no flow accepts
messages and answers nothing; webhook URLs must be loopback (the simulator posts nowhere else).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sim.platform.auth import Token
from sim.platform.http import JSON, SimState, error, flow_faults, invalid, ok, paging, read_json, requires
from sim.platform.messaging import Integration
from sim.platform.messaging_model import MIN_SECRET_LENGTH, DeliveryFaults
from sim.platform.webhooks import webhook_url_problem

__all__ = ["ROUTES", "PERM_RECEIVE", "PERM_INTEGRATION_VIEW", "PERM_INTEGRATION_ADD", "PERM_INTEGRATION_EDIT",
           "PERM_INTEGRATION_DELETE", "ID_TYPES"]

PERM_RECEIVE = "conversation:message:receive"
PERM_INTEGRATION_VIEW = "messaging:integration:view"
PERM_INTEGRATION_ADD = "messaging:integration:add"
PERM_INTEGRATION_EDIT = "messaging:integration:edit"
PERM_INTEGRATION_DELETE = "messaging:integration:delete"
ID_TYPES = ("Email", "Phone", "Opaque")
_MESSAGE_FIELDS = frozenset({"channel", "text", "content", "metadata"})
_FROM_FIELDS = frozenset({"nickname", "id", "idType", "firstName", "lastName", "image", "email"})
_INTEGRATION_FIELDS = frozenset({"name", "outboundNotificationWebhookUrl", "outboundNotificationWebhookSignatureSecretToken",
                                 "webhookHeaders", "supportedContent", "messagingSetting"})


def _message_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    """(message, field) of what OpenInboundNormalizedMessage validation refuses, or None."""
    unknown = sorted(set(body) - _MESSAGE_FIELDS)
    if unknown:
        return f"Unrecognized field '{unknown[0]}' in OpenInboundNormalizedMessage", unknown[0]
    channel = body.get("channel")
    if not isinstance(channel, dict):
        return "channel is required", "channel"
    sender = channel.get("from")
    if not isinstance(sender, dict):
        return "channel.from is required", "channel.from"
    if set(sender) - _FROM_FIELDS:
        name = sorted(set(sender) - _FROM_FIELDS)[0]
        return f"Unrecognized field '{name}' in channel.from", f"channel.from.{name}"
    if not isinstance(sender.get("id"), str) or not sender["id"] or len(sender["id"]) > 256:
        return "channel.from.id is required (a string of 1-256 characters)", "channel.from.id"
    if sender.get("idType") not in ID_TYPES:
        return f"channel.from.idType is required, one of {', '.join(ID_TYPES)}", "channel.from.idType"
    try:
        dt.datetime.fromisoformat(str(channel["time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return "channel.time is required (an ISO-8601 date-time)", "channel.time"
    text, content = body.get("text"), body.get("content")
    if text is not None and not isinstance(text, str):
        return "text must be a string", "text"
    if content is not None and not isinstance(content, list):
        return "content must be a list", "content"
    if not text and not content:
        return "a message needs text or content", "text"
    return None


def _no_integration(state: SimState, cid: str, rl: dict[str, str]) -> JSON:
    return error(state, 404, "not.found", "The requested open messaging integration could not be found.",
                 cid=cid, headers=rl)


@requires(PERM_RECEIVE)
async def _inbound_message(state: SimState, request: Request, _token: Token, cid: str, rl: dict[str, str]) -> Response:
    integ = state.messaging.integrations.get(request.path_params["integration_id"])
    if integ is None:
        return _no_integration(state, cid, rl)
    got = await read_json(state, request, cid, rl, "OpenInboundNormalizedMessage")
    if isinstance(got, JSON):
        return got
    body = got[1]
    problem = _message_problem(body)
    if problem is not None:
        return invalid(state, cid, rl, *problem)
    channel = body["channel"]
    echo: dict[str, Any] = {"id": state.new_id(), "channel": {
        "id": integ.id, "platform": "Open", "type": "Private", "messageId": channel.get("messageId") or state.new_id(),
        "from": channel["from"], "time": channel["time"]}, "type": "Text", "text": body.get("text") or "",
        "content": body.get("content") or [], "metadata": body.get("metadata") or {}}
    flow = state.org.flow(integ.flow_id) if integ.flow_id else None
    if flow is not None:
        failed = await flow_faults(state, flow, cid)
        if failed is not None:
            return failed
        conv = state.messaging.receive(integ, flow, channel, str(body.get("text") or ""))
        if request.query_params.get("prefetchConversationId", "").lower() == "true":
            echo["conversationId"] = conv.id
    state.count("messaging.inbound")
    return ok(echo, cid, rl)


@requires(PERM_RECEIVE)
async def _inbound_other(state: SimState, request: Request, _token: Token, cid: str, rl: dict[str, str]) -> Response:
    """``.../inbound/open/event`` and ``.../receipt``: accepted and echoed; they change no conversation."""
    if request.path_params["kind"] not in ("event", "receipt"):
        return error(state, 404, "not.found", "The requested resource could not be found.", cid=cid, headers=rl)
    if request.path_params["integration_id"] not in state.messaging.integrations:
        return _no_integration(state, cid, rl)
    got = await read_json(state, request, cid, rl, "OpenInboundNormalized" + request.path_params["kind"].title())
    if isinstance(got, JSON):
        return got
    return ok({"id": state.new_id(), **got[1]}, cid, rl)


def _integration_problem(body: dict[str, Any], *, creating: bool) -> tuple[str, str] | None:
    unknown = sorted(set(body) - _INTEGRATION_FIELDS)
    if unknown:
        return f"Unrecognized field '{unknown[0]}' in OpenIntegrationRequest", unknown[0]
    if creating or "name" in body:
        if not isinstance(body.get("name"), str) or not body["name"]:
            return "name is required", "name"
    url = body.get("outboundNotificationWebhookUrl")
    if creating or url is not None:
        why = webhook_url_problem(url) if isinstance(url, str) else "is required"
        if why:
            return f"outboundNotificationWebhookUrl {why}", "outboundNotificationWebhookUrl"
    secret = body.get("outboundNotificationWebhookSignatureSecretToken")
    if (creating or secret is not None) and (not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH):
        return (f"outboundNotificationWebhookSignatureSecretToken must be longer than {MIN_SECRET_LENGTH - 1} "
                "characters", "outboundNotificationWebhookSignatureSecretToken")
    headers = body.get("webhookHeaders")
    if headers is not None and (not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())):
        return "webhookHeaders must map names to strings", "webhookHeaders"
    return None


@requires(PERM_INTEGRATION_VIEW)
async def _list_integrations(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    entities = [i.to_json() for i in state.messaging.integrations.values()]
    return ok({"entities": entities, "pageSize": len(entities), "pageNumber": 1, "total": len(entities)}, cid, rl)


@requires(PERM_INTEGRATION_ADD)
async def _create_integration(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    got = await read_json(state, request, cid, rl, "OpenIntegrationRequest")
    if isinstance(got, JSON):
        return got
    body = got[1]
    problem = _integration_problem(body, creating=True)
    if problem is not None:
        return invalid(state, cid, rl, *problem)
    now = state.clock()
    integ = Integration(id=state.new_id(), name=body["name"], flow_id=None, webhook_url=body["outboundNotificationWebhookUrl"],
                        secret=body["outboundNotificationWebhookSignatureSecretToken"],
                        headers=dict(body.get("webhookHeaders") or {}), faults=DeliveryFaults(), retry_interval_s=5.0,
                        created_at=now, modified_at=now)
    state.messaging.integrations[integ.id] = integ
    return ok({**integ.to_json(), "createStatus": "Initiated"}, cid, rl)


@requires(PERM_INTEGRATION_VIEW)
async def _get_integration(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    integ = state.messaging.integrations.get(request.path_params["integration_id"])
    if integ is None:
        return _no_integration(state, cid, rl)
    return ok(integ.to_json(), cid, rl)


@requires(PERM_INTEGRATION_EDIT)
async def _patch_integration(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    integ = state.messaging.integrations.get(request.path_params["integration_id"])
    if integ is None:
        return _no_integration(state, cid, rl)
    got = await read_json(state, request, cid, rl, "OpenIntegrationUpdateRequest")
    if isinstance(got, JSON):
        return got
    body = got[1]
    problem = _integration_problem(body, creating=False)
    if problem is not None:
        return invalid(state, cid, rl, *problem)
    integ.name = body.get("name", integ.name)
    integ.webhook_url = body.get("outboundNotificationWebhookUrl", integ.webhook_url)
    integ.secret = body.get("outboundNotificationWebhookSignatureSecretToken", integ.secret)
    integ.headers = dict(body.get("webhookHeaders", integ.headers))
    integ.modified_at = state.clock()
    return ok(integ.to_json(), cid, rl)


@requires(PERM_INTEGRATION_DELETE)
async def _delete_integration(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    if state.messaging.integrations.pop(request.path_params["integration_id"], None) is None:
        return _no_integration(state, cid, rl)
    return Response(status_code=204, headers={"ININ-Correlation-Id": cid, **rl})


async def _sim_messaging(request: Request) -> Response:
    """Admin: conversations with their messages and every delivery attempt, filtered by ``from_prefix``, paged."""
    state: SimState = request.app.state.sim
    q = request.query_params
    prefix = q.get("from_prefix")
    paged = paging(state, q)
    if isinstance(paged, JSON):
        return paged
    limit, offset = paged
    convs = [c for c in state.messaging.conversations.values() if prefix is None or c.from_id.startswith(prefix)]
    return JSON({"total": len(convs), "offset": offset, "limit": limit, "pending_deliveries": len(state.messaging.tasks),
                 "entities": [c.record() for c in convs[offset:offset + limit]]})


_OPEN = "/api/v2/conversations/messaging/integrations/open"
ROUTES = [
    Route(_OPEN, _list_integrations, methods=["GET"]),
    Route(_OPEN, _create_integration, methods=["POST"]),
    Route(_OPEN + "/{integration_id}", _get_integration, methods=["GET"]),
    Route(_OPEN + "/{integration_id}", _patch_integration, methods=["PATCH"]),
    Route(_OPEN + "/{integration_id}", _delete_integration, methods=["DELETE"]),
    Route("/api/v2/conversations/messages/{integration_id}/inbound/open/message", _inbound_message, methods=["POST"]),
    Route("/api/v2/conversations/messages/{integration_id}/inbound/open/{kind:str}", _inbound_other, methods=["POST"]),
    Route("/_sim/messaging", _sim_messaging, methods=["GET"]),
]
