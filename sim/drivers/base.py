"""What a driver is: one kind of traffic, owning everything about its unit of work (see ``sim/drivers/__init__``).

A driver runs a unit through a :class:`UnitContext` — the engine's services (the ledger writer, the in-flight
book, the stop) — and never imports the engine, locust or any view. Views read what it contributes: its
figures section (``sim.load.figures``), its words and paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sim.load.client import Attempt, FlowClient
from sim.load.identity import Identity
from sim.load.messaging import Mailbox
from sim.load.payload import PayloadBuilder
from sim.load.records import Record
from sim.load.scenario import FlowSpec, Scenario
from sim.load.stats import RunStats

__all__ = ["Driver", "UnitContext", "Ticket", "SizingInputs", "PERMISSION_CODES", "record_unit", "attempt_fields"]

PERMISSION_CODES = frozenset({"missing.permissions", "missing.any.permissions", "not.authorized"})
"""403 codes after which every later unit would be refused too: the run stops with the reason."""


@dataclass(frozen=True, slots=True)
class Ticket:
    seq: int
    due: float
    """Epoch seconds at which the unit was due."""


@dataclass(frozen=True, slots=True)
class SizingInputs:
    """How a unit holds a Locust user, for sizing: its follow-up requests and how long it lasts."""

    follow: bool
    interval_s: float
    """Time between the unit's follow-up requests (a poll interval; a think time plus a turn's answer)."""
    hold_s: float
    hold_source: str
    words: tuple[str, str, str]
    """(units, follow-up requests, the unit) in the sizing's explanation."""


class UnitContext(Protocol):
    """The engine, as a driver sees it."""

    run_id: str
    worker: str
    scenario: Scenario
    builder: PayloadBuilder
    max_late_s: float
    mailbox: Mailbox | None
    """Open Messaging: where customers read the replies the webhook got (None for other kinds)."""

    @property
    def stopping(self) -> bool: ...
    def write(self, record: Record) -> None: ...
    def open_in_flight(self, seq: int, record: Callable[[float], Record]) -> None: ...
    def close_in_flight(self, seq: int) -> bool: ...
    def not_sent(self, res: Attempt, seq: int, due: float) -> None: ...
    def fatal(self, reason: str) -> None: ...
    def sleep(self, seconds: float) -> None: ...
    def now(self) -> float: ...


class Driver(Protocol):
    kind: str
    """The scenario's ``kind``."""
    flow_type: str
    """The Architect flow type it drives (the flow's ``type``, lower case)."""
    unit: str
    """One unit of work, in words: "launch", "bot session start"."""
    units: str
    """Plural, for rates and counts ("launches", "sessions")."""
    path: str
    """The unit's first request (the one paced, timed and counted as the run's launch)."""
    record_event: str
    """The ledger event of a unit's record."""
    section_key: str | None
    """The summary key of its own figures (None: none)."""
    analytics: str
    """Which platform analytics the separation proof reads for its units: "flows" (flow execution aggregates),
    "bots" (bot aggregates), "conversations" (conversation details), or "" (none: the proof says not checked)."""

    def run(self, ctx: UnitContext, client: FlowClient, ticket: Ticket, identity: Identity) -> None: ...
    def section(self, stats: RunStats) -> Any: ...
    def section_from_dict(self, data: dict[str, Any]) -> Any: ...
    def preflight(self, client: FlowClient, scenario: Scenario, spec: FlowSpec, version: str,
                  run_id: str) -> tuple[dict[str, Any], set[str], list[str]]: ...
    def sizing_inputs(self, scenario: Scenario, flow_duration_s: float, source: str) -> SizingInputs: ...
    def notes(self, scenario: Scenario, units: int, *, simulator: bool) -> tuple[str, ...]: ...
    def ledger_bytes_per_unit(self, scenario: Scenario) -> int: ...
    def analytics_note(self, flow_ids: list[str], division_ids: list[str]) -> dict[str, Any]: ...


def record_unit(ctx: UnitContext, res: Attempt, seq: int, due: float, record: Callable[[], Record], *,
                refused: str, needs: str) -> bool:
    """How every unit ends once its first request is over (and still this process's to write): never sent →
    counted as not sent; sent → its record written, and a 403 that would refuse every later unit stops the run
    (``refused``: the unit in words, ``needs``: the permission). True when the record was written."""
    if not res.sent:
        ctx.not_sent(res, seq, due)
        return False
    ctx.write(record())
    if res.status == 403 and res.error in PERMISSION_CODES:
        ctx.fatal(f"{refused} refused: 403 {res.error} — the OAuth client's role needs {needs}")
    return True


def attempt_fields(a: Attempt, now: float) -> dict[str, Any]:
    """A conversation's start as its ledger records say it (``now``: the send time when it was never stamped)."""
    sent = a.sent_at or now
    return {"http_status": a.status, "error": a.error, "context_id": a.context_id, "attempts": a.attempts,
            "attempt_statuses": list(a.statuses), "attempt_ms": list(a.attempt_ms), "sent_at": round(sent, 6),
            "answered_at": round(sent + a.elapsed_ms / 1000, 6), "latency_ms": round(a.elapsed_ms, 3)}
