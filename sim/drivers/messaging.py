"""Inbound message flows over Open Messaging (API reference §11): each unit is one simulated customer's whole
conversation — its first message (the unit's paced, timed request), the flow's replies read from flowsim's webhook
receiver, its next messages (``sim.load.messaging`` speaks the protocol). Ledger records: ``session_open`` as soon
as the conversation exists, then one ``session`` with every message and every reply its customer read; the
process that hosts the receiver adds a ``receiver`` record of what the webhook got."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import urlsplit

from sim.drivers.base import SizingInputs, Ticket, UnitContext, attempt_fields, record_unit
from sim.drivers.chats import Chats
from sim.load.client import FlowClient
from sim.load.datatable import fill_script, row_for
from sim.load.identity import Identity, IdentityFactory
from sim.load.messaging import Chat, chat, customer_id, message_body
from sim.load.records import SessionOpenRecord, SessionRecord
from sim.load.scenario import FlowSpec, Scenario
from sim.load.stats import RunStats
from sim.load.target import is_loopback

__all__ = ["MessagingDriver", "MESSAGING", "REPLY_ALLOWANCE_S"]

REPLY_ALLOWANCE_S = 0.5
"""Time a message's replies are allowed, for sizing (the simulator's test flow answers in ~150 ms a reply)."""


def _messages(sc: Scenario) -> int:
    return max(len(f.messages) for f in sc.flows)


class MessagingDriver:
    kind = "messaging"
    flow_type = "inboundshortmessage"
    unit = "conversation start"
    units = "conversations"
    path = "/api/v2/conversations/messages/{integrationId}/inbound/open/message"
    record_event = "session"
    analytics = "conversations"
    section_key: str | None = "messaging"

    def run(self, ctx: UnitContext, client: FlowClient, ticket: Ticket, identity: Identity) -> None:
        sc, seq, due = ctx.scenario, ticket.seq, ticket.due
        spec = sc.messaging
        mailbox = ctx.mailbox
        assert spec is not None and mailbox is not None
        flow = ctx.builder.flow_for(seq)
        script = next(i for i, f in enumerate(sc.flows) if f is flow)
        base = {"run_id": ctx.run_id, "seq": seq, "name": customer_id(sc.tag_prefix, ctx.run_id, seq),
                "flow_id": flow.id, "identity_id": identity.id, "intended_at": round(due, 6), "worker": ctx.worker}

        def start(conv: Chat) -> dict[str, Any]:
            return {**base, "session_id": conv.conversation_id, **attempt_fields(conv.start, ctx.now())}

        def record(conv: Chat, **kw: Any) -> SessionRecord:
            return SessionRecord(**start(conv), script=script, turns=list(conv.turns),
                                 expectation_failures=list(conv.failures), replies=list(conv.replies),
                                 out_of_order=conv.out_of_order, tag_status=conv.tag_status, **kw)

        def started(conv: Chat) -> None:
            if conv.conversation_id:
                ctx.write(SessionOpenRecord(**start(conv)))
            ctx.open_in_flight(seq, lambda now: record(conv, end="interrupted", ended_at=round(now, 6),
                                                       end_reason="in flight when the stop's grace ran out"))

        rng = random.Random(f"{sc.seed}-{seq}") if sc.seed is not None else random.Random()
        try:
            conv = chat(client, mailbox, spec, fill_script(flow.messages, row_for(flow.data, seq)), identity=identity,
                        seq=seq, run_id=ctx.run_id,
                        prefix=sc.tag_prefix, flow_id=flow.id, rng=rng, think_time_s=sc.think_time_s,
                        max_turns=sc.max_turns, stopping=lambda: ctx.stopping, sleep=ctx.sleep,
                        not_after=due + ctx.max_late_s, on_started=started)
        finally:
            mine = ctx.close_in_flight(seq)
        if not mine:
            return
        record_unit(ctx, conv.start, seq, due, lambda: record(conv, end=conv.end, end_reason=conv.end_reason,
                                                             ended_at=round(conv.ended_at or ctx.now(), 6)),
                    refused="message", needs="conversation:message:receive")

    def section(self, stats: RunStats) -> Chats:
        return Chats.of(stats)

    def section_from_dict(self, data: dict[str, Any]) -> Chats:
        return Chats.from_dict(data)

    def preflight(self, client: FlowClient, scenario: Scenario, spec: FlowSpec, version: str,
                  run_id: str) -> tuple[dict[str, Any], set[str], list[str]]:
        """A sample first message; the integration must exist, and post replies where flowsim's receiver gets
        them (``public_url``; against the embedded simulator flowsim points it there itself)."""
        m = scenario.messaging
        assert m is not None
        identity = IdentityFactory(locale=scenario.locale, seed=scenario.seed).make(0)
        sample = message_body(customer_id(scenario.tag_prefix, run_id, 0), m.id_type, identity.first_name,
                              spec.messages[0].say[0], run_id=run_id, n=1)
        path = f"/api/v2/conversations/messaging/integrations/open/{m.integration}"
        a = client.get_json(path, "preflight integration")
        if a.status != 200 or not isinstance(a.body, dict):
            why = " (the OAuth client's role needs messaging:integration:view)" if a.status == 403 else ""
            return sample, set(), [f"cannot read Open Messaging integration {m.integration}: HTTP {a.status} "
                                   f"{a.error or ''}{why}".strip()]
        problems = []
        if not a.body.get("recipient"):
            problems.append(f"integration {m.integration} routes to no flow: its messages would start nothing")
        posts_to = a.body.get("outboundNotificationWebhookUrl")
        if m.public_url is None and posts_to and not is_loopback(urlsplit(str(posts_to)).hostname or ""):
            problems.append(f"integration {m.integration} posts replies to {posts_to!r}: set [messaging] public_url to "
                            "that URL once it reaches this run's receiver (an ingress or tunnel to [messaging] listen), "
                            "or point the integration at the receiver's public URL")
        elif m.public_url is not None and posts_to != m.public_url:
            problems.append(f"integration {m.integration} posts replies to {posts_to!r}, not to this run's receiver "
                            f"{m.public_url!r} ([messaging] public_url): every customer would wait in vain")
        return sample, set(), problems

    def sizing_inputs(self, scenario: Scenario, flow_duration_s: float, source: str) -> SizingInputs:
        """A conversation holds a user for its messages: think time, replies, the settle wait."""
        m = scenario.messaging
        assert m is not None
        n = _messages(scenario)
        interval = scenario.think_time_s + REPLY_ALLOWANCE_S + m.settle_s
        return SizingInputs(follow=True, interval_s=interval, hold_s=n * interval,
                            hold_source=f"≈{n} messages × (think time + {REPLY_ALLOWANCE_S} s replies + "
                                        f"{m.settle_s:g} s settle)",
                            words=("conversation starts", "messages", "conversation"))

    def notes(self, scenario: Scenario, units: int, *, simulator: bool) -> tuple[str, ...]:
        """What a messaging run leaves behind: identity resolution makes an external contact per customer."""
        return (f"leftovers: {units} Open Messaging conversations, each with its own external contact (identity "
                "resolution from from.id)" + ("; the simulator keeps them in memory only" if simulator else
                                              "; contacts persist 60+ days unless removed"),)

    def ledger_bytes_per_unit(self, scenario: Scenario) -> int:
        """A conversation line ~500 B, ~350 B a message with its replies."""
        return 500 + 350 * (_messages(scenario) + 2)

    def analytics_note(self, flow_ids: list[str], division_ids: list[str]) -> dict[str, Any]:
        return {"test_division_ids": division_ids, "test_flow_ids": flow_ids,
                "this_run_filter": {"type": "or", "predicates": [
                    {"type": "dimension", "dimension": "flowId", "operator": "matches", "value": f} for f in flow_ids]},
                "note": (f"this run's messaging conversations run inbound message flow(s) {', '.join(flow_ids)} in "
                         f"test division(s) {', '.join(division_ids)}: conversation aggregates that select production "
                         "divisions (divisionId) never count them; each conversation also carries the run in its "
                         "externalTag and its customer's from.id (addressFrom)."),
                }


MESSAGING = MessagingDriver()
