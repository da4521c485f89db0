"""The separation proof: where the platform's analytics counted a run's executions (or bot sessions), against its
ledger and the ledgers of other flowsim runs beside it. ``flowsim analytics`` prints it; ``flowsim run`` on the
embedded simulator checks it at once and puts its verdict in the summary. Never imports locust."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

from sim.errors import EXIT_USAGE, ConfigError

__all__ = ["AnalyticsCheck", "analytics_of"]


@dataclass(frozen=True)
class AnalyticsCheck:
    """Where the platform's analytics counted a run, against its ledger: what to print, and the verdict."""

    lines: tuple[str, ...]
    verdict: str
    """SEPARATED: ..., NOT SEPARATED, NOT CAUGHT UP, UNPROVEN: ..., or NOT CHECKED: <why>."""
    code: int
    """0 separated and caught up, 1 not, 2 not checkable."""

    @property
    def separated(self) -> bool:
        return self.code == 0

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "separated": self.separated, "lines": list(self.lines)}


_PERMISSION = {"flows": "analytics:flowExecutionAggregate:view", "bots": "analytics:botAggregate:view",
               "conversations": "analytics:conversationDetail:view"}


def analytics_of(plan: Any, rdir: Path, target: Any, *, wait_s: float) -> AnalyticsCheck:
    """Check where analytics counted the run (progress lines on stderr while it waits for them to catch up)."""
    from sim.drivers import driver_for
    from sim.errors import PlatformError
    from sim.load.ledger import ledger_files, read_records
    from sim.run.prepare import client_for

    driver = driver_for(plan.scenario.kind)
    if not driver.analytics:
        return AnalyticsCheck((), f"NOT CHECKED: flowsim does not read the platform's analytics of {driver.units} yet "
                                  "(the summary's analytics note says which dimensions keep them apart)", EXIT_USAGE)
    kind = driver.record_event
    units = [r for r in read_records(ledger_files(rdir)) if r.get("event") == kind]
    if not units:
        raise ConfigError(f"the ledger holds no {kind}s", source=str(rdir))
    span = {"first_s": min(r["sent_at"] for r in units),
            "last_s": max(r.get("ended_at") or r.get("answered_at") or r["sent_at"] for r in units)}
    client = client_for(plan.scenario, target)
    try:
        check: Callable[..., AnalyticsCheck] = {"flows": _flows, "bots": _bots, "conversations": _conversations}[
            driver.analytics]
        return check(client, plan, rdir, units, span, wait_s=wait_s,
                     progress=lambda line: print(line, file=sys.stderr))
    except PlatformError as exc:
        if exc.status == 403:
            return AnalyticsCheck((), f"NOT CHECKED: the OAuth client's role needs {_PERMISSION[driver.analytics]} "
                                      f"({exc.code})", EXIT_USAGE)
        raise
    finally:
        client.close()
        client.tokens.close()


def _accepted(units: list[dict[str, Any]]) -> int:
    return sum(1 for r in units if r.get("http_status") == 200)


def _flows(client: Any, plan: Any, rdir: Path, units: list[dict[str, Any]], span: dict[str, Any], *,
           wait_s: float, progress: Callable[[str], None]) -> AnalyticsCheck:
    from sim.results.analytics import check_analytics, span_of

    others = _other_runs(rdir, plan, "launch", *span_of(span["first_s"], span["last_s"]))
    return _flows_check(check_analytics(
        client, **span, run_flows={f.id for f in plan.flows}, test_divisions={f.division_id for f in plan.flows},
        ledger_accepted=_accepted(units), wait_s=wait_s, other_runs=others, progress=progress))


def _bots(client: Any, plan: Any, rdir: Path, units: list[dict[str, Any]], span: dict[str, Any], *,
          wait_s: float, progress: Callable[[str], None]) -> AnalyticsCheck:
    from sim.results.analytics import check_bot_analytics, span_of

    others = _other_runs(rdir, plan, "session", *span_of(span["first_s"], span["last_s"]))
    return _bots_check(check_bot_analytics(
        client, **span, run_bots={f.id for f in plan.flows}, ledger_sessions=_accepted(units),
        ledger_turns=sum(len(r.get("turns") or []) for r in units), wait_s=wait_s, other_runs=others,
        progress=progress))


