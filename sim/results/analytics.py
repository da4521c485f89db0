"""Proof of clean analytics: after a run, ask the platform's flow-execution aggregates where the run's
executions were counted, and compare with the ledger (API reference §6).

Groups ``nFlowExecutions`` by ``divisionId`` and ``flowId`` over the run's exact span (first send to last
answer, widened by :data:`GRANULARITY_S` each side), waits (bounded, with progress) for analytics to catch up
with the ledger, and reports: the run's flows counted under the test division(s) only, that count against the
ledger's accepted launches plus those of *other* flowsim runs of the same flows in the span (from their own
ledgers, reported apart, never counted as this run's), what no ledger explains, and every other division's
count in the same interval for comparison. Aggregates have no dimension for a run (reference §6): a count
that no ledger explains means this run's share cannot be proven, and the check says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from sim.errors import PlatformError
from sim.load.client import Attempt, FlowClient

__all__ = ["AnalyticsCheck", "BotAnalyticsCheck", "check_analytics", "check_bot_analytics", "interval_of",
           "span_of", "answer_of", "GRANULARITY_S", "BOT_QUERY_PATH", "QUERY_PATH"]

QUERY_PATH = "/api/v2/analytics/flowexecutions/aggregates/query"
BOT_QUERY_PATH = "/api/v2/analytics/bots/aggregates/query"


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


GRANULARITY_S = 1.0
"""[U] How far apart the platform's execution timestamps and flowsim's may be: the span is widened by this each
side (the platform stamps an execution when it takes it, a moment after flowsim sent it)."""


def span_of(first_s: float, last_s: float, granularity_s: float = GRANULARITY_S) -> tuple[float, float]:
    """The run's span widened to whole granules, plus one granule each side (epoch seconds)."""
    g = granularity_s
    return math.floor(first_s / g) * g - g, math.ceil(last_s / g) * g + g


def interval_of(first_s: float, last_s: float, granularity_s: float = GRANULARITY_S) -> str:
    """The run's span (:func:`span_of`) as an ISO-8601 interval."""
    start, end = span_of(first_s, last_s, granularity_s)
    return f"{_iso(start)}/{_iso(end)}"


@dataclass(frozen=True, kw_only=True)
class AnalyticsCheck:
    interval: str
    ledger_accepted: int
    """Launches the ledger says the platform accepted."""
    run_flows_in_test_divisions: int
    """nFlowExecutions of the run's flows under the test division(s), over the interval."""
    run_flows_elsewhere: dict[str, int] = field(default_factory=dict)
    """The run's flows counted under any other division (must be empty)."""
    other_divisions: dict[str, int] = field(default_factory=dict)
    """Everything else in the interval, by division (production, for comparison)."""
    other_runs: dict[str, int] = field(default_factory=dict)
    """Other flowsim runs of the same flows in the interval: run id → accepted launches, from their ledgers."""
    waited_s: float = 0.0

    @property
    def separated(self) -> bool:
        return not self.run_flows_elsewhere

    @property
    def expected(self) -> int:
        return self.ledger_accepted + sum(self.other_runs.values())

    @property
    def caught_up(self) -> bool:
        return self.run_flows_in_test_divisions >= self.expected

    @property
    def unexplained(self) -> int:
        """Executions of the run's flows in the interval that no ledger here accounts for (other callers)."""
        return max(0, self.run_flows_in_test_divisions - self.expected)


@dataclass(frozen=True, kw_only=True)
class BotAnalyticsCheck:
    """Bot analytics have no divisionId (reference §9): a run's sessions are apart when they count under its
    dedicated test bot(s) only, which production dashboards leave out by botId."""

    interval: str
    ledger_sessions: int
    ledger_turns: int
    run_bot_sessions: int
    """nBotSessions of the run's bot(s) over the interval."""
    run_bot_turns: int
    other_bots: dict[str, int] = field(default_factory=dict)
    """Sessions of every other bot in the interval (production, for comparison)."""
    other_runs: dict[str, int] = field(default_factory=dict)
    """Other flowsim runs of the same bots in the interval: run id → sessions started, from their ledgers."""
    waited_s: float = 0.0

    @property
    def expected(self) -> int:
        return self.ledger_sessions + sum(self.other_runs.values())

    @property
    def caught_up(self) -> bool:
        return self.run_bot_sessions >= self.expected

    @property
    def unexplained(self) -> int:
        return max(0, self.run_bot_sessions - self.expected)


