"""The separation proof: where the platform's analytics counted a run's executions (or bot sessions), against its
ledger and the ledgers of other flowsim runs beside it. ``flowsim analytics`` prints it; ``flowsim run`` on the
embedded simulator checks it at once and puts its verdict in the summary. Never imports locust."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
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


def analytics_of(plan: Any, rdir: Path, target: Any, *, wait_s: float) -> AnalyticsCheck:
    """Check where analytics counted the run (progress lines on stderr while it waits for them to catch up)."""
    from sim.errors import PlatformError
    from sim.load.ledger import ledger_files, read_records
    from sim.results.analytics import check_analytics, check_bot_analytics, span_of
    from sim.run.prepare import client_for

    from sim.drivers import driver_for

    driver = driver_for(plan.scenario.kind)
    if not driver.analytics:
        return AnalyticsCheck((), f"NOT CHECKED: flowsim does not read the platform's analytics of {driver.units} yet "
                                  "(the summary's analytics note says which dimensions keep them apart)", EXIT_USAGE)
    kind, bot = driver.record_event, driver.analytics == "bots"
    launches = [r for r in read_records(ledger_files(rdir)) if r.get("event") == kind]
    if not launches:
        raise ConfigError(f"the ledger holds no {kind}s", source=str(rdir))
    accepted = sum(1 for r in launches if r.get("http_status") == 200)
    client = client_for(plan.scenario, target)
    span = {"first_s": min(r["sent_at"] for r in launches),
            "last_s": max(r.get("ended_at") or r.get("answered_at") or r["sent_at"] for r in launches)}
    others = _other_runs(rdir, plan, kind, *span_of(span["first_s"], span["last_s"]))
    try:
        if bot:
            bots = check_bot_analytics(client, **span, run_bots={f.id for f in plan.flows}, ledger_sessions=accepted,
                                       ledger_turns=sum(len(r.get("turns") or []) for r in launches), wait_s=wait_s,
                                       other_runs=others, progress=lambda line: print(line, file=sys.stderr))
        else:
            result = check_analytics(
                client, **span, run_flows={f.id for f in plan.flows}, test_divisions={f.division_id for f in plan.flows},
                ledger_accepted=accepted, wait_s=wait_s, other_runs=others, progress=lambda line: print(line, file=sys.stderr))
    except PlatformError as exc:
        if exc.status == 403:
            perm = "analytics:botAggregate:view" if bot else "analytics:flowExecutionAggregate:view"
            return AnalyticsCheck((), f"NOT CHECKED: the OAuth client's role needs {perm} ({exc.code})", EXIT_USAGE)
        raise
    finally:
        client.close()
        client.tokens.close()
    return _bots_check(bots) if bot else _flows_check(result)


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
