"""The figures of conversational drivers (a unit is a session of turns: bot conversations, and inbound message
flows next): turns, endings, scripts — one :class:`~sim.load.figures.Section` every view reads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sim.load.breaks import ScriptedFigures, group_rows
from sim.load.figures import BarChart, MetricSpec, RequestRow, counts_text
from sim.load.stats import Percentiles, RunStats

__all__ = ["Conversations"]

_ENDING_COLORS = {"Exit": "#2ca02c", "Disconnect": "#ff7f0e"}


@dataclass(frozen=True, kw_only=True)
class Conversations(ScriptedFigures):
    """A conversational run's sessions (a session start is the run's unit): turns, endings, scripts."""

    key = "conversations"
    title = "Conversations"
    request_note = "turns: without a 200 after retries; session: sessions that broke a scripted expectation."
    sessions: int = 0
    """Sessions started (answered 200)."""
    turns: int = 0
    turn_latency_ms: Percentiles = Percentiles()
    """Each turn, first send → final answer (retries included)."""
    turn_failed: int = 0
    """Turns without a 200 after retries (the session ends there)."""
    turn_retries: int = 0
    session_duration_ms: Percentiles = Percentiles()
    """Start answered → last answer, think times included."""
    endings: dict[str, int] = field(default_factory=dict)
    """How sessions ended: "Exit:<reason>", "Disconnect:<reason>" (the bot), or the harness's turn_failed,
    script_ended, max_turns, interrupted, stalled."""
    expectation_failures: int = 0
    sessions_failing_expectations: int = 0
    billable_sessions: int = 0
    """Σ ceil(turns / 8): what the vendor would bill (per session of up to 8 turns)."""
    turn_429: int = 0
    """429 answers to turn attempts (also in the summary's ``rate_limited.bot_turn``)."""
    failures: dict[str, Any] = field(default_factory=dict)
    """Broken expectations grouped, and each scripted step reached / broken (``sim.load.breaks``)."""

    @classmethod
    def of(cls, stats: RunStats) -> Conversations:
        c = stats.counters
        return cls(sessions=c["sessions"], turns=c["turns"], turn_latency_ms=stats.percentiles("turn"),
                   turn_failed=c["turn_failed"], turn_retries=c["turn_retries"],
                   session_duration_ms=stats.percentiles("session"), endings=dict(sorted(stats.endings.items())),
                   expectation_failures=c["expectation_failures"],
                   sessions_failing_expectations=c["sessions_failing_expectations"],
                   billable_sessions=c["billable_sessions"], turn_429=c["turn_429"], failures=stats.breaks.summary())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Conversations:
        return cls(**{**d, "turn_latency_ms": Percentiles(**d["turn_latency_ms"]),
                      "session_duration_ms": Percentiles(**d["session_duration_ms"])})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def turns_per_session(self) -> float | None:
        return round(self.turns / self.sessions, 2) if self.sessions else None

    @property
    def expectation_failure_rate(self) -> float | None:
        return self.sessions_failing_expectations / self.sessions if self.sessions else None

    @property
    def turn_failure_rate(self) -> float:
        return self.turn_failed / max(1, self.turns)

    def observed(self) -> dict[str, float | None]:
        return {"turn_p95_ms": self.turn_latency_ms.p95, "expectation_failure_rate": self.expectation_failure_rate}

    def rate_limited(self) -> dict[str, int]:
        return {"bot_turn": self.turn_429}

    def rows(self) -> list[tuple[str, str]]:
        p95 = self.turn_latency_ms.p95
        return [("bot sessions", f"started {self.sessions}, turns {self.turns}, turn p95 "
                                 f"{'—' if p95 is None else f'{p95:g}'} ms, broke their script "
                                 f"{self.sessions_failing_expectations}, ≈ {self.billable_sessions} billable"),
                ("bot endings", ", ".join(f"{k} {v}" for k, v in self.endings.items()) or "–")]

    def text_rows(self) -> list[tuple[str, str]]:
        tl, sd = self.turn_latency_ms, self.session_duration_ms
        return [
            ("sessions", f"started {self.sessions}  turns {self.turns} ({self.turns_per_session} per session)  "
                         f"≈ {self.billable_sessions} billable (per session of up to 8 turns)"),
            ("ended", counts_text(self.endings)),
            ("turns", f"latency (first send to final answer): p50 {tl.p50} ms  p95 {tl.p95} ms  p99 {tl.p99} ms  "
                      f"max {tl.max} ms  failed {self.turn_failed}  retries {self.turn_retries}"),
            ("sessions", f"duration (start answered to last answer, think times included): p50 {sd.p50} ms  "
                         f"p95 {sd.p95} ms"),
            ("scripts", f"{self.sessions_failing_expectations} session(s) broke an expectation "
                        f"({self.expectation_failures} broken in all)"),
            *group_rows(self.failures),
        ]

    def compare_metrics(self) -> dict[str, tuple[float | None, str, str]]:
        exited = sum(n for k, n in self.endings.items() if k.startswith("Exit:"))
        return {
            "turn_latency_p95_ms": (self.turn_latency_ms.p95, "latency", "bot turn, first send to final answer"),
            "turn_latency_p99_ms": (self.turn_latency_ms.p99, "latency", "bot turn, first send to final answer"),
            "turn_failure_rate": (self.turn_failure_rate, "error", "bot turns without a 200 after retries / turns"),
            "expectation_failure_rate": (self.expectation_failure_rate, "error",
                                         "bot sessions that broke a scripted expectation"),
            "sessions_not_exited_rate": (1 - exited / max(1, self.sessions), "error",
                                         "bot sessions that did not end with Exit"),
            "session_duration_p95_ms": (self.session_duration_ms.p95, "latency", "bot session, think times included"),
        }

    def capacity_reasons(self, p95_ms: float, max_error_rate: float) -> list[str]:
        """A customer waits on every turn: the SLO holds for turns too, and for the scripts."""
        reasons = []
        turn_p95 = self.turn_latency_ms.p95
        if turn_p95 is None or turn_p95 > p95_ms:
            reasons.append(f"turn p95 {turn_p95} ms > {p95_ms} ms")
        if self.turn_failure_rate > max_error_rate:
            reasons.append(f"turn errors {self.turn_failure_rate:.2%} > {max_error_rate:.2%}")
        if (self.expectation_failure_rate or 0.0) > max_error_rate:
            reasons.append(f"sessions breaking their script {self.expectation_failure_rate:.2%} > "
                           f"{max_error_rate:.2%}")
        return reasons

    def step_p95_ms(self) -> float | None:
        return self.turn_latency_ms.p95

    def request_rows(self, path: str) -> list[RequestRow]:
        """``path``: the session start's (the turns are posted below it)."""
        return [RequestRow(f"POST {path}/{{id}}/turns — each turn (first send to final answer)", self.turns,
                           self.turn_failed, self.turn_429, self.turn_latency_ms),
                RequestRow("session — start answered to last answer (think times included)", self.sessions,
                           self.sessions_failing_expectations, None, self.session_duration_ms)]

    def kpis(self) -> list[tuple[str, Any]]:
        rate = self.expectation_failure_rate
        return [("sessions started", self.sessions), ("turns", self.turns), ("turns per session", self.turns_per_session),
                ("broke an expectation", f"{self.sessions_failing_expectations} "
                                         f"({'—' if rate is None else f'{rate:.2%}'})"),
                ("billable sessions ≈", self.billable_sessions), ("turn p95 ms", self.turn_latency_ms.p95)]

    def metrics(self) -> list[MetricSpec]:
        tl = self.turn_latency_ms
        return [
            MetricSpec("flowsim_bot_sessions", "Bot sessions ended, by how (Exit:/Disconnect: reason, or the harness's "
                       "reason)", "counter", {k: float(v) for k, v in self.endings.items()}, label="ending"),
            MetricSpec("flowsim_bot_turns", "Bot turns sent (sessions ended so far)", "counter", {"": self.turns}),
            MetricSpec("flowsim_bot_turn_failures", "Bot turns without a 200 after retries", "counter",
                       {"": self.turn_failed}),
            MetricSpec("flowsim_bot_sessions_breaking_script", "Bot sessions with a broken scripted expectation",
                       "counter", {"": self.sessions_failing_expectations}),
            MetricSpec("flowsim_bot_turn_latency_ms", "Bot turn latency, first send to final answer (ms)", "gauge",
                       {q: v for q, v in (("0.5", tl.p50), ("0.95", tl.p95), ("0.99", tl.p99)) if v is not None},
                       label="quantile"),
        ]

    def charts(self) -> list[BarChart]:
        if not self.endings:
            return []
        return [BarChart("How sessions ended (Exit/Disconnect: the bot; others: the harness)", "sessions",
                         tuple((k, v, _ENDING_COLORS.get(k.split(":")[0], "#d62728")) for k, v in self.endings.items()))]
