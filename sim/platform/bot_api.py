"""The textbots endpoints (API reference §9): bot flow sessions and their turns, and the admin listing
``/_sim/botsessions`` (their analytics: ``sim.platform.bot_analytics``). Same authentication, per-token rate limits and faults as the
launch endpoint; the dialog itself is ``sim.platform.bots``.

[U] choices, documented here because no source confirms them: an unknown flow is 404
``architect.flow.not.found`` and a flow of another type 400 ``invalid.value`` (as for launches); a turn
whose ``previousTurn`` is not the session's latest turn is 400 ``bad.request``; a turn on an ended session
is 400 ``invalid.value``; an unknown session is 404 ``not.found``.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sim.platform.analytics import iso_ms
from sim.platform.auth import Token
from sim.platform.bots import INPUT_EVENTS, Dialog, TurnRefused
from sim.platform.executions import draw_latency_s
from sim.platform.http import JSON, SimState, error, flow_faults, invalid, ok, paging, read_json, requires
from sim.platform.org import Flow, Latency, Org

__all__ = ["BotSessions", "BotSession", "ROUTES", "PERM_BOT_SESSION", "bot_result", "CHANNELS", "USER_AGENTS",
           "launch_session", "post_turn", "sim_bot_sessions"]

PERM_BOT_SESSION = "textbots:botFlowSession:execute"
CHANNELS = ("Chat", "Call", "Messaging")
USER_AGENTS = ("Phone", "SMS", "GenesysWebWidget", "FacebookMessenger", "WeChat", "Whatsapp", "AppleBusinessChat",
               "Apple", "Telegram", "Slack", "Signal", "Line", "Discord", "TwitterDirectMessage", "Open", "Instagram",
               "Other", "Unknown")
_LAUNCH_FIELDS = frozenset({"flow", "externalSessionId", "conversationId", "inputData", "channel", "language"})
_TURN_FIELDS = frozenset({"previousTurn", "inputEventType", "inputEventUserInput", "inputEventRichMedia",
                          "inputEventError"})


def bot_result(ended: dict[str, Any] | None) -> str | None:
    """The analytics ``botResult`` of an ended session (values of the SDK's BotFlowSession.botResult)."""
    if ended is None:
        return None
    kind, reason = ended["type"], ended["reason"]
    if kind == "Exit":
        return {"TriggeredByUser": "ExitRequestedByUser", "AgentRequestedByUser": "ExitRequestedByUser",
                "TriggeredByFlow": "ExitRequestedByBot", "Error": "ExitError",
                "RecognitionFailure": "ExitRecognitionFailure"}.get(reason, "Unknown")
    return {"TriggeredByUser": "DisconnectRequestedByUser", "TriggeredByFlow": "DisconnectRequestedByBot",
            "SessionExpired": "DisconnectSessionExpired", "Error": "DisconnectError",
            "RecognitionFailure": "DisconnectRecognitionFailure"}.get(reason, "Unknown")


@dataclass
class BotSession:
    id: str
    flow: Flow
    external_session_id: str
    client_id: str
    channel: dict[str, Any]
    language: str
    input_data: dict[str, Any]
    conversation_id: str | None
    created_at: float
    dialog: Dialog
    last_at: float = 0.0
    turns: list[dict[str, Any]] = field(default_factory=list)
    """id, inputEventType, text, nextActionType of each turn; its prompts, what it understood and when (its
    reporting turn: ``sim.platform.reporting_turns``)."""
    ended_at: float | None = None
    output: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "externalSessionId": self.external_session_id, "flowId": self.flow.id,
                "divisionId": self.flow.division_id, "clientId": self.client_id, "channel": self.channel,
                "language": self.language, "inputData": self.input_data, "conversationId": self.conversation_id,
                "dateCreated": iso_ms(self.created_at), "turns": self.turns, "ended": self.dialog.ended,
                "botResult": bot_result(self.dialog.ended),
                "dateEnded": iso_ms(self.ended_at) if self.ended_at is not None else None,
                "outputData": self.output}


class BotSessions:
    """Sessions by id, oldest evicted beyond the org's store limit."""

    def __init__(self, org: Org, *, clock: Callable[[], float], rng: random.Random) -> None:
        self.org, self.clock, self.rng = org, clock, rng
        self._by_id: OrderedDict[str, BotSession] = OrderedDict()
        self.max = org.settings.store_max_executions
        self.evicted = 0

    def add(self, s: BotSession) -> None:
        self._by_id[s.id] = s
        while len(self._by_id) > self.max:
            self._by_id.popitem(last=False)
            self.evicted += 1

    def get(self, session_id: str) -> BotSession | None:
        return self._by_id.get(session_id)

    def __iter__(self) -> Any:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)


