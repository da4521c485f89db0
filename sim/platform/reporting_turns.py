"""What the platform tells about each bot turn after the fact (API reference §12):
``GET /api/v2/analytics/botflows/{botFlowId}/divisions/reportingturns`` — every turn of the bot flow's sessions,
with what the user said, what the bot prompted, the ask action and its result, and the recognised intent with its
confidence and slots (from the dialog engine that answered the turn, ``sim.platform.bots``). A turn can be read
``reporting_lag_s`` after it happened (the bot's setting): analytics lag behind the conversation.

[U] choices, documented here because no source confirms them: the permission is
``analytics:botFlowReportingTurn:view``; ``interval`` is required; turns are listed in the order they happened,
``pageSize`` 1-250 (default 50), the next page by the ``after`` cursor that ``nextUri`` carries; ``sessionId`` and
``askActionResults`` (comma separated) filter.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sim.platform.analytics import AnalyticsQueryError, iso_ms, parse_interval
from sim.platform.auth import Token
from sim.platform.http import SimState, error, invalid, ok, requires

__all__ = ["ROUTES", "PERM_REPORTING_TURNS", "reporting_turn"]

PERM_REPORTING_TURNS = "analytics:botFlowReportingTurn:view"
_MAX_PAGE = 250


def reporting_turn(session: Any, turn: dict[str, Any]) -> dict[str, Any]:
    """A ReportingTurn from one of the simulator's session turns."""
    u = turn.get("understood") or {}
    out: dict[str, Any] = {"sessionId": session.id, "userInput": turn.get("text") or "",
                           "botPrompts": list(turn.get("prompts") or []), "dateCreated": iso_ms(turn["at"]),
                           "dateCompleted": iso_ms(turn["at"])}
    for key in ("askAction", "askActionResult", "intent"):
        if key in u:
            out[key] = u[key]
    if turn.get("nextActionType") in ("Exit", "Disconnect") and session.dialog.ended is not None:
        out["sessionEndDetails"] = {"type": session.dialog.ended["type"], "reason": session.dialog.ended["reason"]}
    return out


def _turns(state: SimState, flow_id: str, q: Any) -> tuple[list[dict[str, Any]], int, int]:
    start, end = parse_interval(q.get("interval"))
    size = int(q.get("pageSize", "50")) if str(q.get("pageSize", "50")).isdigit() else -1
    if not 1 <= size <= _MAX_PAGE:
        raise AnalyticsQueryError(f"pageSize: 1-{_MAX_PAGE}")
    after = q.get("after", "0")
    if not str(after).isdigit():
        raise AnalyticsQueryError("after: not a cursor this API gave")
    wanted_session = q.get("sessionId")
    results = {r for r in (q.get("askActionResults") or "").split(",") if r}
    now = state.clock()
    found = []
    for s in state.bots:
        if s.flow.id != flow_id or (wanted_session and s.id != wanted_session):
            continue
        lag = s.dialog.bot.reporting_lag_s
        for t in s.turns:
            if start <= t["at"] < end and now - t["at"] >= lag:
                rt = reporting_turn(s, t)
                if not results or rt.get("askActionResult") in results:
                    found.append((t["at"], rt))
    found.sort(key=lambda r: r[0])  # stable: a session's turns in one millisecond keep their order
    return [rt for _at, rt in found], int(after), size


@requires(PERM_REPORTING_TURNS)
async def _reporting_turns(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    flow_id = request.path_params["bot_flow_id"]
    flow = state.org.flow(flow_id)
    if flow is None or flow.bot is None:
        return error(state, 404, "not.found", f"Bot flow {flow_id[:64]!r} not found.", cid=cid, headers=rl)
    q = request.query_params
    try:
        found, after, size = _turns(state, flow_id, q)
    except AnalyticsQueryError as exc:
        return invalid(state, cid, rl, str(exc), str(exc).split(":", 1)[0])
    page = found[after:after + size]
    body: dict[str, Any] = {"entities": page}
    if after + size < len(found):
        params = {k: v for k, v in q.items() if k != "after"} | {"after": str(after + size)}
        body["nextUri"] = f"{request.url.path}?{urlencode(params)}"
    return ok(body, cid, rl)


ROUTES = [Route("/api/v2/analytics/botflows/{bot_flow_id}/divisions/reportingturns", _reporting_turns,
                methods=["GET"])]
