"""The NLU side of a digital bot flow (API reference §12), served from the same intent model its dialog uses
(``sim.platform.nlu``): the flow's latest configuration (which NLU domain and version it uses), that domain version
with its intents and training utterances, and ``detect`` — what the model makes of any text, without a session.

[U] choices, documented here because no source confirms them: a bot flow's domain id is ``nlu-<flow id>`` and its
version id the flow's version; ``detect`` answers every intent with a probability (its best example's word overlap),
most likely first, and the slot values it can pick out of the text as entities; the quality report judges the
model on its own training utterances, each held out in turn, its confusion values the share of an intent's
utterances detected as each intent (``""``: none), its summary the macro ``precision``, ``recall`` and
``f1_score``; the permission for all four is ``languageUnderstanding:nluDomainVersion:view`` (the flow
configuration: ``architect:flow:view``).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sim.platform.auth import Token
from sim.platform.http import SimState, error, invalid, ok, requires
from sim.platform.nlu import extract, quality, scores
from sim.platform.org import Flow

__all__ = ["ROUTES", "PERM_NLU", "domain_id"]

PERM_NLU = "languageUnderstanding:nluDomainVersion:view"
_MAX_TEXT = 2000


def domain_id(flow: Flow) -> str:
    return f"nlu-{flow.id}"


def _bot_flow(state: SimState, domain: str, version: str) -> Flow | None:
    for f in state.org.flows:
        if f.bot is not None and domain_id(f) == domain and version == f.version:
            return f
    return None


@requires("architect:flow:view")
async def _latest_configuration(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    flow = state.org.flow(request.path_params["flow_id"])
    if flow is None:
        return error(state, 404, "not.found", "Flow not found.", cid=cid, headers=rl)
    body: dict[str, Any] = {"id": flow.id, "name": flow.name, "type": flow.type.upper(), "version": flow.version}
    if flow.bot is not None:
        body["botFlowSettings"] = {"nluDomainId": domain_id(flow), "nluDomainVersionId": flow.version}
    return ok(body, cid, rl)


@requires(PERM_NLU)
async def _domain_version(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    flow = _bot_flow(state, request.path_params["domain_id"], request.path_params["version_id"])
    if flow is None or flow.bot is None:
        return error(state, 404, "not.found", "NLU domain version not found.", cid=cid, headers=rl)
    bot = flow.bot
    utterances = request.query_params.get("includeUtterances", "").lower() == "true"
    intents = [{"name": i.name, "entityNameReferences": list(i.slots),
                **({"utterances": [{"segments": [{"text": u}]} for u in i.utterances]} if utterances else {})}
               for i in bot.intents]
    return ok({"id": flow.version, "domain": {"id": domain_id(flow)}, "language": bot.language,
               "published": True, "intents": intents,
               "entities": [{"name": s.name, "type": s.type} for s in bot.slots.values()]}, cid, rl)


@requires(PERM_NLU)
async def _detect(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    flow = _bot_flow(state, request.path_params["domain_id"], request.path_params["version_id"])
    if flow is None or flow.bot is None:
        return error(state, 404, "not.found", "NLU domain version not found.", cid=cid, headers=rl)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return error(state, 400, "bad.request", "The body is not valid JSON.", cid=cid, headers=rl)
    text = (body.get("input") or {}).get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip() or len(text) > _MAX_TEXT:
        return invalid(state, cid, rl, f"input.text is required (1-{_MAX_TEXT} characters)", "input.text")
    bot = flow.bot
    intents = []
    for intent, probability in scores(bot, text):
        entities = [{"name": n, "entityType": bot.slots[n].type, "value": {"raw": v, "resolved": v}, "probability": 1.0}
                    for n in intent.slots if (v := extract(bot.slots[n].type, text, strict=True)) is not None]
        intents.append({"name": intent.name, "probability": probability, "entities": entities})
    state.count("nlu.detect")
    return ok({"version": {"id": flow.version, "domain": {"id": domain_id(flow)}},
               "input": {"text": text}, "output": {"intents": intents}}, cid, rl)


@requires(PERM_NLU)
async def _report(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    flow = _bot_flow(state, request.path_params["domain_id"], request.path_params["version_id"])
    if flow is None or flow.bot is None:
        return error(state, 404, "not.found", "NLU domain version not found.", cid=cid, headers=rl)
    matrix, summary = quality(flow.bot)
    rows = [{"name": name, "columns": [{"name": col, "value": round(n / max(1, sum(row.values())), 4)}
                                       for col, n in row.items()]} for name, row in matrix.items()]
    return ok({"version": {"id": flow.version, "domain": {"id": domain_id(flow)}}, "confusionMatrix": rows,
               "summary": {"metrics": [{"name": k, "value": v} for k, v in summary.items()]}}, cid, rl)


_DOMAIN = "/api/v2/languageunderstanding/domains/{domain_id}/versions/{version_id}"
ROUTES = [
    Route("/api/v2/flows/{flow_id}/latestconfiguration", _latest_configuration, methods=["GET"]),
    Route(_DOMAIN, _domain_version, methods=["GET"]),
    Route(_DOMAIN + "/detect", _detect, methods=["POST"]),
    Route(_DOMAIN + "/report", _report, methods=["GET"]),
]
