"""The typed results of flowsim: a run's :class:`RunSummary` and a capacity search's :class:`CapacityResult`.

The contract that ``compare``, ``report``, ``capacity``, the terminal text and CI read. Built once
(a run summary on the Locust master, from the ledger), serialised with ``to_dict`` (the JSON keys
users already parse, plus ``schema_version`` and ``kind``) and read back with ``from_dict``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sim.errors import ConfigError
from sim.load.thresholds import ThresholdResult, Thresholds, judge
from sim.load.stats import Percentiles, RunStats

__all__ = ["RunSummary", "FlowCompletion", "Conversations", "ThresholdResult", "CapacityResult", "CapacityStep", "SUMMARY_SCHEMA",
           "build_summary", "evaluate_thresholds", "load_summary", "Percentiles"]

SUMMARY_SCHEMA = 1


@dataclass(frozen=True, kw_only=True)
class FlowCompletion:
    """Followed executions: launch answered → terminal status seen (includes up to one poll interval)."""

    followed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    duration_ms: Percentiles = Percentiles()
    polls: int = 0
    """Status requests sent while following (attempts, retries included)."""
    poll_interval_s: float | None = None
    """The scenario's poll interval: the first poll waits one, and an end is seen up to one late — so a
    duration is resolved only to this, and a flow shorter than it still shows about one interval."""

    @property
    def failure_rate(self) -> float | None:
        """Followed executions that ended in anything but COMPLETED / followed (None: none followed)."""
        return (self.followed - self.outcomes.get("COMPLETED", 0)) / self.followed if self.followed else None


@dataclass(frozen=True, kw_only=True)
class Conversations:
    """A conversation run's bot sessions (a session start is the run's "launch"): turns, endings, scripts."""

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

    @property
    def turns_per_session(self) -> float | None:
        return round(self.turns / self.sessions, 2) if self.sessions else None

    @property
    def expectation_failure_rate(self) -> float | None:
        return self.sessions_failing_expectations / self.sessions if self.sessions else None


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """One load run. Counts come from the ledger (``counts_source``) unless a worker's ledger was out of reach."""

    schema_version: int = SUMMARY_SCHEMA
    kind: Literal["run"] = "run"
    run_id: str
    scenario: str
    target: str
    workers: int
    workers_lost: tuple[str, ...] = ()
    duration_s: float
    target_rate_per_s: float
    """Scheduled launches / schedule duration."""
    achieved_rate_per_s: float
    """(launches − 1) / (last send − first send)."""
    scheduled: int
    launched: int
    """Launches sent (each once, whatever its retries)."""
    succeeded: int
    """Launches answered 200, after retries."""
    failed: int
    """Launches without a 200 after retries."""
    missed_starts: int
    """Due while every user was busy: never sent."""
    late: int = 0
    """Owned by a process that was paused or starved past the due time: never sent."""
    not_sent: int
    """Scheduled − launched − missed starts: late ones, refused ones, a dead worker's share, an interrupted run's
    rest (and, if the ledger failed, the ``unrecorded`` ones: see there)."""
    refused: int = 0
    """Never left: no connection could be made to the target, or no OAuth token could be had (part of not_sent)."""
    unrecorded: int = 0
    """Sent, but the ledger could not be written: the run stopped at once and every count here is partial."""
    duplicate_launches: int = 0
    """Sequence numbers launched more than once (must be 0)."""
    retries: int
    first_attempt_failed: int
    """Launches whose first attempt was not a 200 (retries can hide an overloaded target's 503s)."""
    transport_errors: int
    http_status: dict[str, int]
    """Final status of each launch, after retries (0: no answer)."""
    rate_limited_responses: int
    """429 answers, launch attempts and status polls together."""
    rate_limited: dict[str, int] = field(default_factory=dict)
    """429 answers by request kind: ``launch`` attempts and ``status_poll`` attempts."""
    latency_ms: Percentiles
    """Launch end to end: first send → final answer (retries and their waits included)."""
    attempt_latency_ms: Percentiles = Percentiles()
    """Launch per attempt: each answered attempt on its own, retries counted as attempts (Locust's view)."""
    latency_from_intended_ms: Percentiles
    """Launch, due time → final answer: coordinated omission visible."""
    flow_completion: FlowCompletion
    first_send_at: str | None = None
    """When the first launch was sent (ISO 8601, UTC; None: nothing sent)."""
    last_send_at: str | None = None
    """When the last launch was sent (ISO 8601, UTC)."""
    latency_histograms: dict[str, list[list[float]]] = field(default_factory=dict)
    """Launch latency distributions, ``attempt`` and ``end_to_end``: [low ms, high ms, count] per logarithmic
    bin (4 per doubling), for the report's histogram."""
    timeseries: tuple[dict[str, Any], ...] = ()
    """One row per second since launch 0: t, target, launched, failed, r429, missed, late, outcome_failed, p50/p95/p99."""
    ledger_path: str
    ledger: dict[str, Any] = field(default_factory=dict)
    """Where the counts came from: ``counts_source`` (ledger | worker_reports) and the files read."""
    aborted: str | None = None
    """Why the run was stopped early (a flood of failures and 429s, or ``fatal``), if it was."""
    fatal: bool = False
    """Stopped because it could not go on (e.g. 403: the client may not launch): a setup problem, exit 2."""
    interrupted: bool = False
    analytics: dict[str, Any] = field(default_factory=dict)
    live: str | None = None
    """Against a real org: the approval and test window the run was checked against."""
    thresholds: tuple[ThresholdResult, ...] = ()
    load: str = "workflow"
    """What was launched: "workflow" executions, or bot "conversation" sessions (then ``conversations``)."""
    conversations: Conversations | None = None
    passed: bool

    @property
    def verdict(self) -> str:
        return "INTERRUPTED" if self.interrupted else "PASS" if self.passed else "FAIL"

    @property
    def error_rate(self) -> float:
        """Launches without a 200 after retries / launched."""
        return self.failed / max(1, self.launched)

    @property
    def first_attempt_error_rate(self) -> float:
        """Launches whose first attempt was not a 200 / launched (what retries can hide)."""
        return self.first_attempt_failed / max(1, self.launched)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSummary:
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        kw["schema_version"] = d.get("schema_version", 0)
        kw["kind"] = "run"
        kw["latency_ms"] = Percentiles(**d["latency_ms"])
        kw["latency_from_intended_ms"] = Percentiles(**d["latency_from_intended_ms"])
        kw["attempt_latency_ms"] = Percentiles(**d.get("attempt_latency_ms", {}))
        fc = d["flow_completion"]
        kw["flow_completion"] = FlowCompletion(followed=fc["followed"], outcomes=fc["outcomes"],
                                               duration_ms=Percentiles(**fc["duration_ms"]), polls=fc.get("polls", 0),
                                               poll_interval_s=fc.get("poll_interval_s"))
        kw["thresholds"] = tuple(ThresholdResult(**t) for t in d.get("thresholds", []))
        kw["timeseries"] = tuple(d.get("timeseries", []))
        kw["workers_lost"] = tuple(d.get("workers_lost", []))
        if d.get("conversations"):
            cv = dict(d["conversations"])
            kw["conversations"] = Conversations(**{**cv, "turn_latency_ms": Percentiles(**cv["turn_latency_ms"]),
                                                   "session_duration_ms": Percentiles(**cv["session_duration_ms"])})
        return cls(**kw)


