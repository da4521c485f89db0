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

from sim.drivers import DRIVERS, driver_for
from sim.errors import ConfigError
from sim.drivers.sessions import Conversations
from sim.load.figures import Figures, FlowCompletion, figures
from sim.load.stats import Percentiles, RunStats
from sim.load.thresholds import ThresholdResult, Thresholds, judge
from sim.results.capacity_result import SUMMARY_SCHEMA, CapacityResult, CapacityStep

__all__ = ["RunSummary", "FlowCompletion", "Conversations", "ThresholdResult", "CapacityResult", "CapacityStep", "SUMMARY_SCHEMA",
           "build_summary", "load_summary", "Percentiles"]

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
    possibly_sent: int = 0
    """A worker's ledger lines did not all reach the master (it was killed or cut off): up to this many launches it
    owned may have been sent and are in no ledger the master has (they are part of ``not_sent``); which workers
    and how many each: ``ledger.possibly_sent_by_worker``. ``flowsim ledger merge`` folds their local copies in."""
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
    started_at: str | None = None
    """When launch 0 was due (ISO 8601, UTC): second 0 of ``timeseries``."""
    first_send_at: str | None = None
    """When the first launch was sent (ISO 8601, UTC; None: nothing sent)."""
    last_send_at: str | None = None
    """When the last launch was sent (ISO 8601, UTC)."""
    latency_histograms: dict[str, list[list[float]]] = field(default_factory=dict)
    """Launch latency distributions, ``attempt`` and ``end_to_end``: [low ms, high ms, count] per logarithmic
    bin (4 per doubling), for the report's histogram."""
    timeseries: tuple[dict[str, Any], ...] = ()
    """One row per second since launch 0 (by due second): t, target, p50/p95/p99, and ``sim.load.series.KEYS``."""
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
    """The kind of traffic (its driver): "workflow" executions, bot "conversation" sessions, ..."""
    section: Any = None
    """The driver's own figures (``sim.load.figures.Section``), in the JSON under the driver's key."""
    turn_check: dict[str, Any] | None = None
    """Bot conversations with intent/slot checks: the post-run judgement against reporting turns (``sim.intents``)."""
    passed: bool

    @property
    def verdict(self) -> str:
        return "INTERRUPTED" if self.interrupted else "PASS" if self.passed else "FAIL"

    @property
    def partial(self) -> str | None:
        """Why the counts are not the whole truth (None: they are), in words: the one sentence every view shows."""
        parts = []
        if self.unrecorded:
            parts.append(f"{self.unrecorded} launches were sent but could not be written to the ledger: the run "
                         "stopped there, and every count is partial")
        if self.possibly_sent:
            who = ", ".join(self.ledger.get("incomplete_workers") or ()) or "a worker"
            parts.append(f"up to {self.possibly_sent} launches may have been sent and are unrecorded: the ledger "
                         f"lines of {who} stopped reaching the master (counted as not sent; `flowsim ledger merge` "
                         "folds a worker's local copy in)")
        return "; ".join(parts) or None

    @property
    def figures(self) -> Figures:
        """This summary's figures, as every view reads them (``sim.load.figures``)."""
        return Figures(launched=self.launched, succeeded=self.succeeded, failed=self.failed,
                       first_attempt_failed=self.first_attempt_failed, retries=self.retries,
                       transport_errors=self.transport_errors, missed_starts=self.missed_starts, late=self.late,
                       refused=self.refused, rate_limited=dict(self.rate_limited),
                       achieved_rate_per_s=self.achieved_rate_per_s, attempt_latency_ms=self.attempt_latency_ms,
                       latency_ms=self.latency_ms, latency_from_intended_ms=self.latency_from_intended_ms,
                       flow_completion=self.flow_completion, first_send=None, last_send=None, section=self.section)

    @property
    def error_rate(self) -> float:
        """Launches without a 200 after retries / launched."""
        return self.figures.error_rate

    @property
    def first_attempt_error_rate(self) -> float:
        """Launches whose first attempt was not a 200 / launched (what retries can hide)."""
        return self.figures.first_attempt_error_rate

    @property
    def unit(self) -> str:
        """What one unit of this run is, in words ("launch", "bot session start")."""
        return driver_for(self.load).unit

    def to_dict(self) -> dict[str, Any]:
        section = self.section
        d = dataclasses.asdict(dataclasses.replace(self, section=None))
        del d["section"]
        for key in sorted({drv.section_key for drv in DRIVERS.values() if drv.section_key}):
            d[key] = section.to_dict() if section is not None and section.key == key else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSummary:
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        kw["schema_version"] = d.get("schema_version", 0)
        kw["kind"] = "run"
        kw["latency_ms"] = Percentiles(**d["latency_ms"])
        kw["latency_from_intended_ms"] = Percentiles(**d["latency_from_intended_ms"])
        kw["attempt_latency_ms"] = Percentiles(**d.get("attempt_latency_ms", {}))
        kw["flow_completion"] = FlowCompletion.from_dict(d["flow_completion"])
        kw["thresholds"] = tuple(ThresholdResult(**t) for t in d.get("thresholds", []))
        kw["timeseries"] = tuple(d.get("timeseries", []))
        kw["workers_lost"] = tuple(d.get("workers_lost", []))
        kw.pop("section", None)
        drv = driver_for(str(d.get("load", "workflow")))
        if drv.section_key and d.get(drv.section_key):
            kw["section"] = drv.section_from_dict(dict(d[drv.section_key]))
        return cls(**kw)


