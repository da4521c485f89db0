"""Digital bot flows in the simulated org: their definition (from the org TOML) and the dialog a session
runs through, turn by turn (API reference §9). Pure: no I/O, the clock is passed in.

A bot greets, asks what the user wants, recognises an intent from its example utterances (word overlap,
deterministic), fills the intent's slots (from the same utterance when it already says them, else by
asking), confirms, and exits with the slots as output variables — or exits at once for an intent that
hands over (``exit_reason = "AgentRequestedByUser"``). No-match and no-input are re-asked up to the
retries, then the bot gives up (Exit, ``RecognitionFailure``) [U: the reason a real flow gives depends
on its design]. A session idle past its TTL ends with Disconnect ``SessionExpired``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim._toml import TableReader
from sim.platform.nlu import MIN_CONFIDENCE, extract, match_intent, score_intent, words

__all__ = ["BotDefinition", "Intent", "Slot", "Dialog", "TurnRefused", "parse_bot", "SLOT_TYPES", "INPUT_EVENTS",
           "extract", "match_intent"]  # extract and match_intent: re-exported from sim.platform.nlu

SLOT_TYPES = ("text", "number", "email", "name", "phone", "yesno")
INPUT_EVENTS = ("NoOp", "UserInput", "RichMediaInput", "Error", "NoMatch", "NoInput", "UserDisconnect",
                "ClientSessionExpired")
_EXIT_REASONS = ("TriggeredByUser", "AgentRequestedByUser", "TriggeredByFlow", "Error", "RecognitionFailure")


@dataclass(frozen=True, kw_only=True)
class Slot:
    name: str
    type: str
    prompt: str


@dataclass(frozen=True, kw_only=True)
class Intent:
    name: str
    utterances: tuple[str, ...]
    slots: tuple[str, ...] = ()
    confirm: str = ""
    """Asked once every slot is filled ("{slot}" placeholders); empty: no confirmation."""
    done: str = "Done."
    exit_reason: str = "TriggeredByFlow"
    outputs: dict[str, str] = field(default_factory=dict)
    """Output variables set on exit, besides the slots (``Slot.<name>``)."""


@dataclass(frozen=True, kw_only=True)
class BotDefinition:
    language: str = "en-us"
    welcome: str = ""
    """A first prompt answered with nextActionType NoOp (the client sends NoOp again); empty: none."""
    ask: str = "What can I help you with?"
    no_match: str = "Sorry, I didn't understand."
    no_input: str = "Sorry, I didn't hear from you."
    retries: int = 2
    """No-match / no-input re-asks of one question before the bot gives up."""
    no_input_timeout_ms: int = 30_000
    session_ttl_s: float = 600.0
    turn_latency_ms: tuple[float, float] = (20.0, 150.0)
    """(median, p99) of the time a turn takes."""
    reporting_lag_s: float = 0.0
    """How long after a turn its reporting turn can be read (analytics lag behind the conversation)."""
    intents: tuple[Intent, ...] = ()
    slots: dict[str, Slot] = field(default_factory=dict)


def parse_bot(r: TableReader) -> BotDefinition:
    r.check_keys({"language", "welcome", "ask", "no_match", "no_input", "retries", "no_input_timeout_ms",
                  "session_ttl_s", "turn_latency_ms", "intents", "slots", "reporting_lag_s"})
    slots: dict[str, Slot] = {}
    slots_r = r.sub("slots")
    for name in (slots_r.table if slots_r else {}):
        s = slots_r.sub(name) if slots_r else None
        assert s is not None
        s.check_keys({"type", "prompt"})
        slots[name] = Slot(name=name, type=s.get("type", str, "text", choices=SLOT_TYPES),
                           prompt=s.get("prompt", str, f"What is your {name.replace('_', ' ')}?"))
    intents = []
    for i in r.list_of_tables("intents"):
        i.check_keys({"name", "utterances", "slots", "confirm", "done", "exit_reason", "outputs"})
        utterances = i.get("utterances", list)
        if not utterances or not all(isinstance(u, str) and words(u) for u in utterances):
            raise i.fail("utterances", "must be a non-empty list of example sentences")
        wanted = i.get("slots", list, [])
        unknown = [s for s in wanted if s not in slots]
        if unknown:
            raise i.fail("slots", f"unknown slot {unknown[0]!r}; define it under [flows.bot.slots]")
        outputs = i.sub("outputs")
        intents.append(Intent(name=i.get("name", str), utterances=tuple(utterances), slots=tuple(wanted),
                              confirm=i.get("confirm", str, ""), done=i.get("done", str, "Done."),
                              exit_reason=i.get("exit_reason", str, "TriggeredByFlow", choices=_EXIT_REASONS),
                              outputs={k: str(v) for k, v in (outputs.table if outputs else {}).items()}))
    if not intents:
        raise r.fail("intents", "a bot needs at least one [[flows.bot.intents]]")
    lat = r.get("turn_latency_ms", dict, {"median": 20.0, "p99": 150.0})
    try:
        median, p99 = float(lat["median"]), float(lat["p99"])
    except (KeyError, TypeError, ValueError):
        raise r.fail("turn_latency_ms", "must be { median = MS, p99 = MS }") from None
    if not 0 < median <= p99:
        raise r.fail("turn_latency_ms", "needs 0 < median <= p99")
    return BotDefinition(
        language=r.get("language", str, "en-us"), welcome=r.get("welcome", str, ""),
        ask=r.get("ask", str, BotDefinition.ask), no_match=r.get("no_match", str, BotDefinition.no_match),
        no_input=r.get("no_input", str, BotDefinition.no_input), retries=r.get("retries", int, 2, minimum=0),
        no_input_timeout_ms=r.get("no_input_timeout_ms", int, 30_000, minimum=1000),
        session_ttl_s=r.get("session_ttl_s", float, 600.0, minimum=1.0), turn_latency_ms=(median, p99),
        reporting_lag_s=r.get("reporting_lag_s", float, 0.0, minimum=0.0, maximum=3600.0),
        intents=tuple(intents), slots=slots)


# -- the dialog -----------------------------------------------------------------------------------------
class TurnRefused(Exception):
    """A turn the platform refuses: HTTP ``status`` with an ErrorBody ``code``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.field = status, code, field