@requires(PERM_BOT_SESSION)
async def launch_session(state: SimState, request: Request, token: Token, cid: str, rl: dict[str, str]) -> Response:
    got = await read_json(state, request, cid, rl, "TextBotFlowLaunchRequest")
    if isinstance(got, JSON):
        return got
    body = got[1]
    unknown = sorted(set(body) - _LAUNCH_FIELDS)
    if unknown and state.org.settings.strict_unknown_fields:
        return invalid(state, cid, rl, f"Unrecognized field '{unknown[0]}' in TextBotFlowLaunchRequest", unknown[0])
    flow_ref, ext = body.get("flow"), body.get("externalSessionId")
    if not isinstance(flow_ref, dict) or not isinstance(flow_ref.get("id"), str) or not flow_ref["id"]:
        return invalid(state, cid, rl, "flow.id is required (the id of a digital bot flow).", "flow.id")
    if not isinstance(ext, str) or not ext or len(ext) > 256:
        return invalid(state, cid, rl, "externalSessionId is required (a string of 1-256 characters).",
                    "externalSessionId")
    channel = body.get("channel")
    if not isinstance(channel, dict) or channel.get("name") not in CHANNELS:
        return invalid(state, cid, rl, f"channel.name is required, one of {', '.join(CHANNELS)}.", "channel.name")
    agent = channel.get("userAgent")
    if agent is not None and (not isinstance(agent, dict) or agent.get("name") not in USER_AGENTS):
        return invalid(state, cid, rl, f"channel.userAgent.name must be one of {', '.join(USER_AGENTS)}.",
                    "channel.userAgent.name")
    for key in ("inputModes", "outputModes"):
        modes = channel.get(key)
        if modes is not None and (not isinstance(modes, list) or not all(isinstance(m, str) for m in modes)):
            return invalid(state, cid, rl, f"channel.{key} must be a list of strings.", f"channel.{key}")
    input_data = body.get("inputData") or {}
    if not isinstance(input_data, dict) or not isinstance(input_data.get("variables", {}), dict):
        return invalid(state, cid, rl, "inputData must be {\"variables\": {...}}.", "inputData")
    for key in ("language", "conversationId"):
        if body.get(key) is not None and not isinstance(body[key], str):
            return invalid(state, cid, rl, f"{key} must be a string.", key)
    flow = state.org.flow(flow_ref["id"])
    if flow is None:
        return error(state, 404, "architect.flow.not.found", f"Flow {flow_ref['id']} could not be found.", cid=cid,
                     headers=rl, params={"flowId": flow_ref["id"]})
    if flow.type != "digitalbot" or flow.bot is None:
        return invalid(state, cid, rl, f"Flow '{flow.name}' is of type {flow.type}; only digital bot flows can start "
                                    "a bot flow session.", "flow.id")
    failed = await flow_faults(state, flow, cid)
    if failed is not None:
        return failed
    now = state.clock()
    session = BotSession(id=state.new_id(), flow=flow, external_session_id=ext, client_id=token.client.id,
                         channel=channel, language=body.get("language") or flow.bot.language,
                         input_data=input_data.get("variables", {}), conversation_id=body.get("conversationId"),
                         created_at=now, last_at=now, dialog=Dialog(flow.bot))
    state.bots.add(session)
    state.count("bot.session.started")
    return ok({"id": session.id}, cid, rl)


def _turn_event(body: dict[str, Any]) -> tuple[str, str | None]:
    """The event type and the user's text; TurnRefused for a body the platform refuses."""
    unknown = sorted(set(body) - _TURN_FIELDS)
    if unknown:
        raise TurnRefused(400, "invalid.value", f"Unrecognized field '{unknown[0]}' in TextBotFlowTurnRequest",
                          unknown[0])
    event = body.get("inputEventType")
    if event not in INPUT_EVENTS:
        raise TurnRefused(400, "invalid.value", f"inputEventType is required, one of {', '.join(INPUT_EVENTS)}.",
                          "inputEventType")
    if event != "UserInput":
        return event, None
    user: Any = body.get("inputEventUserInput")
    try:
        text = user["alternatives"][0]["transcript"]["text"]
        if user.get("mode", "Text") != "Text" or not isinstance(text, str):
            raise TypeError
    except (KeyError, IndexError, TypeError, AttributeError):
        raise TurnRefused(400, "invalid.value", "A UserInput turn needs inputEventUserInput {mode: \"Text\", "
                          "alternatives: [{transcript: {text}}]}.", "inputEventUserInput") from None
    return event, text