def _iso(epoch: float) -> str | None:
    if not math.isfinite(epoch) or epoch <= 0:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_summary(stats: RunStats, *, run_id: str, scenario: str, target: str, thresholds: Thresholds,
                  scheduled: int, duration_s: float, rate_at: Any, workers: int, workers_lost: tuple[str, ...],
                  ledger_path: str, ledger: dict[str, Any], duplicates: int, aborted: str | None,
                  interrupted: bool, analytics: dict[str, Any], fatal: bool = False,
                  live: str | None = None, poll_interval_s: float | None = None, load: str = "workflow",
                  unrecorded: int = 0, started_at: float | None = None, possibly_sent: int = 0) -> RunSummary:
    """The one place a RunSummary is made, from the one place figures are computed (``started_at``: launch 0 due)."""
    drv = driver_for(load)
    f = figures(stats, section=drv.section, poll_interval_s=poll_interval_s)
    s = RunSummary(
        run_id=run_id, scenario=scenario, target=target, workers=workers, workers_lost=workers_lost,
        duration_s=duration_s,
        target_rate_per_s=round(scheduled / duration_s if duration_s else 0.0, 3),
        achieved_rate_per_s=round(f.achieved_rate_per_s, 3),
        scheduled=scheduled, launched=f.launched, succeeded=f.succeeded, failed=f.failed,
        missed_starts=f.missed_starts, late=f.late, refused=f.refused, unrecorded=unrecorded,
        possibly_sent=possibly_sent,
        not_sent=max(0, scheduled - f.launched - f.missed_starts), duplicate_launches=duplicates,
        retries=f.retries, first_attempt_failed=f.first_attempt_failed, transport_errors=f.transport_errors,
        http_status=dict(sorted(stats.http_status.items())),
        rate_limited_responses=f.rate_limited_responses, rate_limited=f.rate_limited,
        latency_ms=f.latency_ms, attempt_latency_ms=f.attempt_latency_ms,
        latency_from_intended_ms=f.latency_from_intended_ms, flow_completion=f.flow_completion,
        first_send_at=_iso(f.first_send or 0.0), last_send_at=_iso(f.last_send or 0.0),
        started_at=_iso(started_at or 0.0),
        latency_histograms={"attempt": [list(b) for b in stats.histogram("launch_attempt")],
                            "end_to_end": [list(b) for b in stats.histogram("launch")]},
        timeseries=tuple(stats.series.rows(rate_at)), ledger_path=ledger_path, ledger=ledger,
        aborted=aborted, fatal=fatal, interrupted=interrupted, analytics=analytics, live=live, passed=False,
        load=load, section=f.section,
    )
    verdicts = judge(s.figures.observed(s.target_rate_per_s), thresholds)  # each threshold, observed, pass/fail
    return dataclasses.replace(s, thresholds=verdicts,
                               passed=all(t.passed for t in verdicts) and not interrupted and not fatal
                               and not aborted and not unrecorded and not possibly_sent)


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