def _conversations(client: Any, plan: Any, rdir: Path, units: list[dict[str, Any]], span: dict[str, Any], *,
                   wait_s: float, progress: Callable[[str], None]) -> AnalyticsCheck:
    """Open Messaging: each conversation in the interval read; this run's known by addressFrom."""
    from sim.results.conversation_analytics import check_conversation_analytics

    prefix, tag = plan.scenario.tag_prefix, f"{plan.scenario.tag_prefix}-{plan.run_id}"
    started = sum(1 for r in units if r.get("http_status") == 200 and r.get("session_id"))
    c = check_conversation_analytics(client, first_s=span["first_s"], last_s=span["last_s"], run_prefix=f"{tag}-",
                                     run_tag=tag,
                                     test_divisions={f.division_id for f in plan.flows}, ledger_conversations=started,
                                     wait_s=wait_s, progress=progress)
    lines = (f"conversation details over {c.interval} (divisionId: a conversation counts under its flow's division; "
             f"this run's are known by addressFrom {prefix}-{plan.run_id}-*)",
             f"run's conversations under the test division(s): {c.run_in_test_divisions} = this run "
             f"{c.ledger_conversations} conversations (its ledger)"
             + ("" if c.caught_up else f" (analytics had not caught up after {c.waited_s} s)"),
             "run's conversations under any other division: "
             + (", ".join(f"{d}: {n}" for d, n in sorted(c.run_elsewhere.items())) or "none"),
             f"tagged externalTag {tag}: {c.run_tagged} of {c.run_in_test_divisions + sum(c.run_elsewhere.values())}",
             "other conversations in the interval, by division: "
             + (", ".join(f"{d}: {n}" for d, n in sorted(c.other_divisions.items())) or "none")
             + (" (partial: more than the pages read)" if c.partial else ""))
    return _verdict(lines, c.separated, c.caught_up, 0, "SEPARATED: the run's conversations count only under the "
                    "test division(s), each known by its customer's addressFrom")


def _bots_check(bots: Any) -> AnalyticsCheck:
    lines = (f"bot analytics over {bots.interval} (they have no divisionId: test sessions are kept apart by the "
             "dedicated test bot's botId)",
             f"run's bot(s): {bots.run_bot_sessions} sessions, {bots.run_bot_turns} turns"
             + _split(bots.ledger_sessions, bots.other_runs, bots.unexplained, "sessions")
             + ("" if bots.caught_up else f" (analytics had not caught up after {bots.waited_s} s)"),
             f"ledger: {bots.ledger_sessions} sessions started, {bots.ledger_turns} turns",
             "other bots in the interval: "
             + (", ".join(f"{b}: {n}" for b, n in sorted(bots.other_bots.items())) or "none"))
    return _verdict(lines, True, bots.caught_up, bots.unexplained,
                    "SEPARATED: the run's sessions count under its test bot(s) only")


def _flows_check(result: Any) -> AnalyticsCheck:
    lines = (f"analytics over {result.interval}",
             f"run's flows under the test division(s): {result.run_flows_in_test_divisions} executions"
             + _split(result.ledger_accepted, result.other_runs, result.unexplained, "launches")
             + ("" if result.caught_up else f" (analytics had not caught up after {result.waited_s} s)"),
             "run's flows under any other division: "
             + (", ".join(f"{d}: {n}" for d, n in sorted(result.run_flows_elsewhere.items())) or "none"),
             "other executions in the interval, by division: "
             + (", ".join(f"{d}: {n}" for d, n in sorted(result.other_divisions.items())) or "none"))
    return _verdict(lines, result.separated, result.caught_up, result.unexplained,
                    "SEPARATED: test executions count only under the test division(s)")


def _split(ours: int, others: dict[str, int], unexplained: int, what: str) -> str:
    """How a count breaks down: this run's ledger, other flowsim runs' ledgers, nobody's."""
    text = f" = this run {ours} {what} (its ledger)"
    if others:
        text += (f" + other flowsim runs in the interval {sum(others.values())} ("
                 + ", ".join(f"{rid}: {n}" for rid, n in sorted(others.items())) + ", from their ledgers)")
    if unexplained:
        text += f" + {unexplained} from no ledger here (other callers of the same flows)"
    return text


def _verdict(lines: tuple[str, ...], separated: bool, caught_up: bool, unexplained: int, ok: str) -> AnalyticsCheck:
    if not separated:
        return AnalyticsCheck(lines, "NOT SEPARATED", 1)
    if not caught_up:
        return AnalyticsCheck(lines, "NOT CAUGHT UP", 1)
    if unexplained:
        return AnalyticsCheck(lines, f"UNPROVEN: {unexplained} execution(s) in the interval come from no ledger here; "
                              "aggregates have no run dimension, so this run's own count cannot be told apart from "
                              "them", 1)
    return AnalyticsCheck(lines, ok, 0)


def _other_runs(rdir: Path, plan: Any, kind: str, start_s: float, end_s: float) -> dict[str, int]:
    """Other flowsim runs beside this one in the ledger folder that sent to the same flows within [start, end):
    run id → accepted launches (or sessions started) in that window, from their ledgers."""
    from sim.load.ledger import ledger_files, read_records

    flows = {f.id for f in plan.flows}
    found: dict[str, int] = {}
    for other in sorted(p for p in rdir.parent.iterdir() if p.is_dir() and p.name != rdir.name):
        n = sum(1 for r in read_records(ledger_files(other))
                if r.get("event") == kind and r.get("http_status") == 200 and r.get("flow_id") in flows
                and start_s <= float(r.get("sent_at") or 0) < end_s)
        if n:
            found[other.name] = n
    return found
