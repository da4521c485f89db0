"""Conversation scripts: what a simulated customer says to a digital bot flow, turn by turn, and what each
answer is expected to be (``[[flows.turns]]`` of a ``kind = "conversation"`` scenario). Data only: the
conversation itself is ``sim.load.conversation``.

A turn says one of its alternatives (chosen at random, seeded per session), templated from the identity
and the run like launch inputs (``"my name is {identity.full_name}"``), when the bot waits for input. Its
``expect`` is checked against the bot's answer to it.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from typing import Any

from sim._toml import TableReader
from sim.load.breaks import broken
from sim.load.captures import check_lines, parse_captures, pattern
from sim.load.utterances import lines_for

__all__ = ["TurnSpec", "Expect", "parse_turns", "NEXT_ACTIONS", "TURN_EVENTS", "CHANNELS", "USER_AGENTS",
           "END_REASONS", "ASK_ACTION_RESULTS", "prompt_text"]

NEXT_ACTIONS = ("NoOp", "Disconnect", "WaitForInput", "Exit")
TURN_EVENTS = ("UserInput", "NoInput", "NoMatch", "UserDisconnect")
"""What a scripted turn may send (NoOp turns are the client's own, never scripted)."""
CHANNELS = ("Chat", "Call", "Messaging")
USER_AGENTS = ("Phone", "SMS", "GenesysWebWidget", "FacebookMessenger", "WeChat", "Whatsapp", "AppleBusinessChat",
               "Apple", "Telegram", "Slack", "Signal", "Line", "Discord", "TwitterDirectMessage", "Open", "Instagram",
               "Other", "Unknown")
"""TextBotUserAgent.name (docs/textbots-api.md)."""
ASK_ACTION_RESULTS = (
    "AgentRequestedByUser", "ConfirmationRequired", "DisambiguationRequired", "Error", "ExpressionError",
    "NoInputCollection", "NoInputConfirmation", "NoInputDisambiguation", "NoMatchCollection", "NoMatchConfirmation",
    "NoMatchDisambiguation", "SuccessCollection", "SkippedCollection", "SuccessConfirmationYes",
    "SuccessConfirmationNo", "SuccessDisambiguation", "SuccessDisambiguationNone")
"""A reporting turn's askActionResult (API reference §12)."""
END_REASONS = ("TriggeredByUser", "AgentRequestedByUser", "TriggeredByFlow", "Error", "RecognitionFailure",
               "SessionExpired")
"""Reasons of an Exit (all but SessionExpired) or a Disconnect (all but AgentRequestedByUser)."""


@dataclass(frozen=True, kw_only=True)
class Expect:
    """What the bot's answer to a turn must be; None: not checked."""

    next_action: str | None = None
    prompt_contains: str | None = None
    """Case-insensitive, in the answer's prompts joined with spaces."""
    exit_reason: str | None = None
    """The reason of the Exit or Disconnect action."""
    output: dict[str, str] = field(default_factory=dict)
    """Exit output variables that must have these values."""
    regex: str | None = None
    """Searched (any case) in the answer's prompts."""
    not_contains: str | None = None
    one_of: tuple[str, ...] = ()
    """At least one of these is in the prompts (any case)."""
    capture: dict[str, str] = field(default_factory=dict)
    """Values taken from the prompts for later lines (``sim.load.captures``)."""
    intent: str | None = None
    """Checked after the run against the platform's reporting turn (``sim.results.turn_check``), like the rest of
    this group: the intent recognised, its confidence at least this, these slot values (templated), this result."""
    intent_confidence: float | None = None
    slots: dict[str, str] = field(default_factory=dict)
    ask_action_result: str | None = None

    @property
    def nlu(self) -> bool:
        """Anything to check against the platform's reporting turns after the run."""
        return bool(self.intent or self.intent_confidence is not None or self.slots or self.ask_action_result)

    def failures(self, answer: dict[str, Any]) -> list[dict[str, str]]:
        """What in ``answer`` (a TextBotFlowTurnResponse) breaks this expectation (``sim.load.breaks.broken``)."""
        out = []
        nat = answer.get("nextActionType")
        if self.next_action is not None and nat != self.next_action:
            out.append(broken("next_action", self.next_action, nat, f"next action {nat}, expected {self.next_action}"))
        prompt = prompt_text(answer)
        if self.prompt_contains is not None and self.prompt_contains.lower() not in prompt.lower():
            out.append(broken("prompt_contains", self.prompt_contains, prompt,
                              f"prompt {prompt[:120]!r} does not contain {self.prompt_contains!r}"))
        if self.regex is not None and re.search(self.regex, prompt, re.IGNORECASE) is None:
            out.append(broken("regex", self.regex, prompt, f"prompt {prompt[:120]!r} does not match /{self.regex}/"))
        if self.not_contains is not None and self.not_contains.lower() in prompt.lower():
            out.append(broken("not_contains", self.not_contains, prompt,
                              f"prompt {prompt[:120]!r} contains {self.not_contains!r}"))
        if self.one_of and not any(o.lower() in prompt.lower() for o in self.one_of):
            out.append(broken("one_of", list(self.one_of), prompt,
                              f"prompt {prompt[:120]!r} contains none of {list(self.one_of)!r}"))
        action = answer.get("nextActionExit") or answer.get("nextActionDisconnect") or {}
        if self.exit_reason is not None and action.get("reason") != self.exit_reason:
            out.append(broken("exit_reason", self.exit_reason, action.get("reason"),
                              f"exit reason {action.get('reason')}, expected {self.exit_reason}"))
        variables = (answer.get("nextActionExit") or {}).get("outputData", {}).get("variables", {})
        for k, v in self.output.items():
            if str(variables.get(k)) != v:
                out.append(broken(f"output {k}", v, variables.get(k), f"output {k} = {variables.get(k)!r}, expected {v!r}"))
        return out


def prompt_text(answer: dict[str, Any]) -> str:
    segments = ((answer.get("prompts") or {}).get("textPrompts") or {}).get("segments") or []
    return " ".join(str(s.get("text", "")) for s in segments if isinstance(s, dict))


@dataclass(frozen=True, kw_only=True)
class TurnSpec:
    say: tuple[str, ...] = ()
    """Alternatives, one chosen at random per session; templates like launch inputs."""
    event: str = "UserInput"
    expect: Expect = Expect()
    pick: str = "random"
    """How a conversation picks its line from ``say``: at random, or ``cycle`` (the seq-th: ``sim.load.utterances``)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TurnSpec:
        e = dict(d.get("expect", {}))
        e["one_of"] = tuple(e.get("one_of", ()))
        return cls(say=tuple(d.get("say", ())), event=d.get("event", "UserInput"), expect=Expect(**e),
                   pick=d.get("pick", "random"))


def parse_turns(r: TableReader, template_fields: tuple[str, ...], sets: dict[str, tuple[str, ...]] | None = None,
                seed: int | None = None) -> tuple[TurnSpec, ...]:
    turns = []
    captured: set[str] = set()
    for t in r.list_of_tables("turns"):
        t.check_keys({"say", "event", "expect", "say_from", "pick"})
        event = t.get("event", str, "UserInput", choices=TURN_EVENTS)
        from_set = lines_for(t, sets or {}, seed)
        say = list(from_set[0]) if from_set else t.get("say", (list, str), [])
        say = [say] if isinstance(say, str) else say
        if not all(isinstance(s, str) and s.strip() for s in say) or (event == "UserInput" and not say):
            raise t.fail("say", "a UserInput turn needs what the customer says: a sentence or a list of alternatives "
                                "(non-empty strings)")
        check_lines(t, "say", say, template_fields, captured)
        e = t.sub("expect")
        expect = Expect()
        if e is not None:
            e.check_keys({"next_action", "prompt_contains", "exit_reason", "output", "regex", "not_contains", "one_of",
                          "capture", "intent", "intent_confidence", "slots", "ask_action_result"})
            slots = {str(k): str(v) for k, v in e.get("slots", dict, {}).items()}
            check_lines(e, "slots", list(slots.values()), template_fields, captured)
            out = e.get("output", dict, {})
            one_of = e.get("one_of", (list, str), [])
            one_of = [one_of] if isinstance(one_of, str) else one_of
            if not all(isinstance(o, str) and o for o in one_of):
                raise e.fail("one_of", "must be a string or a list of non-empty strings")
            expect = Expect(next_action=e.get("next_action", str, None, choices=NEXT_ACTIONS),
                            prompt_contains=e.get("prompt_contains", str, None),
                            exit_reason=e.get("exit_reason", str, None, choices=END_REASONS),
                            output={k: str(v) for k, v in out.items()}, regex=pattern(e, "regex"),
                            not_contains=e.get("not_contains", str, None), one_of=tuple(one_of),
                            capture=parse_captures(e), intent=e.get("intent", str, None),
                            intent_confidence=e.get("intent_confidence", float, None, minimum=0.0, maximum=1.0),
                            slots=slots, ask_action_result=e.get("ask_action_result", str, None,
                                                                 choices=ASK_ACTION_RESULTS))
            captured |= set(expect.capture)
        turns.append(TurnSpec(say=tuple(say), event=event, expect=expect, pick=from_set[1] if from_set else "random"))
    return tuple(turns)