def evaluate_thresholds(s: RunSummary, th: Thresholds) -> tuple[ThresholdResult, ...]:
    """Each configured threshold with its observed value and pass/fail."""
    fc = s.flow_completion
    observed = {
        "launch_p95_ms": s.attempt_latency_ms.p95,
        "launch_p99_ms": s.attempt_latency_ms.p99,
        "launch_e2e_p95_ms": s.latency_ms.p95,
        "launch_e2e_p99_ms": s.latency_ms.p99,
        "launch_error_rate": s.error_rate,
        "missed_start_rate": s.missed_starts / max(1, s.scheduled),
        "flow_failure_rate": 0.0 if fc.failure_rate is None else fc.failure_rate,
        "min_achieved_rate_ratio": s.achieved_rate_per_s / s.target_rate_per_s if s.target_rate_per_s else 1.0,
        "turn_p95_ms": s.conversations.turn_latency_ms.p95 if s.conversations else None,
        "expectation_failure_rate": s.conversations.expectation_failure_rate if s.conversations else None,
    }
    return judge(observed, th)


def _iso(epoch: float) -> str | None:
    if not math.isfinite(epoch) or epoch <= 0:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_summary(stats: RunStats, *, run_id: str, scenario: str, target: str, thresholds: Thresholds,
                  scheduled: int, duration_s: float, rate_at: Any, workers: int, workers_lost: tuple[str, ...],
                  ledger_path: str, ledger: dict[str, Any], duplicates: int, aborted: str | None,
                  interrupted: bool, analytics: dict[str, Any], fatal: bool = False,
                  live: str | None = None, poll_interval_s: float | None = None, load: str = "workflow",
                  unrecorded: int = 0) -> RunSummary:
    """The one place a RunSummary is made."""
    c = stats.counters
    launched = c["launched"]
    s = RunSummary(
        run_id=run_id, scenario=scenario, target=target, workers=workers, workers_lost=workers_lost,
        duration_s=duration_s,
        target_rate_per_s=round(scheduled / duration_s if duration_s else 0.0, 3),
        achieved_rate_per_s=round(stats.achieved_rate_per_s(), 3),
        scheduled=scheduled, launched=launched, succeeded=c["accepted"], failed=launched - c["accepted"],
        missed_starts=c["missed_starts"], late=c["late"], refused=c["refused"], unrecorded=unrecorded,
        not_sent=max(0, scheduled - launched - c["missed_starts"]), duplicate_launches=duplicates,
        retries=c["retries"], first_attempt_failed=c["first_attempt_failed"], transport_errors=c["transport_errors"],
        http_status=dict(sorted(stats.http_status.items())),
        rate_limited_responses=c["launch_429"] + c["poll_429"] + c["turn_429"],
        rate_limited={"launch": c["launch_429"], "status_poll": c["poll_429"],
                      **({"bot_turn": c["turn_429"]} if load == "conversation" else {})},
        latency_ms=stats.percentiles("launch"), attempt_latency_ms=stats.percentiles("launch_attempt"),
        latency_from_intended_ms=stats.percentiles("launch_from_intended"),
        flow_completion=FlowCompletion(followed=sum(stats.outcomes.values()), outcomes=dict(sorted(stats.outcomes.items())),
                                       duration_ms=stats.percentiles("flow_completion"), polls=c["polls"],
                                       poll_interval_s=poll_interval_s),
        first_send_at=_iso(stats.first_send), last_send_at=_iso(stats.last_send),
        latency_histograms={"attempt": [list(b) for b in stats.histogram("launch_attempt")],
                            "end_to_end": [list(b) for b in stats.histogram("launch")]},
        timeseries=tuple(stats.series.rows(rate_at)), ledger_path=ledger_path, ledger=ledger,
        aborted=aborted, fatal=fatal, interrupted=interrupted, analytics=analytics, live=live, passed=False,
        load=load, conversations=Conversations(
            sessions=c["sessions"], turns=c["turns"], turn_latency_ms=stats.percentiles("turn"),
            turn_failed=c["turn_failed"], turn_retries=c["turn_retries"],
            session_duration_ms=stats.percentiles("session"), endings=dict(sorted(stats.endings.items())),
            expectation_failures=c["expectation_failures"],
            sessions_failing_expectations=c["sessions_failing_expectations"],
            billable_sessions=c["billable_sessions"]) if load == "conversation" else None,
    )
    verdicts = evaluate_thresholds(s, thresholds)
    return dataclasses.replace(s, thresholds=verdicts,
                               passed=all(t.passed for t in verdicts) and not interrupted and not fatal
                               and not aborted and not unrecorded)


