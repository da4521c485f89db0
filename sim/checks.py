"""After a run: does the world agree with its ledger? ``flowsim ledger summary`` (the ledger reconciled, and with
a simulator's URL against what it received) and ``flowsim analytics`` (where the platform's aggregates counted the
run, against its ledger and other runs' ledgers); and what summaries say: ``flowsim compare`` (has B regressed?)
and ``flowsim report`` (a summary's HTML). Handlers called by ``sim.cli``; never imports locust."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim._files import read_bounded
from sim.errors import ConfigError

__all__ = ["ledger_summary", "ledger_merge", "analytics", "compare", "report", "write_html", "load_run",
           "MAX_SUMMARY_BYTES"]


def ledger_summary(args: argparse.Namespace) -> int:
    from sim.load.ledger import ledger_files, summarize

    path = Path(args.run)
    if not path.exists():
        path = Path(args.ledger_dir) / args.run
    files = ledger_files(path) if path.exists() else []
    if not files:
        raise ConfigError(f"no ledger files at {args.run} or {Path(args.ledger_dir) / args.run}", field="RUN")
    s = summarize(files)
    ids = set(s.pop("execution_ids"))
    unanswered = set(s.pop("unanswered_names"))
    names = set(s.pop("names"))
    if args.target:
        received = _received(args.target, s["run_ids"], names, kind=s["kind"])
        extra = {i: name for i, name in received.items() if i not in ids}
        ghosts = {i for i, name in extra.items() if name in unanswered}
        s["reconciliation"] = {"target_received": len(received),
                               "accepted_not_received": len(ids - set(received)),
                               # launches that got no answer but ran: in the ledger (by name), not a mismatch
                               "unanswered_but_ran": len(ghosts),
                               "received_not_in_ledger": len(extra) - len(ghosts)}
    print(json.dumps(s, indent=2) if args.json else _ledger_text(s))
    rec = s.get("reconciliation")
    return 1 if s["duplicate_names"] or (rec and (rec["accepted_not_received"] or rec["received_not_in_ledger"])) else 0


def ledger_merge(args: argparse.Namespace) -> int:
    from sim.load.ledger import ledger_files, merge

    path = Path(args.run) if Path(args.run).is_dir() else Path(args.ledger_dir) / args.run
    if not path.is_dir() or not ledger_files(path):
        raise ConfigError(f"no run's ledger at {args.run} or {Path(args.ledger_dir) / args.run}", field="RUN")
    sources = [Path(f) for f in args.files]
    for f in sources:
        if not f.is_file():
            raise ConfigError("is not a file", source=str(f), field="FILES")
    got = merge(path, sources)
    print(f"merged     {got['added']} line(s) new to the run's ledger, {got['already']} already in it; refused "
          f"{got['other_run']} of another run and {got['unreadable']} unreadable (a torn last line is one)")
    print(f"count      flowsim ledger summary {args.run}" + (f" --ledger-dir {args.ledger_dir}"
                                                              if not Path(args.run).is_dir() else ""))
    return 0


def _ledger_text(s: dict[str, Any]) -> str:
    """The reconciliation in words (``--json``: the same figures as JSON)."""
    units = {"session": "bot sessions", "messaging": "messaging conversations"}.get(s["kind"], "launches")
    statuses = ", ".join(f"{k}: {v}" for k, v in s["http_status"].items()) or "none"
    lines = [f"ledger     {len(s['files'])} file(s) of run {', '.join(s['run_ids'])}",
             f"{units.split()[-1]:<10} {s['launch_attempts']} sent, {s['accepted']} accepted (final status {statuses}); "
             f"{s['unanswered_may_have_run']} got no answer (they may have run)",
             f"not sent   {s['missed_starts']} missed starts, {s['late_not_sent']} too late to send",
             f"duplicates {s['duplicate_names']} {units} sent twice (must be 0)"]
    if "sessions_never_closed" in s:
        lines.append(f"sessions   {s['sessions_never_closed']} opened and never closed (the process ended first)")
    else:
        outcomes = ", ".join(f"{k}: {v}" for k, v in s["outcomes"].items())
        lines.append(f"flows      outcomes {outcomes or 'none followed'}; {s['accepted_without_outcome']} accepted "
                     "launches have no outcome (not followed, or the run ended first)")
    rec = s.get("reconciliation")
    if rec:
        lines.append(f"target     received {rec['target_received']}: accepted but not received "
                     f"{rec['accepted_not_received']}, received but not in the ledger {rec['received_not_in_ledger']}, "
                     f"unanswered but ran {rec['unanswered_but_ran']}")
    return "\n".join(lines)


_LISTINGS = {"launch": ("/_sim/executions", "name_prefix", ("name",)),
             "session": ("/_sim/botsessions", "external_prefix", ("externalSessionId",)),
             "messaging": ("/_sim/messaging", "from_prefix", ("from", "id"))}
"""What a flowsim simulator lists for each kind of run: its admin path, the prefix filter, where the ledger's name
is in each entity."""


def _name_of(entity: Any, where: tuple[str, ...]) -> str:
    for key in where:
        entity = entity.get(key) if isinstance(entity, dict) else None
    return str(entity or "")


def _received(url: str, run_ids: list[str], names: set[str], *, kind: str) -> dict[str, str]:
    """Id → name of what a flowsim simulator received for these runs (its /_sim admin listings): executions, bot
    sessions, or Open Messaging conversations (by the customer's ``from.id``). A name counts when it is exactly
    ``<prefix>-<run id>-<seq>`` with a prefix the ledger's own names use: run ``x`` never claims run ``x-w2``'s."""
    import re

    tagged = {(m.group(1), rid) for n in names for rid in run_ids
              if (m := re.fullmatch(rf"(.+)-{re.escape(rid)}-\d+", n)) is not None}
    exact = re.compile("|".join(rf"{re.escape(p)}-{re.escape(rid)}-\d+" for p, rid in tagged) or "$^")
    path, param, where = _LISTINGS[kind]
    import httpx  # here: every flowsim command imports this module, one in a hundred asks a simulator

    ids: dict[str, str] = {}
    base = url.rstrip("/")
    for prefix in sorted({f"{p}-{rid}-" for p, rid in tagged}):
        offset = 0
        while True:
            try:
                r = httpx.get(f"{base}{path}", params={param: prefix, "offset": offset, "limit": 10000}, timeout=30)
                page = r.json() if r.status_code == 200 else None
            except httpx.HTTPError as exc:
                raise ConfigError(f"{base} cannot be asked what it received ({type(exc).__name__}): --target must be "
                                  "the URL of a running flowsim simulator", field="--target") from None
            except ValueError:
                page = None
            if not isinstance(page, dict) or not isinstance(page.get("entities"), list):
                raise ConfigError(f"{base}{path} did not answer like a flowsim simulator (HTTP {r.status_code}, "
                                  f"{r.headers.get('content-type', 'no content type')}): --target must be the URL of "
                                  "a running flowsim simulator", field="--target")
            ids.update((str(e["id"]), _name_of(e, where)) for e in page["entities"] if exact.fullmatch(_name_of(e, where)))
            offset += len(page["entities"])
            if offset >= int(page.get("total", 0)) or not page["entities"]:
                break
    return ids


def _run_dir(run: str, ledger_dir: str) -> Path:
    path = Path(run)
    if not path.is_dir():
        path = Path(ledger_dir) / run
    if not path.is_dir():
        raise ConfigError(f"no run directory at {run} or {Path(ledger_dir) / run}", field="RUN")
    return path


def load_run(run: str, ledger_dir: str, target: str | None) -> tuple[Any, Path, Any]:
    """A finished run as the commands that look back at it need it: its plan, its directory and the target to ask
    (``target``, or the run's own)."""
    from sim.load.target import resolve_target
    from sim.run.plan import RunPlan

    rdir = _run_dir(run, ledger_dir)
    if not (rdir / "plan.json").exists():
        raise ConfigError("no plan.json: not a run directory written by this flowsim version", source=str(rdir))
    try:
        plan = RunPlan.from_dict(json.loads(read_bounded(rdir / "plan.json", what="a run plan", max_bytes=1 << 22)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"plan.json cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
                          source=str(rdir)) from None
    if plan.target.embedded and not target:
        raise ConfigError("the run's embedded simulator stopped with the run: run against `flowsim serve` and "
                          "pass its URL with --target", field="--target")
    return plan, rdir, resolve_target(target) if target else plan.target


def analytics(args: argparse.Namespace) -> int:
    """Where did the platform's analytics count this run? Compared with the ledger."""
    from sim.separation import analytics_of

    plan, rdir, target = load_run(args.run, args.ledger_dir, args.target)
    print(f"run {plan.run_id}")
    check = analytics_of(plan, rdir, target, wait_s=args.wait)
    if not check.lines:
        print(f"flowsim: analytics {check.verdict}", file=sys.stderr)
        return check.code
    print(check.lines[0])
    for line in check.lines[1:]:
        print(f"  {line}")
    print(f"  verdict   {check.verdict}")
    return check.code


MAX_SUMMARY_BYTES = 64 << 20
"""A summary JSON larger than this is no flowsim summary (compare and report refuse it in one line)."""


def write_html(path: str | None, render: Callable[[], str]) -> None:
    """Render (matplotlib: ~1 s) and write the report only when one was asked for."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(render(), encoding="utf-8")
        print(f"report: {path}", file=sys.stderr)


def _read_json(path: str) -> Any:
    try:
        data = json.loads(read_bounded(path, what="a summary JSON file", max_bytes=MAX_SUMMARY_BYTES))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not JSON: {exc}", source=path) from None
    if not isinstance(data, dict):
        raise ConfigError("not a flowsim run or capacity summary (--summary-json)", source=path)
    return data


def _load_json(path: str) -> Any:
    from sim.results.summary import load_summary

    return load_summary(_read_json(path), source=path)


def _f2(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def _compare_nlu(args: argparse.Namespace, a: dict[str, Any], b: dict[str, Any]) -> int:
    from sim.results.nlu_compare import is_nlu_result, nlu_changes

    if not (is_nlu_result(a) and is_nlu_result(b)):
        raise ConfigError("compares two flowsim nlu --json files, or two run/capacity summaries: not one of each",
                          source=args.b if is_nlu_result(a) else args.a)
    ch = nlu_changes(a, b, f1_abs=args.f1_abs, sources=(args.a, args.b))
    for name, data in (("A", a), ("B", b)):
        print(f"{name}  {getattr(args, name.lower())}: bot {data.get('bot')}, version {data.get('version')}, "
              f"{len(data.get('detections') or ())} utterances, macro F1 {(data.get('macro') or {}).get('f1')}")
    print(f"tolerance: F1 -{args.f1_abs:g} (macro and per intent)")
    for what, rows in (("broke", ch.broke), ("fixed", ch.fixed), ("moved", ch.moved)):
        for r in rows[:20]:
            print(f"{what:<7}{r['text'][:60]!r} ({r['expected']}): {r['a']} → {r['b']}")
        if len(rows) > 20:
            print(f"{what:<7}... and {len(rows) - 20} more")
    print(f"changed intent: {len(ch.broke)} broke (right in A, wrong in B), {len(ch.fixed)} fixed, {len(ch.moved)} "
          f"wrong both times as another intent; {ch.only_a} utterance(s) only in A, {ch.only_b} only in B")
    for name, x, y, bad in ch.f1:
        print(f"F1 {name:<23}{_f2(x):>8}{_f2(y):>8}  {'REGRESSED' if bad else 'ok'}")
    print(f"regression in: F1 of {', '.join(ch.regressed)}" if ch.regressed else "no regression beyond tolerances")
    return 1 if ch.regressed else 0


def compare(args: argparse.Namespace) -> int:
    from sim.results.compare import Tolerances, cells, compare, describe, new_failure_groups
    from sim.results.summary import load_summary

    raw_a, raw_b = _read_json(args.a), _read_json(args.b)
    if "nlu" in (raw_a.get("kind"), raw_b.get("kind")):
        return _compare_nlu(args, raw_a, raw_b)
    a, b = load_summary(raw_a, source=args.a), load_summary(raw_b, source=args.b)
    tol = Tolerances(latency_rel=args.latency_rel, latency_abs_ms=args.latency_abs_ms,
                     error_rate_abs=args.error_rate_abs, rate_rel=args.rate_rel)
    rows = compare(a, b, tol)
    print(f"A  {args.a}: {describe(a)}")
    print(f"B  {args.b}: {describe(b)}")
    print(f"tolerances: latency +{tol.latency_rel:.0%} and +{tol.latency_abs_ms:g} ms, error rates "
          f"+{tol.error_rate_abs * 100:g} points, rates -{tol.rate_rel:.0%}")
    print(f"{'metric':<26}{'A':>12}{'B':>12}{'change':>18}")
    for r in rows:
        cell_a, cell_b, change = cells(r)
        print(f"{r['metric']:<26}{cell_a:>12}{cell_b:>12}{change:>18}  {'REGRESSED' if r['regressed'] else 'ok':<9}  "
              f"{r['note']}".rstrip())
    bad = [r["metric"] for r in rows if r["regressed"]]
    new = new_failure_groups(a, b)
    for line in new:
        print(f"new failure group in B: {line}  REGRESSED")
    if new:
        bad.append("new failure groups")
    print(f"regression in: {', '.join(bad)}" if bad else "no regression beyond tolerances")
    return 1 if bad else 0


def report(args: argparse.Namespace) -> int:
    from sim.results.report import capacity_report, run_report
    from sim.results.summary import CapacityResult

    from sim._files import check_output

    data = _load_json(args.summary)
    check_output(args.out, what="--out (the HTML report)")
    write_html(args.out, lambda: capacity_report(data) if isinstance(data, CapacityResult) else run_report(data))
    return 0
