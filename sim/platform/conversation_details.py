"""Conversation-centric analytics for messaging conversations (API reference §11):
``POST /api/v2/analytics/conversations/details/query`` — each conversation that started in the interval, with
its division, its ``externalTag``, and a customer participant whose session says where it came from
(``addressFrom``: the customer's ``from.id``) and which flow ran it. The org's production inbound message flows
run conversations of their own (``background_per_hour``), seen only here: a separation proof has production
beside the test traffic to tell apart.

[U] choices, documented here because no source confirms them: the permission is
``analytics:conversationDetail:view``; conversation filters may name ``conversationId``, ``divisionId``,
``externalTag`` and ``originatingDirection``, segment filters ``addressFrom``, ``direction``, ``flowId``,
``mediaType``, ``messageType`` and ``purpose``; a conversation counts from the moment it starts; results are in
order of start, at most 100 a page.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sim.platform.analytics import AnalyticsQueryError, check_filter, iso_ms, matches, parse_interval
from sim.platform.auth import Token
from sim.platform.http import SimState, error, invalid, ok, requires

__all__ = ["ROUTES", "PERM_CONVERSATION_DETAIL", "CONVERSATION_DIMENSIONS", "SEGMENT_DIMENSIONS", "QUERY_PATH"]

PERM_CONVERSATION_DETAIL = "analytics:conversationDetail:view"
QUERY_PATH = "/api/v2/analytics/conversations/details/query"
CONVERSATION_DIMENSIONS = ("conversationId", "divisionId", "externalTag", "originatingDirection")
SEGMENT_DIMENSIONS = ("addressFrom", "direction", "flowId", "mediaType", "messageType", "purpose")
_MAX_PAGE = 100
_MAX_BACKGROUND = 100_000
"""Production conversations one query may synthesise (a week of a busy flow); a longer interval is refused."""


def _conversation(cid: str, start: float, end: float | None, division: str, tag: str | None, from_id: str,
                  flow: Any) -> dict[str, Any]:
    """An AnalyticsConversationWithoutAttributes: the customer and the flow that answered it."""
    segment = {"segmentStart": iso_ms(start), "segmentType": "interact"}
    if end is not None:
        segment["segmentEnd"] = iso_ms(end)
    return {"conversationId": cid, "conversationStart": iso_ms(start),
            **({"conversationEnd": iso_ms(end)} if end is not None else {}),
            "divisionIds": [division], **({"externalTag": tag} if tag else {}), "originatingDirection": "inbound",
            "participants": [
                {"participantId": f"{cid}-c", "purpose": "customer", "sessions": [
                    {"sessionId": f"{cid}-cs", "mediaType": "message", "messageType": "open", "direction": "inbound",
                     "addressFrom": from_id, "segments": [segment]}]},
                {"participantId": f"{cid}-f", "purpose": "ivr", "participantName": flow.name, "sessions": [
                    {"sessionId": f"{cid}-fs", "mediaType": "message", "messageType": "open", "direction": "inbound",
                     "flow": {"flowId": flow.id, "flowName": flow.name, "flowType": "INBOUNDSHORTMESSAGE"},
                     "segments": [segment]}]}]}


def _rows(state: SimState, start: float, end: float) -> list[tuple[float, dict[str, str], dict[str, Any]]]:
    """(start, the dimensions a filter sees, the conversation) for everything that started in [start, end)."""
    now = state.clock()
    out = []
    for conv in state.messaging.conversations.values():
        if start <= conv.started_at < end:
            row = {"conversationId": conv.id, "divisionId": conv.flow.division_id, "externalTag": conv.external_tag,
                   "originatingDirection": "inbound", "addressFrom": conv.from_id, "direction": "inbound",
                   "flowId": conv.flow.id, "mediaType": "message", "messageType": "open", "purpose": "customer"}
            out.append((conv.started_at, row, _conversation(conv.id, conv.started_at, conv.ended_at,
                                                            conv.flow.division_id, conv.external_tag, conv.from_id,
                                                            conv.flow)))
    for flow in state.org.flows:
        if flow.messaging is None or flow.background_per_hour <= 0:
            continue
        every = 3600.0 / flow.background_per_hour
        first, last = int(start // every) + 1, int(min(end, now) // every)
        if last - first > _MAX_BACKGROUND:
            raise AnalyticsQueryError(f"interval: too long for details (more than {_MAX_BACKGROUND:,} conversations)")
        for i in range(first, last + 1):
            at = i * every
            if start <= at < end:
                cid = f"{flow.id[:8]}-bg-{i}"
                row = {"conversationId": cid, "divisionId": flow.division_id, "externalTag": None,
                       "originatingDirection": "inbound", "addressFrom": f"customer-{i}", "direction": "inbound",
                       "flowId": flow.id, "mediaType": "message", "messageType": "open", "purpose": "customer"}
                out.append((at, row, _conversation(cid, at, at + 60, flow.division_id, None, f"customer-{i}", flow)))
    out.sort(key=lambda r: r[0])
    return out


def _query(state: SimState, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AnalyticsQueryError("body must be a JSON object")
    start, end = parse_interval(body.get("interval"))
    paging = body.get("paging") or {}
    size, number = paging.get("pageSize", 25), paging.get("pageNumber", 1)
    if not (isinstance(size, int) and 1 <= size <= _MAX_PAGE and isinstance(number, int) and number >= 1):
        raise AnalyticsQueryError(f"paging: pageSize 1-{_MAX_PAGE} and pageNumber 1 or more")
    filters = []
    for key, dims in (("conversationFilters", CONVERSATION_DIMENSIONS), ("segmentFilters", SEGMENT_DIMENSIONS)):
        for i, f in enumerate(body.get(key) or []):
            check_filter(f, f"{key}[{i}]", dims)
            filters.append(f)
    found = [c for _at, row, c in _rows(state, start, end) if all(matches(f, row) for f in filters)]
    page = found[(number - 1) * size:number * size]
    return {"conversations": page, "totalHits": len(found)} if found else {"totalHits": 0}


@requires(PERM_CONVERSATION_DETAIL)
async def _details(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    try:
        return ok(_query(state, orjson.loads(await request.body())), cid, rl)
    except orjson.JSONDecodeError:
        return error(state, 400, "bad.request", "The body is not valid JSON.", cid=cid, headers=rl)
    except AnalyticsQueryError as exc:
        return invalid(state, cid, rl, str(exc), str(exc).split(":", 1)[0])


ROUTES = [Route(QUERY_PATH, _details, methods=["POST"])]