@dataclass
class Dialog:
    """One session's place in its bot's dialog; :meth:`turn` answers a TextBotFlowTurnRequest's event."""

    bot: BotDefinition
    state: str = "new"
    """new → welcome (after a NoOp greeting) → intent → slot:<name> … → confirm → ended."""
    intent: Intent | None = None
    slots: dict[str, str] = field(default_factory=dict)
    misses: int = 0
    question: str = ""
    ended: dict[str, Any] | None = None
    """How the session ended: {"type": "Exit"|"Disconnect", "reason", ...}."""
    understood: dict[str, Any] = field(default_factory=dict)
    """What the last turn understood, as a reporting turn says it: ``askAction``, ``askActionResult`` and
    ``intent`` ({name, confidence, slots[{name, value, type, confidence}]}); empty for a turn that asked nothing."""
    confidence: float = 0.0

    def turn(self, event: str, text: str | None) -> dict[str, Any]:
        """The next action for ``event`` (with the user's ``text`` for UserInput): a partial
        TextBotFlowTurnResponse — ``prompts`` (list of texts), ``nextActionType`` and its details."""
        asking = self.state
        self.understood = {}
        answer = self._turn(event, text)
        if self.understood:
            kind = "Confirmation" if asking == "confirm" else "Collection"
            action = ("AskForNLUIntentAction" if asking == "intent" else "AskForBooleanAction" if asking == "confirm"
                      else "AskForSlotAction")
            self.understood = {"askAction": {"actionName": f"Ask for {asking.replace('slot:', 'slot ')}",
                                             "actionType": action}, **self.understood}
            self.understood["askActionResult"] = self.understood["askActionResult"].replace("{kind}", kind)
        return answer

    def _turn(self, event: str, text: str | None) -> dict[str, Any]:
        if event == "UserDisconnect":
            return self._disconnect("TriggeredByUser", [])
        if event == "ClientSessionExpired":
            return self._disconnect("SessionExpired", [])
        if event == "Error":
            return self._disconnect("Error", [])
        if self.state == "new":
            if self.bot.welcome:
                self.state = "welcome"
                return {"prompts": [self.bot.welcome], "nextActionType": "NoOp"}
            return self._ask("intent", self.bot.ask, [])
        if self.state == "welcome":
            return self._ask("intent", self.bot.ask, [])
        if event == "NoOp":  # nothing new from the user: the same question again
            return self._wait([self.question])
        if event == "NoInput":
            self._heard("NoInput{kind}")
            return self._miss(self.bot.no_input, "no input")
        if event != "UserInput" or not text:
            self._heard("NoMatch{kind}")
            return self._miss(self.bot.no_match, "no match")
        return self._understand(text)

    def _heard(self, result: str, slots: dict[str, str] | None = None) -> None:
        """What this turn understood (for its reporting turn): the result, the session's intent, the slots."""
        self.understood = {"askActionResult": result}
        if self.intent is not None:
            types = self.bot.slots
            self.understood["intent"] = {"name": self.intent.name, "confidence": self.confidence, "slots": [
                {"name": k, "value": v, "type": types[k].type if k in types else "text", "confidence": 1.0}
                for k, v in (slots or {}).items()]}

    def _understand(self, text: str) -> dict[str, Any]:
        if self.state == "intent":
            intent, confidence = score_intent(self.bot, text)
            if intent is None or confidence < MIN_CONFIDENCE:
                self._heard("NoMatch{kind}")
                return self._miss(self.bot.no_match, "no match")
            self.intent, self.slots, self.confidence = intent, {}, confidence
            if intent.exit_reason != "TriggeredByFlow":
                self._heard(intent.exit_reason if intent.exit_reason == "AgentRequestedByUser" else "Success{kind}")
                return self._exit(intent.exit_reason, [intent.done])
            for name in intent.slots:  # "my order 1234 is late": the number is already there
                value = extract(self.bot.slots[name].type, text, strict=True)
                if value is not None:
                    self.slots[name] = value
            self._heard("Success{kind}", dict(self.slots))
            return self._next([])
        if self.state.startswith("slot:"):
            slot = self.bot.slots[self.state[5:]]
            value = extract(slot.type, text)
            if value is None:
                self._heard("NoMatch{kind}")
                return self._miss(self.bot.no_match, "no match")
            self.slots[slot.name] = value
            self._heard("Success{kind}", {slot.name: value})
            return self._next([])
        # confirm
        answer = extract("yesno", text)
        if answer is None:
            self._heard("NoMatch{kind}")
            return self._miss(self.bot.no_match, "no match")
        assert self.intent is not None
        self._heard("SuccessConfirmationYes" if answer == "yes" else "SuccessConfirmationNo")
        if answer == "yes":
            return self._exit("TriggeredByFlow", [self.intent.done.format(**self.slots)])
        self.intent, self.slots = None, {}
        return self._ask("intent", "OK, let's start over. " + self.bot.ask, [])

    def _next(self, said: list[str]) -> dict[str, Any]:
        assert self.intent is not None
        missing = [s for s in self.intent.slots if s not in self.slots]
        if missing:
            return self._ask(f"slot:{missing[0]}", self.bot.slots[missing[0]].prompt, said)
        if self.intent.confirm:
            return self._ask("confirm", self.intent.confirm.format(**self.slots), said)
        return self._exit("TriggeredByFlow", [*said, self.intent.done.format(**self.slots)])

    def _ask(self, state: str, question: str, said: list[str]) -> dict[str, Any]:
        self.state, self.question, self.misses = state, question, 0
        return self._wait([*said, question])

    def _wait(self, prompts: list[str]) -> dict[str, Any]:
        return {"prompts": prompts, "nextActionType": "WaitForInput",
                "nextActionWaitForInput": {"modeConstraints": {"text": {
                    "languagePreferences": [self.bot.language],
                    "noInputTimeoutMilliseconds": self.bot.no_input_timeout_ms}}}}

    def _miss(self, apology: str, why: str) -> dict[str, Any]:
        self.misses += 1
        if self.misses > self.bot.retries:
            return self._exit("RecognitionFailure", [f"{apology} Let me get you some help."], info=why)
        return self._wait([apology, self.question])

    def _exit(self, reason: str, prompts: list[str], info: str | None = None) -> dict[str, Any]:
        variables = {f"Slot.{k}": v for k, v in self.slots.items()}
        if self.intent is not None and reason == "TriggeredByFlow":
            variables.update(self.intent.outputs)
        self.state = "ended"
        action: dict[str, Any] = {"reason": reason, "outputData": {"variables": variables},
                                  "flowLocation": {"actionName": "Exit Bot Flow", "sequenceName": "Main"}}
        if info:
            action["reasonExtendedInfo"] = info
        if self.intent is not None:
            action["activeIntent"] = self.intent.name
        self.ended = {"type": "Exit", "reason": reason}
        return {"prompts": prompts, "nextActionType": "Exit", "nextActionExit": action}

    def _disconnect(self, reason: str, prompts: list[str]) -> dict[str, Any]:
        self.state = "ended"
        self.ended = {"type": "Disconnect", "reason": reason}
        return {"prompts": prompts, "nextActionType": "Disconnect",
                "nextActionDisconnect": {"reason": reason,
                                         "flowLocation": {"actionName": "Disconnect", "sequenceName": "Main"}}}
