"""The load-side commands: ``run``, ``validate``, ``capacity``, ``compare``, ``report``, ``ledger summary``.

No locust import: runs start Locust in child processes (sim.load.runner) and read the summary the
master writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from sim.errors import ConfigError
from sim.load.capacity import SLO, search
from sim.load.compare import Tolerances, compare
from sim.load.ledger import ledger_files, summarize
from sim.load.preflight import FlowCheck
from sim.load.runner import RunOptions, Session, new_run_id, run_locust
from sim.load.scenario import Scenario, constant_rate, load_scenario, parse_duration
from sim.report import capacity_report, run_report

__all__ = ["add_commands"]


def _scenario(args: argparse.Namespace) -> Scenario:
    sc = load_scenario(args.scenario)
    rate = getattr(args, "rate", None)
    duration = parse_duration(args.duration, where="--duration") if getattr(args, "duration", None) else None
    return constant_rate(sc, rate_per_s=rate, duration_s=duration)


def _print_checks(checks: list[FlowCheck]) -> bool:
    ok = True
    for c in checks:
        print(f"[{'ok ' if c.ok else 'BAD'}] flow {c.flow_id} '{c.name}' type={c.type} division={c.division!r} "
              f"version={c.version}")
        for p in c.problems:
            print(f"      - {p}")
            ok = False
        if c.sample:
            print("      sample payload: " + json.dumps(c.sample))
    return ok


def _cmd_validate(args: argparse.Namespace) -> int:
    sc = _scenario(args)
    with Session(sc, args.target or sc.target) as session:
        print(f"scenario {sc.source}: {len(sc.flows)} flow(s), {len(sc.stages)} stage(s), {sc.duration_s:.0f} s; "
              f"target {session.target.api_url if session.target else '?'}")
        ok = _print_checks(session.checks)
    print("preflight passed" if ok else "preflight failed: fix the above before sending load")
    return 0 if ok else 1


def _human(s: dict[str, Any]) -> str:
    lat, li = s["latency_ms"], s["latency_from_intended_ms"]
    fc = s["flow_completion"]
    lines = [
        f"run {s['run_id']}  ({s.get('scenario')}, target {s.get('target')}, {s.get('workers', 1)} worker(s))",
        f"  rate      target {s['target_rate_per_s']}/s  achieved {s['achieved_rate_per_s']}/s",
        f"  launches  scheduled {s['scheduled']}  launched {s['launched']}  succeeded {s['succeeded']}  "
        f"failed {s['failed']}  missed starts {s['missed_starts']}  not sent {s.get('not_sent', 0)}  "
        f"retries {s['retries']}  "
        f"429s {s.get('rate_limited_responses', 0)}",
        f"  http      {s['http_status']}",
        f"  latency   p50 {lat['p50']} ms  p95 {lat['p95']} ms  p99 {lat['p99']} ms  max {lat['max']} ms"
        f"  (from intended start: p99 {li['p99']} ms)",
        f"  flows     followed {fc['followed']}  outcomes {fc['outcomes']}  p95 {fc['duration_ms']['p95']} ms",
        f"  ledger    {s.get('ledger_path')}",
        "  analytics " + s.get("analytics", {}).get("note", ""),
    ]
    if s.get("workers_lost"):
        lines.append(f"  workers   lost mid-run: {', '.join(s['workers_lost'])} (their share moved to the others)")
    if s.get("aborted"):
        lines.append(f"  ABORTED   {s['aborted']}")
    for t in s["thresholds"]:
        lines.append(f"  threshold {t['name']:<24} limit {t['limit']:<8} observed {t['observed']}  "
                     f"{'PASS' if t['passed'] else 'FAIL'}")
    lines.append("  RESULT    " + ("PASS" if s["passed"] else "FAIL"))
    return "\n".join(lines)


def _preflight_or_fail(session: Session) -> None:
    if not session.preflight_ok:
        _print_checks(session.checks)
        raise ConfigError("preflight failed: no load was sent", source=session.scenario.source)


def _write_html(path: str | None, text: str) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
        print(f"report: {path}", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    sc = _scenario(args)
    with Session(sc, args.target or sc.target) as session:
        _preflight_or_fail(session)
        opts = RunOptions(scenario_path=args.scenario, rate=args.rate, duration=args.duration,
                                 workers=args.workers, ledger_dir=args.ledger_dir, summary_json=args.summary_json,
                                 html=args.locust_html, csv=args.csv, run_id=args.run_id)
        summary = run_locust(session, opts)
    print(_human(summary))
    _write_html(args.html, run_report(summary))
    if summary.get("interrupted"):
        print("flowsim: interrupted; the summary and ledger above cover what was sent", file=sys.stderr)
        return 130
    return 0 if summary["passed"] else 1


def _cmd_capacity(args: argparse.Namespace) -> int:
    sc = load_scenario(args.scenario)
    step_s = parse_duration(args.step_duration, where="--step-duration")
    if args.start <= 0 or args.max < args.start:
        raise ConfigError("need 0 < --start <= --max", field="--start/--max")
    slo = SLO(p95_ms=args.slo_p95_ms, max_error_rate=args.max_error_rate)
    base = new_run_id()
    with Session(sc, args.target or sc.target) as session:
        _preflight_or_fail(session)
        count = [0]

        def step(rate: float) -> dict[str, Any]:
            count[0] += 1
            return run_locust(session, RunOptions(
                scenario_path=args.scenario, rate=rate, duration=f"{step_s}s", ledger_dir=args.ledger_dir,
                run_id=f"{base}-s{count[0]}", quiet=True, workers=args.workers,
                # abort a step early once failures flood: well past the SLO, never far past the knee
                abort_error_rate=max(0.2, 5 * slo.max_error_rate)))

        def show(st: dict[str, Any]) -> None:
            lat = st["latency_ms"]
            print(f"step {st['rate_per_s']:>9}/s  achieved {st['achieved_rate_per_s']:>9}/s  p95 {lat['p95']} ms  "
                  f"errors {st['error_rate']:.2%} (first attempts {st['first_attempt_error_rate']:.2%})  429s {st['rate_429']:.2%}  missed {st['missed_starts']}  "
                  f"{'pass' if st['passed'] else 'FAIL: ' + '; '.join(st['reasons'])}", flush=True)

        result = search(step, slo, start=args.start, maximum=args.max, precision=args.precision, on_step=show)
    result["scenario"] = sc.name
    print(f"sustainable rate: {result['sustainable_rate_per_s']} launches/s ({result['confidence']}); "
          f"limited by: {result['limiting_factor'] or 'nothing up to --max'}; search took {result['search_duration_s']} s")
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(result, indent=2))
    _write_html(args.html, capacity_report(result))
    return 0 if result["passed"] else 1


def _load_json(path: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError("file not found", source=path) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc}", source=path) from None
    if "launched" not in data and "sustainable_rate_per_s" not in data:
        raise ConfigError("not a flowsim run or capacity summary (--summary-json)", source=path)
    return data


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _cmd_compare(args: argparse.Namespace) -> int:
    a, b = _load_json(args.a), _load_json(args.b)
    tol = Tolerances(latency_rel=args.latency_rel, latency_abs_ms=args.latency_abs_ms,
                     error_rate_abs=args.error_rate_abs, rate_rel=args.rate_rel)
    rows = compare(a, b, tol)
    print(f"{'metric':<24}{'A':>14}{'B':>14}{'change':>10}")
    for r in rows:
        ch = "" if r["change"] is None else f"{r['change']:+.1%}"
        print(f"{r['metric']:<24}{_fmt(r['a']):>14}{_fmt(r['b']):>14}{ch:>10}  {'REGRESSED' if r['regressed'] else 'ok'}")
    bad = [r["metric"] for r in rows if r["regressed"]]
    print(f"regression in: {', '.join(bad)}" if bad else "no regression beyond tolerances")
    return 1 if bad else 0


def _cmd_report(args: argparse.Namespace) -> int:
    data = _load_json(args.summary)
    _write_html(args.out, capacity_report(data) if "sustainable_rate_per_s" in data else run_report(data))
    return 0


def _cmd_ledger_summary(args: argparse.Namespace) -> int:
    path = Path(args.run)
    if not path.exists():
        path = Path(args.ledger_dir) / args.run
    files = ledger_files(path) if path.exists() else []
    if not files:
        raise ConfigError(f"no ledger files at {args.run} or {Path(args.ledger_dir) / args.run}", field="RUN")
    s = summarize(files)
    ids = set(s.pop("execution_ids"))
    if args.target:
        received = _received_ids(args.target, s["run_ids"])
        s["reconciliation"] = {"target_received": len(received),
                               "accepted_not_received": len(ids - received),
                               "received_not_in_ledger": len(received - ids)}
    print(json.dumps(s, indent=2))
    rec = s.get("reconciliation")
    return 1 if s["duplicate_names"] or (rec and (rec["accepted_not_received"] or rec["received_not_in_ledger"])) else 0


def _received_ids(url: str, run_ids: list[str]) -> set[str]:
    """Execution ids a flowsim simulator received for these runs (its /_sim admin listing)."""
    ids: set[str] = set()
    for rid in run_ids:
        offset = 0
        while True:
            r = httpx.get(f"{url.rstrip('/')}/_sim/executions", params={"offset": offset, "limit": 10000}, timeout=30)
            r.raise_for_status()
            page = r.json()
            ids.update(e["id"] for e in page["entities"] if f"-{rid}-" in (e["name"] or ""))
            offset += len(page["entities"])
            if offset >= page["total"] or not page["entities"]:
                break
    return ids


def add_commands(sub: Any) -> None:
    r = sub.add_parser("run", help="run a scenario headless with Locust")
    r.add_argument("scenario", nargs="?", default="scenarios/smoke.toml")
    r.add_argument("--target", help="embedded (default), a region such as us_east_1, or a base URL")
    r.add_argument("--rate", type=float, help="one constant arrival rate, launches/s (replaces the stages)")
    r.add_argument("--duration", help="with --rate: how long, e.g. 20s, 5m")
    r.add_argument("--workers", type=int, default=0, help="Locust workers: master + N local worker processes")
    r.add_argument("--summary-json", help="write the run summary JSON here")
    r.add_argument("--html", help="write flowsim's HTML report here")
    r.add_argument("--locust-html", help="also write Locust's own HTML report here")
    r.add_argument("--csv", help="Locust's CSV prefix")
    r.add_argument("--run-id", help="run id (default: generated)")
    r.add_argument("--ledger-dir", default="runs", help="ledgers go to <dir>/<run_id>/ (default runs)")
    r.set_defaults(func=_cmd_run)

    v = sub.add_parser("validate", help="check a scenario and preflight its payloads against the target")
    v.add_argument("scenario")
    v.add_argument("--target")
    v.set_defaults(func=_cmd_validate)

    c = sub.add_parser("capacity", help="find the highest arrival rate that meets the SLO")
    c.add_argument("scenario")
    c.add_argument("--target")
    c.add_argument("--slo-p95-ms", type=float, default=500.0, help="p95 launch latency limit, ms (default 500)")
    c.add_argument("--max-error-rate", type=float, default=0.01, help="share of failed launches (default 0.01)")
    c.add_argument("--start", type=float, default=5.0, help="first step, launches/s (default 5)")
    c.add_argument("--max", type=float, default=200.0, help="never go above, launches/s (default 200)")
    c.add_argument("--step-duration", default="20s", help="hold each step this long (default 20s)")
    c.add_argument("--precision", type=float, default=0.05, help="stop bisecting within this share (default 0.05)")
    c.add_argument("--workers", type=int, default=0)
    c.add_argument("--ledger-dir", default="runs")
    c.add_argument("--summary-json")
    c.add_argument("--html")
    c.set_defaults(func=_cmd_capacity)

    cmp_ = sub.add_parser("compare", help="compare two summaries; exit 1 when B regressed beyond tolerances")
    cmp_.add_argument("a")
    cmp_.add_argument("b")
    t = Tolerances()
    cmp_.add_argument("--latency-rel", type=float, default=t.latency_rel)
    cmp_.add_argument("--latency-abs-ms", type=float, default=t.latency_abs_ms)
    cmp_.add_argument("--error-rate-abs", type=float, default=t.error_rate_abs)
    cmp_.add_argument("--rate-rel", type=float, default=t.rate_rel)
    cmp_.set_defaults(func=_cmd_compare)

    rep = sub.add_parser("report", help="render the HTML report of a run or capacity summary JSON")
    rep.add_argument("summary")
    rep.add_argument("--out", required=True)
    rep.set_defaults(func=_cmd_report)

    led = sub.add_parser("ledger", help="ledger tools")
    lsub = led.add_subparsers(dest="ledger_command", required=True)
    s = lsub.add_parser("summary", help="reconcile a run's ledger")
    s.add_argument("run", help="a run id (under --ledger-dir), a run directory or a ledger file")
    s.add_argument("--ledger-dir", default="runs")
    s.add_argument("--target", help="a flowsim simulator URL: also reconcile against what it received")
    s.set_defaults(func=_cmd_ledger_summary)
