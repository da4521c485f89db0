"""One simulated customer's conversation with a digital bot flow (API reference §9): start a session, send
``NoOp`` while the bot says ``NoOp``, answer each ``WaitForInput`` with the script's next turn (after a think
time), stop at ``Exit`` or ``Disconnect`` — checking each scripted turn's expectations on the way.

Turns are never retried after a lost answer (the bot may have taken them: a retry would be out of order);
429 and 5xx answers are retried by the client as for launches, which the platform refuses before the turn
counts. The result becomes one ledger record per session (``sim.run.engine``).
"""

from __future__ import annotations

import math
import random
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from sim.load.breaks import broken
from sim.load.captures import apply_captures
from sim.load.utterances import pick_line
from sim.load.client import Attempt, FlowClient
from sim.load.identity import Identity
from sim.load.payload import execution_name, template_value
from sim.load.scenario import FlowSpec
from sim.load.script import TurnSpec, prompt_text

__all__ = ["Conversation", "converse", "session_body", "render", "SESSIONS_PATH", "TURNS_PER_BILLED_SESSION"]

SESSIONS_PATH = "/api/v2/textbots/botflows/sessions"
TURNS_PER_BILLED_SESSION = 8
"""The vendor bills digital bot sessions per session of up to this many turns (reference §9)."""
_MAX_NOOPS = 10
"""NoOp answers in a row before the client gives up on a bot that never asks for anything."""


def render(template: str, identity: Identity, *, seq: int, run_id: str, prefix: str, flow_id: str,
           captures: dict[str, str] | None = None) -> str:
    """A scripted sentence or input value with its placeholders filled (the launch inputs' fields, and
    ``{capture.<name>}``: what an earlier answer gave, ``sim.load.captures``; nothing when it gave nothing)."""
    out = []
    for literal, name, spec, _conversion in string.Formatter().parse(template):
        out.append(literal)
        if name and name.startswith("capture."):
            out.append((captures or {}).get(name[8:], ""))
        elif name:
            value = template_value(name, identity, seq=seq, run_id=run_id, prefix=prefix, flow_id=flow_id)
            out.append(format(value, spec or ""))
    return "".join(out)


def session_body(flow: FlowSpec, identity: Identity, *, seq: int, run_id: str, prefix: str) -> dict[str, Any]:
    """The TextBotFlowLaunchRequest: ``externalSessionId`` = ``<prefix>-<run>-<seq>``, the run id in the inputs."""
    variables = {k: render(v, identity, seq=seq, run_id=run_id, prefix=prefix, flow_id=flow.id) if isinstance(v, str)
                 else v for k, v in flow.input.items()}
    if flow.run_id_input:
        variables.setdefault(flow.run_id_input, run_id)
    body: dict[str, Any] = {"flow": {"id": flow.id}, "externalSessionId": execution_name(prefix, run_id, seq),
                            "channel": {"name": flow.channel, "inputModes": ["Text"], "outputModes": ["Text"],
                                        "userAgent": {"name": flow.user_agent}},
                            "inputData": {"variables": variables}}
    if flow.language:
        body["language"] = flow.language
    return body


@dataclass
class Conversation:
    """How a session went: its start (an Attempt), each turn, how it ended, what broke its script."""

    start: Attempt
    session_id: str | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)
    end: str = "not_started"
    """Exit / Disconnect (the bot ended it), or the harness's reason: not_started, turn_failed, script_ended,
    max_turns, interrupted, stalled (NoOp after NoOp)."""
    end_reason: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    """Broken expectations, each "turn N: ..."."""
    ended_at: float | None = None

    @property
    def billable_sessions(self) -> int:
        return math.ceil(len(self.turns) / TURNS_PER_BILLED_SESSION) if self.session_id else 0


def _turn_body(event: str, prev: str | None, text: str | None) -> bytes:
    body: dict[str, Any] = {"inputEventType": event}
    if prev:
        body["previousTurn"] = {"id": prev}
    if text is not None:
        body["inputEventUserInput"] = {"mode": "Text", "alternatives": [{"transcript": {"text": text,
                                                                                         "confidence": 1.0}}]}
    return orjson.dumps(body)


def _turn(n: int, event: str, text: str | None, a: Attempt, answer: dict[str, Any], found: list[dict[str, str]],
          step: int | None = None) -> dict[str, Any]:
    """One turn as the ledger keeps it: what was sent (``step``: its place in the script), how it was answered,
    what broke (``failed`` in words, ``broken`` as data: ``sim.load.breaks``)."""
    return {"n": n, "step": step, "event": event, "text": text, "status": a.status, "attempts": a.attempts,
            "attempt_statuses": list(a.statuses), "latency_ms": round(a.elapsed_ms, 3), "error": a.error,
            "next_action": answer.get("nextActionType"), "prompt": prompt_text(answer)[:200] if answer else None,
            "failed": [b["text"] for b in found],
            "broken": [{k: b[k] for k in ("check", "expected", "got")} for b in found]}


def _break(conv: Conversation, n: int, b: dict[str, str]) -> None:
    """A broken expectation of the session as a whole, kept on its last turn (the step the customer was at)."""
    conv.failures.append(f"turn {n}: {b['text']}")
    if conv.turns:
        conv.turns[-1]["failed"].append(b["text"])
        conv.turns[-1]["broken"].append({k: b[k] for k in ("check", "expected", "got")})


def _bot_ended(conv: Conversation, answer: dict[str, Any], n: int, *, unsaid: int) -> None:
    """The bot said Exit or Disconnect: how, with what output, and whether the script had more to say."""
    nat = answer.get("nextActionType")
    action = answer.get("nextActionExit") or answer.get("nextActionDisconnect") or {}
    conv.end, conv.end_reason = str(nat), action.get("reason")
    conv.output = (action.get("outputData") or {}).get("variables") or {}
    if unsaid:
        _break(conv, n, broken("ended", f"{unsaid} more scripted turn(s)", f"{nat} {conv.end_reason}",
                               f"the bot ended the session ({nat} {conv.end_reason}) with {unsaid} scripted turn(s) "
                               "unsaid"))


