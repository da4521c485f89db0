"""Digital bot conversations (API reference §9): each unit is one scripted session with a bot flow through the
textbots API (``sim.load.conversation`` speaks the protocol). Ledger records: ``session_open`` as soon as the
session exists (a crash leaves a record of every open session), then one ``session`` with all its turns."""

from __future__ import annotations

import math
import random
from typing import Any

from sim.drivers.base import SizingInputs, Ticket, UnitContext, attempt_fields, record_unit
from sim.load.client import FlowClient
from sim.load.datatable import fill_script, row_for
from sim.load.conversation import SESSIONS_PATH, TURNS_PER_BILLED_SESSION, Conversation, converse, session_body
from sim.drivers.sessions import Conversations
from sim.load.identity import Identity, IdentityFactory
from sim.load.records import SessionOpenRecord, SessionRecord
from sim.load.scenario import FlowSpec, Scenario
from sim.load.stats import RunStats

__all__ = ["ConversationDriver", "CONVERSATION", "TURN_ALLOWANCE_S"]

TURN_ALLOWANCE_S = 0.3
"""Time a bot turn's answer is allowed, for sizing (the simulator's test bot answers in ~25 ms)."""


def _turns_per_session(sc: Scenario) -> int:
    """A conversation's turns: the longest script, plus the opening NoOps (the test bot's welcome takes two)."""
    return max(len(f.turns) for f in sc.flows) + 2


class ConversationDriver:
    kind = "conversation"
    flow_type = "digitalbot"
    unit = "bot session start"
    units = "sessions"
    path = SESSIONS_PATH
    record_event = "session"
    analytics = "bots"
    section_key: str | None = "conversations"

    def run(self, ctx: UnitContext, client: FlowClient, ticket: Ticket, identity: Identity) -> None:
        sc, seq, due = ctx.scenario, ticket.seq, ticket.due
        flow = ctx.builder.flow_for(seq)
        script = next(i for i, f in enumerate(sc.flows) if f is flow)
        body = session_body(flow, identity, seq=seq, run_id=ctx.run_id, prefix=sc.tag_prefix)
        base = {"run_id": ctx.run_id, "seq": seq, "name": body["externalSessionId"], "flow_id": flow.id,
                "identity_id": identity.id, "intended_at": round(due, 6), "worker": ctx.worker}

        def start(conv: Conversation) -> dict[str, Any]:
            return {**base, "session_id": conv.session_id, **attempt_fields(conv.start, ctx.now())}

        def started(conv: Conversation) -> None:
            if not conv.start.sent:
                return
            opened = start(conv)
            if conv.session_id:
                ctx.write(SessionOpenRecord(**opened))
            ctx.open_in_flight(seq, lambda now: SessionRecord(
                **opened, script=script, turns=list(conv.turns), end="interrupted",
                end_reason="in flight when the stop's grace ran out", expectation_failures=list(conv.failures),
                ended_at=round(now, 6), billable_sessions=conv.billable_sessions))

        # Seeded per session: the same seed and seq say the same alternatives.
        rng = random.Random(f"{sc.seed}-{seq}") if sc.seed is not None else random.Random()
        try:
            conv = converse(client, body, fill_script(flow.turns, row_for(flow.data, seq)), identity=identity,
                            seq=seq, run_id=ctx.run_id,
                            prefix=sc.tag_prefix, rng=rng, think_time_s=sc.think_time_s, max_turns=sc.max_turns,
                            stopping=lambda: ctx.stopping, sleep=ctx.sleep, not_after=due + ctx.max_late_s,
                            on_started=started)
        finally:
            mine = ctx.close_in_flight(seq)
        if not mine:
            return
        record_unit(ctx, conv.start, seq, due, lambda: SessionRecord(
            **start(conv), script=script, turns=conv.turns, end=conv.end, end_reason=conv.end_reason, output=conv.output,
            expectation_failures=conv.failures, ended_at=round(conv.ended_at or ctx.now(), 6),
            billable_sessions=conv.billable_sessions), refused="session start", needs="textbots:botFlowSession:execute")

    def section(self, stats: RunStats) -> Conversations:
        return Conversations.of(stats)

    def section_from_dict(self, data: dict[str, Any]) -> Conversations:
        return Conversations.from_dict(data)

    def preflight(self, client: FlowClient, scenario: Scenario, spec: FlowSpec, version: str,
                  run_id: str) -> tuple[dict[str, Any], set[str], list[str]]:
        """A sample session start (bot analytics have no divisionId: the dedicated test bot separates)."""
        identity = IdentityFactory(locale=scenario.locale, seed=scenario.seed).make(0)
        return session_body(spec, identity, seq=0, run_id=run_id, prefix=scenario.tag_prefix), set(), []

    def sizing_inputs(self, scenario: Scenario, flow_duration_s: float, source: str) -> SizingInputs:
        """A session holds a user for its turns; each turn is one request."""
        turns = _turns_per_session(scenario)
        interval = scenario.think_time_s + TURN_ALLOWANCE_S
        return SizingInputs(follow=True, interval_s=interval, hold_s=turns * interval,
                            hold_source=f"≈{turns} turns × (think time + {TURN_ALLOWANCE_S} s)",
                            words=("session starts", "turns", "session"))

    def notes(self, scenario: Scenario, units: int, *, simulator: bool) -> tuple[str, ...]:
        """What a conversation run costs: the vendor bills bot sessions per session of up to 8 turns."""
        turns = _turns_per_session(scenario)
        billed = units * math.ceil(turns / TURNS_PER_BILLED_SESSION)
        return (f"billing: {units} bot sessions of ≈{turns} turns each ≈ {billed} billable sessions (billed per "
                f"session of up to {TURNS_PER_BILLED_SESSION} turns)"
                + ("; the simulator bills nothing" if simulator else "; a load test of a real bot costs money"),)

    def ledger_bytes_per_unit(self, scenario: Scenario) -> int:
        """A session line ~400 B plus ~250 B a turn."""
        return 400 + 250 * (max(len(f.turns) for f in scenario.flows) + 3)

    def analytics_note(self, flow_ids: list[str], division_ids: list[str]) -> dict[str, Any]:
        return {"test_bot_ids": flow_ids, "test_division_ids": division_ids,
                "this_run_filter": {"type": "or", "predicates": [
                    {"type": "dimension", "dimension": "botId", "operator": "matches", "value": b} for b in flow_ids]},
                "note": (f"this run's bot sessions count under its dedicated test bot(s) {', '.join(flow_ids)}; bot "
                         "aggregates have no divisionId, so production bot dashboards must select their bots by "
                         "botId (which never includes a test bot). externalSessionId carries the run id.")}


CONVERSATION = ConversationDriver()
