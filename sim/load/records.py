"""The ledger's records, typed: one frozen dataclass per kind of line, each with one JSON round trip
(:meth:`to_json` / :func:`parse`). The JSONL on disk is what it always was (``sim.load.ledger`` documents each
line); a field that only some lines carry (a give-up's ``given_up_at``, an aggregate's ``count``) is left out of
the JSON when it is None. Drivers and the engine build these; :class:`~sim.load.stats.RunStats` counts them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["Record", "LaunchRecord", "OutcomeRecord", "SessionOpenRecord", "SessionRecord", "UnsentRecord", "parse",
           "UNIT_EVENTS", "ReceiverRecord"]

UNIT_EVENTS = ("launch", "session")
"""A unit of work that was sent: a launch, a conversation (its start counts as the launch)."""


_NAMES: dict[type, tuple[str, ...]] = {}


class _Json:
    """One JSON round trip: the event first, then the fields in order; optional (None) extras left out."""

    event: str
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        names = _NAMES.get(type(self))
        if names is None:  # once per class: the fields in order, the event first
            names = _NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self)  # type: ignore[arg-type]
                                               if f.name != "event")
        out: dict[str, Any] = {"event": self.event}
        optional = self.OPTIONAL
        for name in names:
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            out[name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, kw_only=True, slots=True)
class _Unit(_Json):
    """What every sent unit's record holds: who, when, and its first request's answer (after retries)."""

    run_id: str = ""
    seq: int
    name: str = ""
    flow_id: str = ""
    identity_id: str = ""
    intended_at: float
    worker: str = ""
    http_status: int
    """Final status after retries; 0: no answer (timed out, dropped, or still in flight at the stop)."""
    error: str | None = None
    context_id: str | None = None
    attempts: int = 1
    attempt_statuses: list[int] = field(default_factory=list)
    attempt_ms: list[float] = field(default_factory=list)
    sent_at: float
    answered_at: float | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LaunchRecord(_Unit):
    event: str = "launch"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"cause", "given_up_at"})
    execution_id: str | None = None
    cause: str | None = None
    given_up_at: float | None = None
    """Still in flight when the stop's grace ran out: written then (it may have run)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionOpenRecord(_Unit):
    """A conversation as soon as it exists: a crash leaves a record of every open session."""

    event: str = "session_open"
    session_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionRecord(_Unit):
    """A whole conversation: its start (as a launch), every turn, how it ended. An Open Messaging conversation
    (``kind = "messaging"``) is one too: its first message is the start, its messages the turns, ``session_id``
    the platform's conversation id, and it also carries every reply its customer read (``replies``)."""

    event: str = "session"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"replies", "out_of_order", "tag_status", "script"})
    session_id: str | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)
    end: str = "?"
    end_reason: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    expectation_failures: list[str] = field(default_factory=list)
    ended_at: float | None = None
    billable_sessions: int = 0
    replies: list[dict[str, Any]] | None = None
    out_of_order: int | None = None
    tag_status: int | None = None
    script: int | None = None
    """Which of the scenario's scripts (its [[flows]], 0-based) the conversation followed (``sim.load.breaks``)."""

    @classmethod
    def lost(cls, opened: SessionOpenRecord) -> SessionRecord:
        """What an open session without its closing record counts as: started, never seen to end."""
        unit = {f.name: getattr(opened, f.name) for f in dataclasses.fields(_Unit)}
        return cls(**unit, session_id=opened.session_id, end="lost",
                   end_reason="no closing record: the process that ran it ended first", billable_sessions=1,
                   ended_at=opened.answered_at)


@dataclass(frozen=True, kw_only=True, slots=True)
class OutcomeRecord(_Json):
    """A followed execution's terminal status (INTERRUPTED: the run's stop ended the following)."""

    event: str = "outcome"
    run_id: str = ""
    seq: int
    name: str = ""
    execution_id: str | None = None
    intended_at: float
    answered_at: float
    worker: str = ""
    flow_status: str
    polls: int = 0
    poll_429: int = 0
    observed_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class UnsentRecord(_Json):
    """A unit never sent: ``missed`` (no free user), ``late`` (its owner came too late), ``not_sent`` (no
    connection or no token: ``reason``). Past a per-second detail limit one record carries ``count``."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"name", "count", "seq_last", "reason", "cause"})
    event: str
    run_id: str = ""
    seq: int
    name: str | None = None
    intended_at: float
    worker: str = ""
    count: int | None = None
    seq_last: int | None = None
    reason: str | None = None
    cause: str | None = None

    @property
    def n(self) -> int:
        return self.count if self.count is not None else 1


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceiverRecord(_Json):
    """What flowsim's webhook receiver made of the deliveries during a run (Open Messaging): each outcome of
    ``sim.load.inbox.OUTCOMES`` counted, written by the process that hosts it when the run ends."""

    event: str = "receiver"
    run_id: str = ""
    worker: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    at: float


Record = LaunchRecord | OutcomeRecord | SessionOpenRecord | SessionRecord | UnsentRecord | ReceiverRecord

_BY_EVENT: dict[str, Any] = {"launch": LaunchRecord, "outcome": OutcomeRecord, "session_open": SessionOpenRecord,
                             "session": SessionRecord, "missed": UnsentRecord, "late": UnsentRecord,
                             "not_sent": UnsentRecord, "receiver": ReceiverRecord}


def parse(data: dict[str, Any]) -> Record | None:
    """A ledger line's record (None: an event this flowsim does not know). Raises TypeError/KeyError for a line
    that lacks a required field."""
    kind = _BY_EVENT.get(str(data.get("event")))
    if kind is None:
        return None
    record: Record = kind.from_json(data)
    return record