_BYE: tuple[str, str | None, TurnSpec | None] = ("UserDisconnect", None, None)


@dataclass
class _Customer:
    """What the simulated customer sends next, given the bot's last answer."""

    script_left: list[TurnSpec]
    rng: random.Random
    think_time_s: float
    max_turns: int
    stopping: Callable[[], bool]
    sleep: Callable[[float], None]
    say: Callable[[str], str]
    noops: int = 0
    step: int = 0
    """The scripted turn said last (1-based)."""
    seq: int = 0

    def next(self, conv: Conversation, nat: Any, n: int) -> tuple[str, str | None, TurnSpec | None]:
        """NoOp while the bot says NoOp (up to a limit), the script's next line when it waits for input (after a
        think time), or goodbye: at max_turns, at the stop, when stalled, when the script has nothing more."""
        if len(conv.turns) >= self.max_turns or self.stopping():
            conv.end = "max_turns" if len(conv.turns) >= self.max_turns else "interrupted"
            return _BYE
        if nat == "NoOp":
            self.noops += 1
            if self.noops > _MAX_NOOPS:
                conv.end = "stalled"
                return _BYE
            return "NoOp", None, None
        self.noops = 0
        if not self.script_left:  # the bot still waits, the script has nothing more to say
            _break(conv, n, broken("still_waiting", "Exit or Disconnect", nat,
                                   "the bot still waits for input after the last scripted turn"))
            conv.end = "script_ended"
            return _BYE
        spec = self.script_left.pop(0)
        self.step += 1
        if self.think_time_s > 0:
            self.sleep(self.think_time_s * self.rng.uniform(0.5, 1.5))
            if self.stopping():
                conv.end = "interrupted"
                return _BYE
        return spec.event, self.say(pick_line(spec.say, spec.pick, self.rng, self.seq)) if spec.say else None, spec


def converse(client: FlowClient, body: dict[str, Any], script: tuple[TurnSpec, ...], *, identity: Identity,
             seq: int, run_id: str, prefix: str, rng: random.Random, think_time_s: float, max_turns: int,
             stopping: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep,
             not_after: float | None = None,
             on_started: Callable[[Conversation], None] = lambda _conv: None) -> Conversation:
    """Run one session to its end (or the harness's limit); never raises for what the platform answers.
    ``not_after``: the session start is not sent later than this (epoch s). ``on_started`` is called once the
    start is answered (the conversation object then grows turn by turn). After a failed turn the session is
    closed with ``UserDisconnect`` (best effort): a session left open would linger, billable, on the platform."""
    start = client.request("POST", SESSIONS_PATH, "bot session start", body=orjson.dumps(body), retry_transport=False,
                           not_after=not_after)
    conv = Conversation(start=start)
    if start.status == 200 and isinstance(start.body, dict) and start.body.get("id"):
        conv.session_id = str(start.body["id"])
    on_started(conv)
    if conv.session_id is None:
        conv.ended_at = client.wall()
        return conv
    sid = conv.session_id
    path = f"{SESSIONS_PATH}/{sid}/turns"
    flow_id = body["flow"]["id"]
    captures: dict[str, str] = {}
    customer = _Customer(list(script), rng=rng, think_time_s=think_time_s, max_turns=max_turns, stopping=stopping, seq=seq,
                         sleep=sleep, say=lambda line: render(line, identity, seq=seq, run_id=run_id, prefix=prefix,
                                                              flow_id=flow_id, captures=captures))
    prev: str | None = None
    event, text, spec = "NoOp", None, None
    while True:
        a = client.request("POST", path, "bot turn", body=_turn_body(event, prev, text), retry_transport=False)
        answer = a.body if a.status == 200 and isinstance(a.body, dict) else {}
        nat = answer.get("nextActionType")
        n = len(conv.turns) + 1
        found: list[dict[str, str]] = spec.expect.failures(answer) if spec is not None and answer else []
        if spec is not None and answer and spec.expect.capture:
            found += apply_captures(spec.expect.capture, prompt_text(answer), captures)
        conv.turns.append(_turn(n, event, text, a, answer, found, customer.step if spec is not None else None))
        if spec is not None and spec.expect.nlu:  # checked after the run, against the platform's reporting turns
            e = spec.expect
            conv.turns[-1]["nlu"] = {"intent": e.intent, "intent_confidence": e.intent_confidence,
                                     "slots": {k: customer.say(v) for k, v in e.slots.items()},
                                     "ask_action_result": e.ask_action_result}
        conv.failures.extend(f"turn {n}: {b['text']}" for b in found)
        if event == "UserDisconnect" and spec is None:  # the harness's own goodbye: conv.end says why
            break
        if a.status != 200 or not answer.get("id"):
            conv.end, conv.end_reason = "turn_failed", f"HTTP {a.status} {a.error or ''}".strip()
            if event != "UserDisconnect":  # say goodbye so the session does not linger (no retry: best effort)
                bye = client.request("POST", path, "bot turn", body=_turn_body("UserDisconnect", prev, None),
                                     retry_transport=False)
                conv.turns.append(_turn(n + 1, "UserDisconnect", None, bye, {}, []))
            break
        prev = str(answer["id"])
        if nat in ("Exit", "Disconnect"):
            _bot_ended(conv, answer, n, unsaid=len(customer.script_left))
            break
        event, text, spec = customer.next(conv, nat, n)
    conv.ended_at = client.wall()
    return conv