def _query(client: FlowClient, interval: str, *, path: str = QUERY_PATH, group_by: tuple[str, ...] = ("divisionId", "flowId"),
           metrics: tuple[str, ...] = ("nFlowExecutions",)) -> list[dict[str, Any]]:
    body = {"interval": interval, "groupBy": list(group_by), "metrics": list(metrics)}
    a = client.request("POST", path, "analytics query", body=orjson.dumps(body), retry_transport=True)
    return list(answer_of(a, "the analytics query").get("results") or [])


def answer_of(a: Attempt, what: str) -> dict[str, Any]:
    """An analytics answer's body; PlatformError for an error answer, or none (``what`` names the query)."""
    if a.status != 200 or not isinstance(a.body, dict):
        raise PlatformError.from_body(a.status, a.body) if a.status else PlatformError(
            status=0, code=a.error or "transport", message=f"{what} got no answer")
    return a.body


def _count(result: dict[str, Any], metric: str = "nFlowExecutions") -> int:
    return sum(int(m.get("stats", {}).get("count", 0)) for d in result.get("data", []) for m in d.get("metrics", [])
               if m.get("metric") == metric)


def check_analytics(client: FlowClient, *, first_s: float, last_s: float, run_flows: set[str],
                    test_divisions: set[str], ledger_accepted: int, wait_s: float,
                    other_runs: dict[str, int] | None = None,
                    progress: Callable[[str], None] = lambda _line: None,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> AnalyticsCheck:
    """Query until the test-division count reaches the ledger's, or ``wait_s`` has passed."""
    interval = interval_of(first_s, last_s)
    began = clock()
    while True:
        ours = 0
        elsewhere: dict[str, int] = {}
        other: dict[str, int] = {}
        for r in _query(client, interval):
            group, n = r.get("group", {}), _count(r)
            div, flow = str(group.get("divisionId")), str(group.get("flowId"))
            if flow in run_flows and div in test_divisions:
                ours += n
            elif flow in run_flows:
                elsewhere[div] = elsewhere.get(div, 0) + n
            else:
                other[div] = other.get(div, 0) + n
        waited = clock() - began
        result = AnalyticsCheck(interval=interval, ledger_accepted=ledger_accepted, run_flows_in_test_divisions=ours,
                                run_flows_elsewhere=elsewhere, other_divisions=other, other_runs=dict(other_runs or {}),
                                waited_s=round(waited, 1))
        if result.caught_up or waited >= wait_s:
            return result
        progress(f"analytics shows {ours} of {result.expected} launches so far; waiting ({waited:.0f}/{wait_s:.0f} s)")
        sleep(min(10.0, max(1.0, wait_s / 10)))


def check_bot_analytics(client: FlowClient, *, first_s: float, last_s: float, run_bots: set[str], ledger_sessions: int,
                        ledger_turns: int, wait_s: float, other_runs: dict[str, int] | None = None, progress: Callable[[str], None] = lambda _line: None,
                        sleep: Callable[[float], None] = time.sleep,
                        clock: Callable[[], float] = time.monotonic) -> BotAnalyticsCheck:
    """Query bot aggregates by botId until the run's bots count the ledger's sessions, or ``wait_s`` has passed."""
    interval = interval_of(first_s, last_s)
    began = clock()
    while True:
        ours = turns = 0
        other: dict[str, int] = {}
        for r in _query(client, interval, path=BOT_QUERY_PATH, group_by=("botId",),
                        metrics=("nBotSessions", "nBotSessionTurns")):
            bot = str(r.get("group", {}).get("botId"))
            if bot in run_bots:
                ours += _count(r, "nBotSessions")
                turns += _count(r, "nBotSessionTurns")
            else:
                other[bot] = other.get(bot, 0) + _count(r, "nBotSessions")
        waited = clock() - began
        result = BotAnalyticsCheck(interval=interval, ledger_sessions=ledger_sessions, ledger_turns=ledger_turns,
                                   run_bot_sessions=ours, run_bot_turns=turns, other_bots=other,
                                   other_runs=dict(other_runs or {}), waited_s=round(waited, 1))
        if result.caught_up or waited >= wait_s:
            return result
        progress(f"bot analytics show {ours} of {result.expected} sessions so far; waiting ({waited:.0f}/{wait_s:.0f} s)")
        sleep(min(10.0, max(1.0, wait_s / 10)))
