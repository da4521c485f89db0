"""The figures of Open Messaging runs (``kind = "messaging"``): conversations, messages, the replies the webhook
brought and what the receiver refused — one :class:`~sim.load.figures.Section` every view reads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sim.load.breaks import ScriptedFigures, group_rows
from sim.load.figures import BarChart, MetricSpec, RequestRow, counts_text, ms_text
from sim.load.inbox import OUTCOMES
from sim.load.stats import Percentiles, RunStats

__all__ = ["Chats"]

_ENDING_COLORS = {"transferred": "#2ca02c", "script_ended": "#1f77b4"}
_REFUSED = ("bad_signature", "malformed", "too_large", "unknown_recipient")


def _p(p: Percentiles) -> str:
    return f"p50 {ms_text(p.p50)} ms  p95 {ms_text(p.p95)} ms  p99 {ms_text(p.p99)} ms  max {ms_text(p.max)} ms"


@dataclass(frozen=True, kw_only=True)
class Chats(ScriptedFigures):
    """An Open Messaging run's conversations (a customer's first message is the run's unit)."""

    key = "messaging"
    title = "Open Messaging conversations"
    request_note = ("messages: without a 200 after retries; conversation: conversations that broke a scripted "
                    "expectation.")
    conversations: int = 0
    """Conversations started (first message answered 200 with a conversation id)."""
    messages: int = 0
    message_latency_ms: Percentiles = Percentiles()
    """Each customer message's POST, first send → final answer (retries included)."""
    message_failed: int = 0
    message_retries: int = 0
    message_429: int = 0
    messages_unanswered: int = 0
    """Messages accepted (200) that got no reply within the reply timeout."""
    reply_latency_ms: Percentiles = Percentiles()
    """Message sent → its first reply received at the webhook."""
    each_reply_ms: Percentiles = Percentiles()
    """Message sent → each of its replies."""
    replies: int = 0
    """Replies customers read (each delivery once: duplicates are the receiver's)."""
    replies_unread: int = 0
    """Replies that came while a customer was leaving (in its record, marked unread)."""
    out_of_order: int = 0
    """Replies made by the platform before one its customer had already read."""
    duration_ms: Percentiles = Percentiles()
    """First message answered → the customer left (think times and the settle wait included)."""
    endings: dict[str, int] = field(default_factory=dict)
    expectation_failures: int = 0
    conversations_failing_expectations: int = 0
    failures: dict[str, Any] = field(default_factory=dict)
    """Broken expectations grouped, and each scripted step reached / broken (``sim.load.breaks``)."""
    receiver: dict[str, int] = field(default_factory=dict)
    """The webhook receiver's outcomes over the run (``sim.load.inbox.OUTCOMES``); empty: not counted (its record
    is missing — the process that hosts it ended first)."""

    @classmethod
    def of(cls, stats: RunStats) -> Chats:
        c = stats.counters
        return cls(conversations=c["sessions"], messages=c["turns"], message_latency_ms=stats.percentiles("turn"),
                   message_failed=c["turn_failed"], message_retries=c["turn_retries"], message_429=c["turn_429"],
                   messages_unanswered=c["messages_unanswered"], reply_latency_ms=stats.percentiles("reply"),
                   each_reply_ms=stats.percentiles("reply_each"), replies=c["replies"],
                   replies_unread=c["replies_unread"], out_of_order=c["replies_out_of_order"],
                   duration_ms=stats.percentiles("session"), endings=dict(sorted(stats.endings.items())),
                   expectation_failures=c["expectation_failures"],
                   conversations_failing_expectations=c["sessions_failing_expectations"],
                   receiver={o: c[f"receiver_{o}"] for o in OUTCOMES if f"receiver_{o}" in c},
                   failures=stats.breaks.summary())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Chats:
        pct = ("message_latency_ms", "reply_latency_ms", "each_reply_ms", "duration_ms")
        return cls(**{**d, **{k: Percentiles(**d[k]) for k in pct}})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def expectation_failure_rate(self) -> float | None:
        return self.conversations_failing_expectations / self.conversations if self.conversations else None

    @property
    def message_failure_rate(self) -> float:
        return self.message_failed / max(1, self.messages)

    def observed(self) -> dict[str, float | None]:
        return {"turn_p95_ms": self.message_latency_ms.p95, "reply_p95_ms": self.reply_latency_ms.p95,
                "expectation_failure_rate": self.expectation_failure_rate}

    def rate_limited(self) -> dict[str, int]:
        return {"open_message": self.message_429}

    def _receiver_text(self) -> str:
        if not self.receiver:
            return "not counted (no receiver record in the ledger)"
        return counts_text({k: v for k, v in self.receiver.items() if v} or {"routed": 0})

    def rows(self) -> list[tuple[str, str]]:
        return [("conversations", f"started {self.conversations}, messages {self.messages}, replies {self.replies}, "
                                  f"first reply p95 {ms_text(self.reply_latency_ms.p95)} ms, broke their script "
                                  f"{self.conversations_failing_expectations}"),
                ("endings", counts_text(self.endings) or "–"), ("webhook", self._receiver_text())]

    def text_rows(self) -> list[tuple[str, str]]:
        return [
            ("messaging", f"conversations {self.conversations}  messages {self.messages}  replies read {self.replies} "
                              f"({self.replies_unread} while leaving)  out of order {self.out_of_order}"),
            ("ended", counts_text(self.endings)),
            ("1st reply", f"message sent to its first reply at the webhook: {_p(self.reply_latency_ms)}  "
                            f"unanswered {self.messages_unanswered}"),
            ("each reply", f"message sent to each reply: {_p(self.each_reply_ms)}"),
            ("messages", f"POST latency (first send to final answer): {_p(self.message_latency_ms)}  failed "
                         f"{self.message_failed}  retries {self.message_retries}"),
            ("webhook", self._receiver_text()),
            ("scripts", f"{self.conversations_failing_expectations} conversation(s) broke an expectation "
                        f"({self.expectation_failures} broken in all)"),
            *group_rows(self.failures),
        ]

    def compare_metrics(self) -> dict[str, tuple[float | None, str, str]]:
        refused = sum(self.receiver.get(k, 0) for k in _REFUSED)
        return {
            "reply_latency_p95_ms": (self.reply_latency_ms.p95, "latency", "message sent → first reply"),
            "reply_latency_p99_ms": (self.reply_latency_ms.p99, "latency", "message sent → first reply"),
            "message_failure_rate": (self.message_failure_rate, "error", "messages without a 200 / messages"),
            "expectation_failure_rate": (self.expectation_failure_rate, "error",
                                         "conversations that broke a scripted expectation"),
            "unanswered_rate": (self.messages_unanswered / max(1, self.messages), "error",
                                "messages with no reply within the timeout / messages"),
            "webhook_refused_rate": (refused / max(1, sum(self.receiver.values())), "error",
                                     "deliveries the receiver refused / deliveries"),
        }

    def capacity_reasons(self, p95_ms: float, max_error_rate: float) -> list[str]:
        """A customer waits on every reply: the SLO holds for the first reply, and for the scripts."""
        reasons = []
        p95 = self.reply_latency_ms.p95
        if p95 is None or p95 > p95_ms:
            reasons.append(f"first reply p95 {ms_text(p95)} ms > {p95_ms:g} ms")
        unanswered = self.messages_unanswered / max(1, self.messages)
        if unanswered > max_error_rate:
            reasons.append(f"unanswered messages {unanswered:.2%} > {max_error_rate:.2%}")
        if (self.expectation_failure_rate or 0.0) > max_error_rate:
            reasons.append(f"conversations breaking their script {self.expectation_failure_rate:.2%} > "
                           f"{max_error_rate:.2%}")
        return reasons

    def step_p95_ms(self) -> float | None:
        return self.reply_latency_ms.p95

    def request_rows(self, path: str) -> list[RequestRow]:
        return [RequestRow(f"POST {path} — each message (first send to final answer)", self.messages,
                           self.message_failed, self.message_429, self.message_latency_ms),
                RequestRow("reply — message sent to its first reply at the webhook", self.messages,
                           self.messages_unanswered, None, self.reply_latency_ms),
                RequestRow("conversation — first message answered to the customer leaving", self.conversations,
                           self.conversations_failing_expectations, None, self.duration_ms)]

    def kpis(self) -> list[tuple[str, Any]]:
        rate = self.expectation_failure_rate
        return [("conversations", self.conversations), ("messages", self.messages), ("replies", self.replies),
                ("first reply p95 ms", self.reply_latency_ms.p95),
                ("broke an expectation", f"{self.conversations_failing_expectations} "
                                         f"({'—' if rate is None else f'{rate:.2%}'})"),
                ("duplicate deliveries", self.receiver.get("duplicate", 0)),
                ("refused deliveries", sum(self.receiver.get(k, 0) for k in _REFUSED))]

    def metrics(self) -> list[MetricSpec]:
        rl = self.reply_latency_ms
        return [
            MetricSpec("flowsim_messaging_conversations", "Open Messaging conversations ended, by how", "counter",
                       {k: float(v) for k, v in self.endings.items()}, label="ending"),
            MetricSpec("flowsim_messaging_messages", "Customer messages sent (conversations ended so far)", "counter",
                       {"": self.messages}),
            MetricSpec("flowsim_messaging_replies", "Replies customers read (conversations ended so far)", "counter",
                       {"": self.replies}),
            MetricSpec("flowsim_messaging_reply_latency_ms", "Message sent to its first reply (ms)", "gauge",
                       {q: v for q, v in (("0.5", rl.p50), ("0.95", rl.p95), ("0.99", rl.p99)) if v is not None},
                       label="quantile"),
            MetricSpec("flowsim_webhook_deliveries", "Webhook deliveries, by what the receiver made of them", "counter",
                       {k: float(v) for k, v in self.receiver.items()}, label="outcome"),
        ]

    def charts(self) -> list[BarChart]:
        if not self.endings:
            return []
        return [BarChart("How conversations ended (as the customer saw it)", "conversations",
                         tuple((k, v, _ENDING_COLORS.get(k, "#d62728")) for k, v in self.endings.items()))]
