"""``flowsim run``, ``flowsim validate`` and ``flowsim ledger summary``. No locust import: ``run``
starts Locust (master + workers when asked) in child processes and reads the summary it writes."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from sim.errors import ConfigError, FlowsimError
from sim.load.ledger import ledger_files, summarize
from sim.load.locust_args import locust_command
from sim.load.preflight import preflight
from sim.load.scenario import Scenario, constant_rate, load_scenario, parse_duration, resolve_target

__all__ = ["add_commands"]

EMBEDDED_CLIENT = ("flowsim-load-client", "flowsim-local-secret")


class EmbeddedSimulator:
    """``flowsim serve`` on a free loopback port, for the length of a command."""

    def __init__(self, org: str | None = None) -> None:
        cmd = [sys.executable, "-m", "sim.cli", "serve", "--port", "0", "--log-level", "warning"]
        if org:
            cmd += ["--org", org]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on" not in line:
            self.proc.kill()
            raise FlowsimError("the embedded simulator did not start (see messages above)")
        self.url = line.strip().rsplit(" ", 1)[-1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _scenario(args: argparse.Namespace) -> Scenario:
    sc = load_scenario(args.scenario)
    rate = getattr(args, "rate", None)
    duration = parse_duration(args.duration, where="--duration") if getattr(args, "duration", None) else None
    return constant_rate(sc, rate_per_s=rate, duration_s=duration)


def _credentials(sc: Scenario, embedded: bool) -> tuple[str, str]:
    if embedded:
        return EMBEDDED_CLIENT
    cid, sec = os.environ.get(sc.client_id_env), os.environ.get(sc.client_secret_env)
    if not cid or not sec:
        raise ConfigError(f"set {sc.client_id_env} and {sc.client_secret_env} in the environment "
                          "(OAuth client credentials; never in the scenario file)", source=sc.source)
    return cid, sec


def _print_checks(checks: list[Any]) -> bool:
    ok = True
    for c in checks:
        mark = "ok " if c.ok else "BAD"
        print(f"[{mark}] flow {c.flow_id} '{c.name}' type={c.type} division={c.division!r} version={c.version}")
        for p in c.problems:
            print(f"      - {p}")
            ok = False
        if c.sample:
            print("      sample payload: " + json.dumps(c.sample))
    return ok


def _cmd_validate(args: argparse.Namespace) -> int:
    sc = _scenario(args)
    target_name = args.target or sc.target
    sim = EmbeddedSimulator() if target_name == "embedded" else None
    try:
        target = resolve_target(target_name, embedded_url=sim.url if sim else None)
        cid, sec = _credentials(sc, sim is not None)
        print(f"scenario {sc.source}: {len(sc.flows)} flow(s), {len(sc.stages)} stage(s), "
              f"{sc.duration_s:.0f} s; target {target.api_url}")
        ok = _print_checks(preflight(sc, target, client_id=cid, client_secret=sec))
    finally:
        if sim:
            sim.stop()
    print("preflight passed" if ok else "preflight failed: fix the above before sending load")
    return 0 if ok else 1


def _human(s: dict[str, Any]) -> str:
    lat, li = s["latency_ms"], s["latency_from_intended_ms"]
    fc = s["flow_completion"]
    lines = [
        f"run {s['run_id']}  ({s.get('scenario')}, target {s.get('target')}, {s.get('workers', 1)} worker(s))",
        f"  rate      target {s['target_rate_per_s']}/s  achieved {s['achieved_rate_per_s']}/s",
        f"  launches  scheduled {s['scheduled']}  launched {s['launched']}  succeeded {s['succeeded']}  "
        f"failed {s['failed']}  missed starts {s['missed_starts']}  retries {s['retries']}",
        f"  http      {s['http_status']}",
        f"  latency   p50 {lat['p50']} ms  p95 {lat['p95']} ms  p99 {lat['p99']} ms  max {lat['max']} ms"
        f"  (from intended start: p99 {li['p99']} ms)",
        f"  flows     followed {fc['followed']}  outcomes {fc['outcomes']}  p95 {fc['duration_ms']['p95']} ms",
        f"  ledger    {s.get('ledger_path')}",
        "  analytics " + s.get("analytics", {}).get("note", ""),
    ]
    for t in s["thresholds"]:
        lines.append(f"  threshold {t['name']:<24} limit {t['limit']:<8} observed {t['observed']}  "
                     f"{'PASS' if t['passed'] else 'FAIL'}")
    lines.append("  RESULT    " + ("PASS" if s["passed"] else "FAIL"))
    return "\n".join(lines)


def _analytics(checks: list[Any]) -> dict[str, Any]:
    """How analytics tell this run apart (reference §6): names are no dimension, flows and divisions are."""
    divisions = sorted({c.division_id for c in checks})
    return {
        "test_division_ids": divisions,
        "test_flow_ids": sorted({c.flow_id for c in checks}),
        "this_run_filter": {"type": "or", "predicates": [
            {"type": "dimension", "dimension": "flowId", "operator": "matches", "value": c.flow_id} for c in checks]},
        "note": (f"this run's executions count only under test division(s) {', '.join(divisions)}; production "
                 "aggregates queries select production divisions (divisionId matches ...) and so never see "
                 "them. The aggregates filter has no negation, and execution names are not a dimension."),
    }


def _cmd_run(args: argparse.Namespace) -> int:
    sc = _scenario(args)
    target_name = args.target or sc.target
    workdir = Path(tempfile.mkdtemp(prefix="flowsim-"))
    summary_path = Path(args.summary_json) if args.summary_json else workdir / "summary.json"
    sim = EmbeddedSimulator() if target_name == "embedded" else None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        target = resolve_target(target_name, embedded_url=sim.url if sim else None)
        cid, sec = _credentials(sc, sim is not None)
        checks = preflight(sc, target, client_id=cid, client_secret=sec)
        if not all(c.ok for c in checks):
            _print_checks(checks)
            raise ConfigError("preflight failed: no load was sent", source=sc.source)
        run_id = args.run_id or time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + os.urandom(2).hex()
        base = locust_command(scenario=args.scenario, target=target.api_url, embedded=sim is not None,
                              run_id=run_id, rate=args.rate, duration=args.duration, ledger_dir=args.ledger_dir,
                              summary_json=str(summary_path), users=sc.max_concurrency,
                              run_time_s=sc.duration_s + sc.follow_timeout_s + 30, html=args.html, csv=args.csv,
                              workers=args.workers)
        print(f"flowsim: run {run_id}: {sc.name} against {target.api_url}; ledger {args.ledger_dir}/{run_id}/",
              file=sys.stderr, flush=True)
        procs.append(subprocess.Popen(base))
        for _ in range(args.workers):
            procs.append(subprocess.Popen(locust_command(worker=True, scenario=args.scenario)))
        try:
            procs[0].wait()
        except KeyboardInterrupt:
            procs[0].send_signal(signal.SIGINT)  # the master writes its summary on the way out
            procs[0].wait(timeout=60)
    finally:
        for p in procs[1:]:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if sim:
            sim.stop()
    if not summary_path.exists():
        raise FlowsimError("Locust ended without writing a summary (see its output above)")
    summary = json.loads(summary_path.read_text())
    summary["analytics"] = _analytics(checks)
    summary_path.write_text(json.dumps(summary, indent=2))
    print(_human(summary))
    return 0 if summary["passed"] else 1


def _cmd_ledger_summary(args: argparse.Namespace) -> int:
    path = Path(args.run)
    if not path.exists():
        path = Path(args.ledger_dir) / args.run
    files = ledger_files(path) if path.exists() else []
    if not files:
        raise ConfigError(f"no ledger files at {args.run} or {Path(args.ledger_dir) / args.run}", field="RUN")
    s = summarize(files)
    ids = s.pop("execution_ids")
    if args.target:
        names = _simulator_names(args.target, s["run_ids"])
        s["reconciliation"] = {"target_received": len(names["ids"]),
                               "accepted_not_received": len(set(ids) - names["ids"]),
                               "received_not_in_ledger": len(names["ids"] - set(ids))}
    print(json.dumps(s, indent=2))
    rec = s.get("reconciliation")
    return 1 if s["duplicate_names"] or (rec and (rec["accepted_not_received"] or rec["received_not_in_ledger"])) else 0


def _simulator_names(url: str, run_ids: list[str]) -> dict[str, set[str]]:
    """Execution ids the simulator received for these runs (its /_sim admin listing)."""
    ids: set[str] = set()
    for rid in run_ids:
        offset = 0
        while True:
            r = httpx.get(f"{url.rstrip('/')}/_sim/executions",
                          params={"name_prefix": f"-{rid}-", "offset": offset, "limit": 10000}, timeout=30)
            r.raise_for_status()
            page = r.json()
            ids.update(e["id"] for e in page["entities"] if f"-{rid}-" in (e["name"] or ""))
            offset += len(page["entities"])
            if offset >= page["total"] or not page["entities"]:
                break
    return {"ids": ids}


def add_commands(sub: Any) -> None:
    r = sub.add_parser("run", help="run a scenario headless with Locust")
    r.add_argument("scenario", nargs="?", default="scenarios/smoke.toml")
    r.add_argument("--target", help="embedded (default), a region such as us_east_1, or a base URL")
    r.add_argument("--rate", type=float, help="one constant arrival rate, launches/s (replaces the stages)")
    r.add_argument("--duration", help="with --rate: how long, e.g. 20s, 5m")
    r.add_argument("--workers", type=int, default=0, help="Locust workers (master + N local processes)")
    r.add_argument("--summary-json", help="write the run summary JSON here")
    r.add_argument("--html", help="Locust's HTML report")
    r.add_argument("--csv", help="Locust's CSV prefix")
    r.add_argument("--run-id", help="run id (default: generated)")
    r.add_argument("--ledger-dir", default="runs", help="ledgers go to <dir>/<run_id>/ (default runs)")
    r.set_defaults(func=_cmd_run)

    v = sub.add_parser("validate", help="check a scenario and preflight its payloads against the target")
    v.add_argument("scenario")
    v.add_argument("--target")
    v.set_defaults(func=_cmd_validate)

    led = sub.add_parser("ledger", help="ledger tools")
    lsub = led.add_subparsers(dest="ledger_command", required=True)
    s = lsub.add_parser("summary", help="reconcile a run's ledger")
    s.add_argument("run", help="a run id (under --ledger-dir), a run directory or a ledger file")
    s.add_argument("--ledger-dir", default="runs")
    s.add_argument("--target", help="a flowsim simulator URL: also reconcile against what it received")
    s.set_defaults(func=_cmd_ledger_summary)