@dataclass(frozen=True, kw_only=True)
class CapacityStep:
    """One step of a capacity search: a run at one constant rate, judged against the SLO."""

    rate_per_s: float
    passed: bool
    reasons: tuple[str, ...]
    achieved_rate_per_s: float
    launched: int
    latency_ms: Percentiles
    error_rate: float
    """Launches without a 200 after retries / launched."""
    first_attempt_error_rate: float
    rate_429: float
    missed_starts: int
    run_id: str
    limiting_factor: str | None
    turn_p95_ms: float | None = None
    """Conversations: the step's bot turn p95 (judged against the SLO's p95 too)."""


@dataclass(frozen=True, kw_only=True)
class CapacityResult:
    schema_version: int = SUMMARY_SCHEMA
    kind: Literal["capacity"] = "capacity"
    scenario: str = ""
    sustainable_rate_per_s: float
    first_failing_rate_per_s: float | None
    precision: float
    confidence: str
    limiting_factor: str | None
    slo: dict[str, float]
    steps: tuple[CapacityStep, ...]
    search_duration_s: float
    passed: bool
    load: str = "workflow"
    """"conversation": the rates are bot sessions/s, and each step's turns are judged too."""

    @property
    def unit(self) -> str:
        return "sessions" if self.load == "conversation" else "launches"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CapacityResult:
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        kw["schema_version"] = d.get("schema_version", 0)
        kw["kind"] = "capacity"
        kw["steps"] = tuple(CapacityStep(**{**st, "reasons": tuple(st["reasons"]),
                                            "latency_ms": Percentiles(**st["latency_ms"])}) for st in d["steps"])
        return cls(**kw)


def load_summary(data: dict[str, Any], *, source: str = "summary") -> RunSummary | CapacityResult:
    """A run summary or capacity result from its JSON; ConfigError when it is neither, when it comes from a newer
    flowsim, or when a number in it is not a number."""
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version > SUMMARY_SCHEMA:
        raise ConfigError(f"schema_version {str(version)[:20]!r}: written by a newer flowsim (this one reads up to "
                          f"{SUMMARY_SCHEMA}); compare and report summaries with the flowsim that wrote them",
                          source=source)
    try:
        if data.get("kind") == "capacity" or "sustainable_rate_per_s" in data:
            return _typed(CapacityResult.from_dict(data), source)
        if data.get("kind", "run") == "run" and "launched" in data:
            return _typed(RunSummary.from_dict(data), source)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"not a flowsim summary this version can read ({type(exc).__name__}: {str(exc)[:200]})",
                          source=source) from None
    raise ConfigError("not a flowsim run or capacity summary (--summary-json)", source=source)


_T = TypeVar("_T", RunSummary, CapacityResult)


def _typed(summary: _T, source: str) -> _T:
    """Every field declared a number holds one (a string ``launched`` would surface later as a traceback)."""
    for f in dataclasses.fields(summary):
        value = getattr(summary, f.name)
        kind = {"int": (int,), "float": (int, float), "float | None": (int, float, type(None)),
                "int | None": (int, type(None))}.get(str(f.type))
        if kind is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ConfigError(f"field {f.name!r} is {type(value).__name__} {str(value)[:40]!r}, not a number",
                              source=source)
    return summary
