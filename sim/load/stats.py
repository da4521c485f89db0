"""Run statistics with HDR histograms: mergeable across Locust workers, exact enough for SLOs.

Everything is counted from **ledger records** (:meth:`RunStats.add`): the engine adds each record as
it writes it, and the master replays the ledger files through the same method at the end of a run,
so the summary and the ledger cannot disagree. Locust rounds response times to two significant
digits; these histograms keep three, from 1 µs to one hour. For live progress a worker ships its
deltas with every report (``drain``); the master ``merge``\\s them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from sim.load.breaks import FailureGroups
from sim.load.records import LaunchRecord, OutcomeRecord, ReceiverRecord, Record, SessionRecord, UnsentRecord, parse
from sim.load.series import TimeSeries

__all__ = ["RunStats", "HISTOGRAMS", "Percentiles", "recorded"]

HISTOGRAMS = ("launch", "launch_attempt", "launch_from_intended", "flow_completion", "turn", "session", "reply",
              "reply_each")
"""launch: first send → final answer (end to end: retries and their waits included); launch_attempt: each
answered attempt on its own (what Locust shows per request); launch_from_intended: due time → final answer
(coordinated omission visible); flow_completion: launch answer → terminal status seen. Conversations (a
bot session start counts as the launch): turn: each turn, first send → final answer; session: start answer
→ last answer (think times included). Open Messaging (a customer's first message counts as the launch): turn:
each message's POST; reply: message sent → its first reply; reply_each: message sent → each of its replies."""

_MAX_US = 3_600_000_000


def _second(at: float, t0: float) -> int:
    """The whole second since launch 0 in which ``at`` falls. The ledger rounds times to 1 µs, so a launch due
    exactly on a second boundary can read a hair early (4.999999): it still belongs to its second."""
    return int(at - t0 + 2e-6)


def _hist() -> HdrHistogram:
    return HdrHistogram(1, _MAX_US, 3)


@dataclass(frozen=True, kw_only=True)
class Percentiles:
    """Latency percentiles in ms (None: nothing recorded)."""

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None


class RunStats:
    def __init__(self) -> None:
        self.series = TimeSeries()
        self.counters: Counter[str] = Counter()
        self.http_status: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.endings: Counter[str] = Counter()
        """Conversations: how each started session ended ("Exit:TriggeredByFlow", "turn_failed", ...)."""
        self.hist = {name: _hist() for name in HISTOGRAMS}
        self.breaks = FailureGroups()
        """Conversations: broken expectations grouped, and each scripted step reached / broken."""
        self.first_send: float = math.inf
        self.last_send: float = 0.0

    def add(self, rec: Record, t0: float) -> None:
        """Count one ledger record; ``t0`` is launch 0's due time. A ``session`` (a conversation) counts as a
        launch (its start), then its turns; a ``session_open`` counts only through :func:`sim.load.ledger.replay`,
        when no ``session`` closed it."""
        if isinstance(rec, (LaunchRecord, SessionRecord)):
            if isinstance(rec, SessionRecord):
                self._session(rec, _second(rec.intended_at, t0))
            self._unit(rec, _second(rec.intended_at, t0))
        elif isinstance(rec, OutcomeRecord):
            self._outcome(rec, _second(rec.intended_at, t0))
        elif isinstance(rec, ReceiverRecord):
            for outcome, n in rec.counts.items():
                self.counters[f"receiver_{outcome}"] += n
        elif isinstance(rec, UnsentRecord):
            if rec.event == "not_sent":  # never left: no connection could be made, or no token (``reason``)
                self.counters["refused"] += rec.n
            else:  # one launch, or ``count`` of them in one second (an aggregate record)
                self.counters["missed_starts" if rec.event == "missed" else "late"] += rec.n
                self.series.count(_second(rec.intended_at, t0), rec.event, rec.n)

    def add_json(self, data: dict[str, Any], t0: float) -> None:
        """Count one ledger line as read from JSON (an unknown event is not counted)."""
        rec = parse(data)
        if rec is not None:
            self.add(rec, t0)

    def _unit(self, rec: LaunchRecord | SessionRecord, sec: int) -> None:
        c = self.counters
        status = rec.http_status
        statuses = rec.attempt_statuses or [status]
        c["launched"] += 1
        c["retries"] += rec.attempts - 1
        if rec.attempts > 1:
            self.series.count(sec, "retries", rec.attempts - 1)
        if statuses[0] != 200:
            c["first_attempt_failed"] += 1
            self.series.count(sec, "first_failed")
        self.http_status[str(status)] += 1
        self.sent(rec.sent_at)
        self.series.count(sec, "launched")
        r429 = statuses.count(429)
        if r429:
            c["launch_429"] += r429
            self.series.count(sec, "r429", r429)
        if status == 200:
            c["accepted"] += 1
        else:
            self.series.count(sec, "failed")
            if status == 0:
                c["transport_errors"] += 1
        for ms in rec.attempt_ms:
            self.record_ms("launch_attempt", ms)
        if rec.latency_ms is not None:
            self.series.count(sec, "busy_ms", round(rec.latency_ms))
        if status and rec.latency_ms is not None and rec.answered_at is not None:
            self.series.latency(sec, rec.latency_ms)
            self.record_ms("launch", rec.latency_ms)
            self.record_ms("launch_from_intended", (rec.answered_at - rec.intended_at) * 1000)

    def _outcome(self, rec: OutcomeRecord, sec: int) -> None:
        c = self.counters
        self.outcomes[rec.flow_status] += 1
        if rec.flow_status != "COMPLETED":
            self.series.count(sec, "outcome_failed")
        if rec.poll_429:
            c["poll_429"] += rec.poll_429
            self.series.count(sec, "r429", rec.poll_429)
        c["polls"] += rec.polls
        self.record_ms("flow_completion", (rec.observed_at - rec.answered_at) * 1000)

    def _session(self, rec: SessionRecord, sec: int) -> None:
        c = self.counters
        if not rec.session_id:
            return
        turns = rec.turns
        c["sessions"] += 1
        c["turns"] += len(turns)
        c["billable_sessions"] += rec.billable_sessions
        c["expectation_failures"] += len(rec.expectation_failures)
        c["sessions_failing_expectations"] += 1 if rec.expectation_failures else 0
        for t in turns:
            statuses = t.get("attempt_statuses") or []
            c["turn_429"] += statuses.count(429)
            c["turn_retries"] += max(0, int(t.get("attempts", 1)) - 1)
            if t.get("status") == 200:
                self.record_ms("turn", t["latency_ms"])
                # Over time, by the second the conversation was due: a bot turn's answer; a message's first reply.
                ms = t.get("reply_ms") if rec.replies is not None else t["latency_ms"]
                if ms is not None:
                    self.series.latency(sec, ms, "turn")
            else:
                c["turn_failed"] += 1
        if rec.replies is not None:
            self._replies(rec)
        self.breaks.add(rec)
        end = rec.end
        ending = f"{end}:{rec.end_reason}" if end in ("Exit", "Disconnect") else end
        self.endings[ending] += 1
        self.series.ending(sec, ending)
        if rec.ended_at and rec.answered_at:
            self.record_ms("session", (rec.ended_at - rec.answered_at) * 1000)

    def _replies(self, rec: SessionRecord) -> None:
        c = self.counters
        assert rec.replies is not None
        c["replies"] += len(rec.replies)
        c["replies_unread"] += sum(1 for r in rec.replies if r.get("unread"))
        c["replies_out_of_order"] += rec.out_of_order or 0
        for t in rec.turns:
            if t.get("reply_ms") is not None:
                self.record_ms("reply", t["reply_ms"])
            for ms in t.get("each_reply_ms") or ():
                self.record_ms("reply_each", ms)
            if t.get("status") == 200 and not t.get("replies"):
                c["messages_unanswered"] += 1

    def flood(self, last_second: int, seconds: int, limit: float) -> str | None:
        """Why to abort: failures + 429s above ``limit`` of launches over the last ``seconds`` (None: fine)."""
        w = self.series.window(last_second, seconds)
        if w["launched"] >= 10 and (w["failed"] + w["r429"]) / w["launched"] > limit:
            return (f"{w['failed']} failed launches and {w['r429']} 429s out of {w['launched']} "
                    f"launches in {seconds} s (limit {limit:.0%})")
        return None

    def record_ms(self, name: str, ms: float) -> None:
        self.hist[name].record_value(min(_MAX_US, max(1, int(ms * 1000))))

    def sent(self, at: float) -> None:
        self.first_send = min(self.first_send, at)
        self.last_send = max(self.last_send, at)

    def drain(self) -> dict[str, Any]:
        """Everything recorded since the last drain, as plain data, and reset."""
        data = {
            "counters": dict(self.counters), "http_status": dict(self.http_status),
            "outcomes": dict(self.outcomes), "endings": dict(self.endings),
            "hist": {k: h.encode().decode("ascii") for k, h in self.hist.items() if h.get_total_count()},
            "series": self.series.encode(), "breaks": self.breaks.encode(),
            "first_send": self.first_send if self.first_send != math.inf else None,
            "last_send": self.last_send or None,
        }
        self.__init__()  # type: ignore[misc]
        return data

    def merge(self, data: dict[str, Any]) -> None:
        self.counters.update(data.get("counters", {}))
        self.http_status.update(data.get("http_status", {}))
        self.outcomes.update(data.get("outcomes", {}))
        self.endings.update(data.get("endings", {}))
        for k, encoded in data.get("hist", {}).items():
            self.hist[k].add(HdrHistogram.decode(encoded.encode("ascii")))
        if "series" in data:
            self.series.merge(data["series"])
        if "breaks" in data:
            self.breaks.merge(data["breaks"])
        if data.get("first_send") is not None:
            self.first_send = min(self.first_send, data["first_send"])
        if data.get("last_send") is not None:
            self.last_send = max(self.last_send, data["last_send"])

    def percentiles(self, name: str) -> Percentiles:
        h = self.hist[name]
        if not h.get_total_count():
            return Percentiles()
        p50, p95, p99 = (round(h.get_value_at_percentile(p) / 1000, 3) for p in (50, 95, 99))
        return Percentiles(count=h.get_total_count(), p50=p50, p95=p95, p99=p99,
                           max=round(h.get_max_value() / 1000, 3))

    def histogram(self, name: str, *, per_doubling: int = 4) -> list[tuple[float, float, int]]:
        """The recorded values of ``name`` in logarithmic bins (``per_doubling`` per doubling, from 1 µs):
        (low ms, high ms, count) for each non-empty bin, lowest first. For charts, not for SLOs."""
        bins: Counter[int] = Counter()
        for value, n in recorded(self.hist[name]):
            bins[int(per_doubling * math.log2(max(1, value)))] += n
        return [(round(2 ** (b / per_doubling) / 1000, 4), round(2 ** ((b + 1) / per_doubling) / 1000, 4), n)
                for b, n in sorted(bins.items())]

    def cumulative(self, name: str, bounds_ms: tuple[float, ...]) -> tuple[list[int], int, float]:
        """For a Prometheus histogram: how many recorded values of ``name`` are ≤ each bound (ms), the total count
        and the sum of the values (ms). Exact to the HDR histogram's resolution (3 significant digits)."""
        counts = [0] * len(bounds_ms)
        total, total_ms = 0, 0.0
        for value, n in recorded(self.hist[name]):
            ms = value / 1000
            total += n
            total_ms += ms * n
            for i, bound in enumerate(bounds_ms):
                if ms <= bound:
                    counts[i] += n
        return counts, total, total_ms


def recorded(h: HdrHistogram) -> list[tuple[int, int]]:
    """(value, count) for each non-empty bucket of ``h``, lowest first — what hdrh's recorded iterator yields
    (``value_iterated_to``, ``count_added_in_this_iter_step``), without its Python step through every empty
    sub-bucket below the highest value (~50,000 steps a call: 0.1 s of a 20-launch run's count)."""
    counts = h.counts[:h.counts_len]  # a ctypes array: sliced in C
    return [(h.get_highest_equivalent_value(h.get_value_from_index(i)), c) for i, c in enumerate(counts) if c]
