"""Bot analytics (API reference §9, §12): ``POST /api/v2/analytics/bots/aggregates/query`` over the simulator's bot
sessions — one bucket over the interval, grouped by the bot dimensions (there is no divisionId)."""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sim.platform.analytics import AnalyticsQueryError, check_filter, iso_ms, matches, parse_interval
from sim.platform.auth import Token
from sim.platform.bot_api import BotSession, BotSessions, bot_result
from sim.platform.http import SimState, error, ok, requires

__all__ = ["ROUTES", "PERM_BOT_ANALYTICS", "BOT_DIMENSIONS", "BOT_METRICS", "bot_aggregates", "bot_analytics"]

PERM_BOT_ANALYTICS = "analytics:botAggregate:view"
BOT_DIMENSIONS = ("botId", "botFlowType", "botResult", "botSessionId", "languageCode", "botVersion", "botFinalIntent")
BOT_METRICS = ("nBotSessions", "nBotSessionTurns", "tBotSession")


def _bot_row(s: BotSession) -> dict[str, str]:
    row = {"botId": s.flow.id, "botFlowType": "digitalbot", "botSessionId": s.id, "languageCode": s.language,
           "botVersion": s.flow.version}
    if (result := bot_result(s.dialog.ended)) is not None:
        row["botResult"] = result
    if s.dialog.intent is not None:
        row["botFinalIntent"] = s.dialog.intent.name
    return row


def bot_aggregates(body: Any, sessions: BotSessions) -> dict[str, Any]:
    """``POST /api/v2/analytics/bots/aggregates/query``: one bucket over the interval (no granularity)."""
    if not isinstance(body, dict):
        raise AnalyticsQueryError("body must be a JSON object")
    start, end = parse_interval(body.get("interval"))
    metrics = body.get("metrics")
    if not isinstance(metrics, list) or not metrics or any(m not in BOT_METRICS for m in metrics):
        raise AnalyticsQueryError(f"metrics: required, from {', '.join(BOT_METRICS)}")
    group_by = body.get("groupBy") or []
    if not isinstance(group_by, list) or any(g not in BOT_DIMENSIONS for g in group_by):
        raise AnalyticsQueryError(f"groupBy: dimensions from {', '.join(BOT_DIMENSIONS)} (there is no divisionId)")
    flt = body.get("filter")
    if flt is not None:
        check_filter(flt, dimensions=BOT_DIMENSIONS)
    groups: dict[tuple[tuple[str, str], ...], list[BotSession]] = {}
    for s in sessions:
        row = _bot_row(s)
        if start <= s.created_at < end and matches(flt, row):
            groups.setdefault(tuple((g, row.get(g, "")) for g in group_by), []).append(s)
    results = []
    for key, members in sorted(groups.items()):
        out = []
        for m in metrics:
            if m == "nBotSessions":
                out.append({"metric": m, "stats": {"count": len(members)}})
            elif m == "nBotSessionTurns":
                out.append({"metric": m, "stats": {"count": sum(len(s.turns) for s in members)}})
            else:
                ms = [(s.ended_at - s.created_at) * 1000 for s in members if s.ended_at is not None]
                if ms:
                    out.append({"metric": m, "stats": {"count": len(ms), "sum": round(math.fsum(ms)),
                                                       "min": round(min(ms)), "max": round(max(ms))}})
        results.append({"group": dict(key), "data": [{"interval": f"{iso_ms(start)}/{iso_ms(end)}", "metrics": out}]})
    return {"results": results} if results else {}


@requires(PERM_BOT_ANALYTICS)
async def bot_analytics(state: SimState, request: Request, _token: Token, cid: str, rl: dict[str, str]) -> Response:
    try:
        return ok(bot_aggregates(orjson.loads(await request.body()), state.bots), cid, rl)
    except orjson.JSONDecodeError:
        return error(state, 400, "bad.request", "The body is not valid JSON.", cid=cid, headers=rl)
    except AnalyticsQueryError as exc:
        return error(state, 400, "invalid.value", str(exc), cid=cid, headers=rl)


ROUTES = [Route("/api/v2/analytics/bots/aggregates/query", bot_analytics, methods=["POST"])]
