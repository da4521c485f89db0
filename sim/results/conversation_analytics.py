"""Proof of clean analytics for Open Messaging runs (API reference §11): conversation details
(``POST /api/v2/analytics/conversations/details/query``) over the run's span, every conversation in it read.

Unlike aggregates, each conversation says who it is: this run's are known by their customer's ``addressFrom`` (the
``from.id`` flowsim gave it, ``<prefix>-<run id>-<seq>``) — and by the ``externalTag`` flowsim put on them. What
keeps them out of production figures is ``divisionId``: a conversation counts under the division of the flow that
ran it, and production dashboards select production divisions. The check: every one of this run's conversations
under the test division(s), none under any other, as many as the ledger's (waiting a bounded time for analytics to
catch up); other conversations in the interval shown by division beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from sim.load.client import FlowClient
from sim.results.analytics import answer_of, interval_of

__all__ = ["ConversationCheck", "check_conversation_analytics", "DETAILS_PATH", "MAX_PAGES"]

DETAILS_PATH = "/api/v2/analytics/conversations/details/query"
_PAGE = 100
MAX_PAGES = 200
"""Pages read per query at most (20,000 conversations): past that the check says the count is partial."""


@dataclass(frozen=True, kw_only=True)
class ConversationCheck:
    interval: str
    ledger_conversations: int
    """Conversations the ledger says were started (first message answered 200)."""
    run_in_test_divisions: int
    """This run's conversations (by addressFrom) under the test division(s)."""
    run_elsewhere: dict[str, int] = field(default_factory=dict)
    """This run's conversations under any other division (must be empty)."""
    run_tagged: int = 0
    """This run's conversations carrying its externalTag."""
    other_divisions: dict[str, int] = field(default_factory=dict)
    """Every other conversation in the interval, by division (production, and other runs in the test division)."""
    partial: bool = False
    """More conversations than :data:`MAX_PAGES` pages in the interval: the counts cover the first pages only."""
    waited_s: float = 0.0

    @property
    def separated(self) -> bool:
        return not self.run_elsewhere

    @property
    def caught_up(self) -> bool:
        return self.run_in_test_divisions >= self.ledger_conversations


def _conversations(client: FlowClient, interval: str) -> tuple[list[dict[str, Any]], bool]:
    out: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        body = {"interval": interval, "order": "asc", "orderBy": "conversationStart",
                "paging": {"pageSize": _PAGE, "pageNumber": page},
                "segmentFilters": [{"type": "and", "predicates": [
                    {"type": "dimension", "dimension": "mediaType", "operator": "matches", "value": "message"}]}]}
        a = client.request("POST", DETAILS_PATH, "analytics conversation details", body=orjson.dumps(body),
                           retry_transport=True)
        answer = answer_of(a, "the conversation details query")
        got = list(answer.get("conversations") or [])
        out += got
        if len(out) >= int(answer.get("totalHits") or 0) or len(got) < _PAGE:
            return out, False
    return out, True


def _address(conv: dict[str, Any]) -> str:
    for p in conv.get("participants") or ():
        if p.get("purpose") == "customer":
            for s in p.get("sessions") or ():
                if s.get("addressFrom"):
                    return str(s["addressFrom"])
    return ""


def check_conversation_analytics(client: FlowClient, *, first_s: float, last_s: float, run_prefix: str, run_tag: str,
                                 test_divisions: set[str], ledger_conversations: int, wait_s: float,
                                 progress: Callable[[str], None] = lambda _line: None,
                                 sleep: Callable[[float], None] = time.sleep,
                                 clock: Callable[[], float] = time.monotonic) -> ConversationCheck:
    """Read the interval's conversations until this run's reach the ledger's count, or ``wait_s`` has passed."""
    interval = interval_of(first_s, last_s)
    began = clock()
    while True:
        ours = tagged = 0
        elsewhere: dict[str, int] = {}
        other: dict[str, int] = {}
        convs, partial = _conversations(client, interval)
        for c in convs:
            divisions = [str(d) for d in c.get("divisionIds") or ["?"]]
            if _address(c).startswith(run_prefix):
                tagged += c.get("externalTag") == run_tag
                if set(divisions) <= test_divisions:
                    ours += 1
                else:
                    for d in divisions:
                        if d not in test_divisions:
                            elsewhere[d] = elsewhere.get(d, 0) + 1
            else:
                for d in divisions:
                    other[d] = other.get(d, 0) + 1
        waited = clock() - began
        result = ConversationCheck(interval=interval, ledger_conversations=ledger_conversations,
                                   run_in_test_divisions=ours, run_elsewhere=elsewhere, run_tagged=tagged,
                                   other_divisions=other, partial=partial, waited_s=round(waited, 1))
        if result.caught_up or waited >= wait_s:
            return result
        progress(f"conversation analytics show {ours} of {ledger_conversations} conversations so far; waiting "
                 f"({waited:.0f}/{wait_s:.0f} s)")
        sleep(min(10.0, max(1.0, wait_s / 10)))