def _take_turn(state: SimState, session: BotSession, body: dict[str, Any]) -> dict[str, Any]:
    """Check the turn against the session, advance the dialog: the TextBotFlowTurnResponse."""
    event, text = _turn_event(body)
    latest = session.turns[-1]["id"] if session.turns else None
    prev = body.get("previousTurn")
    prev_id = prev.get("id") if isinstance(prev, dict) else prev
    if prev is not None and prev_id != latest:
        raise TurnRefused(400, "bad.request", f"previousTurn.id {str(prev_id)[:64]!r} is not this session's latest "
                          f"turn ({latest or 'none yet'}): turns must be sent in order.", "previousTurn.id")
    if session.dialog.ended is not None:
        raise TurnRefused(400, "invalid.value", f"Bot flow session {session.id} has ended "
                          f"({session.dialog.ended['type']}: {session.dialog.ended['reason']}).", "sessionId")
    now = state.clock()
    bot = session.dialog.bot
    if now - session.last_at > bot.session_ttl_s:
        answer = session.dialog.turn("ClientSessionExpired", None)
    else:
        answer = session.dialog.turn(event, text)
    session.last_at = now
    turn_id = state.new_id()
    out: dict[str, Any] = {"id": turn_id}
    if latest:
        out["previousTurn"] = {"id": latest}
    out["prompts"] = {"outputLanguage": session.language,
                      "textPrompts": {"segments": [{"text": p, "type": "Text"} for p in answer["prompts"]]}}
    for key in ("nextActionType", "nextActionWaitForInput", "nextActionExit", "nextActionDisconnect"):
        if key in answer:
            out[key] = answer[key]
    session.turns.append({"id": turn_id, "inputEventType": event, "text": text, "nextActionType": answer["nextActionType"],
                          "prompts": list(answer["prompts"]), "understood": dict(session.dialog.understood),
                          "at": now})
    if session.dialog.ended is not None:
        session.ended_at = now
        session.output = answer.get("nextActionExit", {}).get("outputData")
        state.count("bot.session.ended")
    return out


@requires(PERM_BOT_SESSION)
async def post_turn(state: SimState, request: Request, _token: Token, cid: str, rl: dict[str, str]) -> Response:
    session = state.bots.get(request.path_params["session_id"])
    if session is None:
        return error(state, 404, "not.found", "The requested bot flow session could not be found.", cid=cid,
                     headers=rl)
    got = await read_json(state, request, cid, rl, "TextBotFlowTurnRequest")
    if isinstance(got, JSON):
        return got
    body = got[1]
    failed = await flow_faults(state, session.flow, cid)
    if failed is not None:
        return failed
    try:
        answer = _take_turn(state, session, body)  # at arrival: a second request with the same previousTurn is refused
    except TurnRefused as exc:
        details = [{"fieldName": exc.field, "errorCode": exc.code}] if exc.field else None
        return error(state, exc.status, exc.code, str(exc), cid=cid, headers=rl, details=details)
    state.count("bot.turn.served")
    bot = session.dialog.bot
    await asyncio.sleep(draw_latency_s(Latency(median_ms=bot.turn_latency_ms[0], p99_ms=bot.turn_latency_ms[1]),
                                       state.rng))
    return ok(answer, cid, rl)


async def sim_bot_sessions(request: Request) -> Response:
    """Admin: the bot sessions received, filtered by ``external_prefix`` / ``flow_id``, paged."""
    state: SimState = request.app.state.sim
    q = request.query_params
    prefix, flow_id = q.get("external_prefix"), q.get("flow_id")
    paged = paging(state, q)
    if isinstance(paged, JSON):
        return paged
    limit, offset = paged
    matched = [s for s in state.bots if (prefix is None or s.external_session_id.startswith(prefix))
               and (flow_id is None or s.flow.id == flow_id)]
    return JSON({"total": len(matched), "offset": offset, "limit": limit, "stored": len(state.bots),
                 "evicted": state.bots.evicted, "entities": [s.record() for s in matched[offset:offset + limit]]})


ROUTES = [
    Route("/api/v2/textbots/botflows/sessions", launch_session, methods=["POST"]),
    Route("/api/v2/textbots/botflows/sessions/{session_id}/turns", post_turn, methods=["POST"]),
    Route("/_sim/botsessions", sim_bot_sessions, methods=["GET"]),
]
