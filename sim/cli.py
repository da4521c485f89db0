"""The ``flowsim`` command: every subcommand's wiring. Handlers call into ``sim.platform`` (serve),
``sim.run`` (validate, run, capacity) and ``sim.results`` (compare, report), ``sim.load.ledger`` (ledger).

User mistakes print one line and exit 2; no traceback. This module never imports locust: ``run``
starts Locust in child processes.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from sim import __version__
from sim.errors import ConfigError, FlowsimError
from sim.load.scenario import Scenario, check_load, constant_rate, load_scenario, parse_duration

__all__ = ["main"]

EXIT_OK, EXIT_THRESHOLDS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"flowsim: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _describe(org: Any) -> dict[str, Any]:
    from sim.platform.schema import variables_schema
    from sim.platform.app import PERM_LAUNCH

    default = next((c for c in org.clients if PERM_LAUNCH in c.permissions), None)
    return {
        "org": {"id": org.id, "name": org.name, "source": org.source},
        # Local test credentials of the simulated org, printed on purpose so clients can log in.
        "client_id": default.id if default else None,
        "client_secret": default.secret if default else None,
        "clients": [{"id": c.id, "name": c.name, "permissions": sorted(c.permissions),
                     "token_lifetime_s": c.token_lifetime_s} for c in org.clients],
        "divisions": [{"id": d.id, "name": d.name} for d in org.divisions],
        "flows": [{"id": f.id, "name": f.name, "type": f.type, "division": org.division(f.division_id).name,
                   "divisionId": f.division_id, "version": f.version,
                   "inputSchema": variables_schema(f, f.inputs, "inputs")} for f in org.flows],
        "settings": {"rate_limit_per_window": org.settings.rate_limit_per_window,
                     "rate_limit_window_s": org.settings.rate_limit_window_s,
                     "strict_unknown_fields": org.settings.strict_unknown_fields},
    }


def _cmd_serve(args: argparse.Namespace) -> int:
    from sim import logs
    from sim.platform.org import default_org, load_org

    org = load_org(args.org) if args.org else default_org()
    if args.describe:
        print(json.dumps(_describe(org), indent=2))
        return EXIT_OK
    from sim.platform.server import bind, serve

    logs.configure(level=args.log_level)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", field="--port") from None
    host, port = sock.getsockname()[:2]

    def announce() -> None:
        # This exact line is what `flowsim run` waits for; keep its shape.
        print(f"flowsim simulator listening on http://{host}:{port}", flush=True)
        logs.get_logger().info("simulator.started", url=f"http://{host}:{port}", org=org.name, seed=args.seed)

    serve(org, sock, seed=args.seed, log_level="warning", announce=announce)
    logs.get_logger().info("simulator.stopped")
    return EXIT_OK


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535; 0 picks a free one)")
    return port


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="flowsim", description="Load and simulation tests for Genesys Cloud flow executions.")
    p.add_argument("--version", action="version", version=f"flowsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("serve", help="run the simulated Genesys Cloud API")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0 picks a free one)")
    s.add_argument("--org", help="simulated org TOML file (default: the built-in org)")
    s.add_argument("--seed", type=int, default=0, help="seed for ids, durations, outcomes and faults")
    s.add_argument("--describe", action="store_true", help="print the org as JSON and exit")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.set_defaults(func=_cmd_serve)

    _add_load_commands(sub)
    return p


# -- load side --------------------------------------------------------------------------------------------
def _rate(value: str) -> float:
    try:
        r = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(r) or r <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value!r}")
    return r


def _count(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def _scenario(args: argparse.Namespace) -> Scenario:
    sc = load_scenario(args.scenario)
    duration = parse_duration(args.duration, where="--duration") if getattr(args, "duration", None) else None
    sc = constant_rate(sc, rate_per_s=getattr(args, "rate", None), duration_s=duration)
    check_load(sc, processes=getattr(args, "workers", 0))
    return sc


def _prepare(sc: Scenario, target: str | None) -> Any:
    from sim.run.prepare import Prepared
    from sim.run.preflight import describe

    prepared = Prepared(sc, target or sc.target)
    if not prepared.ok:
        print(describe(prepared.checks))
        prepared.close()
        raise ConfigError("preflight failed: no load was sent", source=sc.source)
    return prepared


def _write_html(path: str | None, text: str) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
        print(f"report: {path}", file=sys.stderr)


def _cmd_validate(args: argparse.Namespace) -> int:
    from sim.run.prepare import Prepared
    from sim.run.preflight import describe

    sc = _scenario(args)
    with Prepared(sc, args.target or sc.target) as prepared:
        print(f"scenario {sc.source}: {len(sc.flows)} flow(s), {len(sc.stages)} stage(s), {sc.duration_s:.0f} s; "
              f"target {prepared.target.api_url}")
        print(describe(prepared.checks))
        ok = prepared.ok
    print("preflight passed" if ok else "preflight failed: fix the above before sending load")
    return 0 if ok else 1


def _cmd_run(args: argparse.Namespace) -> int:
    from sim.results.report import run_report
    from sim.results.text import run_text
    from sim.run.plan import new_run_id
    from sim.run.runner import RunOptions, run_locust

    sc = _scenario(args)
    with _prepare(sc, args.target) as prepared:
        plan = prepared.plan(run_id=args.run_id or new_run_id(), ledger_dir=args.ledger_dir)
        summary, signum = run_locust(plan, RunOptions(workers=args.workers, summary_json=args.summary_json,
                                                      locust_html=args.locust_html, csv=args.csv))
    print(run_text(summary))
    _write_html(args.html, run_report(summary))
    if summary.fatal:
        print(f"flowsim: {summary.aborted}", file=sys.stderr)
        return EXIT_USAGE
    if signum is not None or summary.interrupted:
        print("flowsim: interrupted; the summary and ledger above cover what was sent", file=sys.stderr)
        return 128 + (signum or signal.SIGINT)
    return 0 if summary.passed else 1


def _cmd_capacity(args: argparse.Namespace) -> int:
    from sim.results.report import capacity_report
    from sim.results.summary import CapacityStep, RunSummary
    from sim.results.text import capacity_line, step_line
    from sim.run.capacity import SLO, search
    from sim.run.plan import new_run_id
    from sim.run.process import Interrupted
    from sim.run.runner import RunOptions, run_locust

    sc = load_scenario(args.scenario)
    step_s = parse_duration(args.step_duration, where="--step-duration")
    if args.max < args.start:
        raise ConfigError("need --start <= --max", field="--start/--max")
    check_load(constant_rate(sc, rate_per_s=args.max, duration_s=step_s), processes=args.workers)
    slo = SLO(p95_ms=args.slo_p95_ms, max_error_rate=args.max_error_rate)
    base = new_run_id()
    count = [0]
    with _prepare(sc, args.target) as prepared:
        def step(rate: float) -> RunSummary:
            count[0] += 1
            plan = prepared.plan(run_id=f"{base}-s{count[0]}", ledger_dir=args.ledger_dir,
                                 scenario=constant_rate(sc, rate_per_s=rate, duration_s=step_s),
                                 # abort a step early once failures flood: well past the SLO, never far past the knee
                                 abort_error_rate=max(0.2, 5 * slo.max_error_rate))
            summary, signum = run_locust(plan, RunOptions(workers=args.workers, quiet=True))
            if signum is not None:
                raise Interrupted(signum)  # the search stops here: a cut-short step is no evidence
            return summary

        def show(st: CapacityStep) -> None:
            print(step_line(st), flush=True)

        result = search(step, slo, start=args.start, maximum=args.max, precision=args.precision, scenario=sc.name,
                        on_step=show)
    print(capacity_line(result))
    if args.summary_json:
        Path(args.summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary_json).write_text(json.dumps(result.to_dict(), indent=2))
    _write_html(args.html, capacity_report(result))
    return 0 if result.passed else 1


def _load_json(path: str) -> Any:
    from sim.results.summary import load_summary

    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError("file not found", source=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not JSON: {exc}", source=path) from None
    if not isinstance(data, dict):
        raise ConfigError("not a flowsim run or capacity summary (--summary-json)", source=path)
    return load_summary(data, source=path)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _cmd_compare(args: argparse.Namespace) -> int:
    from sim.results.compare import Tolerances, compare

    a, b = _load_json(args.a), _load_json(args.b)
    tol = Tolerances(latency_rel=args.latency_rel, latency_abs_ms=args.latency_abs_ms,
                     error_rate_abs=args.error_rate_abs, rate_rel=args.rate_rel)
    rows = compare(a, b, tol)
    print(f"{'metric':<26}{'A':>14}{'B':>14}{'change':>10}")
    for r in rows:
        ch = "" if r["change"] is None else f"{r['change']:+.1%}"
        print(f"{r['metric']:<26}{_fmt(r['a']):>14}{_fmt(r['b']):>14}{ch:>10}  {'REGRESSED' if r['regressed'] else 'ok'}")
    bad = [r["metric"] for r in rows if r["regressed"]]
    print(f"regression in: {', '.join(bad)}" if bad else "no regression beyond tolerances")
    return 1 if bad else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from sim.results.report import capacity_report, run_report
    from sim.results.summary import CapacityResult

    data = _load_json(args.summary)
    _write_html(args.out, capacity_report(data) if isinstance(data, CapacityResult) else run_report(data))
    return 0


def _cmd_ledger_summary(args: argparse.Namespace) -> int:
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
    if args.target:
        received = _received(args.target, s["run_ids"])
        extra = {i: name for i, name in received.items() if i not in ids}
        ghosts = {i for i, name in extra.items() if name in unanswered}
        s["reconciliation"] = {"target_received": len(received),
                               "accepted_not_received": len(ids - set(received)),
                               # launches that got no answer but ran: in the ledger (by name), not a mismatch
                               "unanswered_but_ran": len(ghosts),
                               "received_not_in_ledger": len(extra) - len(ghosts)}
    print(json.dumps(s, indent=2))
    rec = s.get("reconciliation")
    return 1 if s["duplicate_names"] or (rec and (rec["accepted_not_received"] or rec["received_not_in_ledger"])) else 0


def _received(url: str, run_ids: list[str]) -> dict[str, str]:
    """Execution id → name, for what a flowsim simulator received for these runs (its /_sim admin listing)."""
    ids: dict[str, str] = {}
    for rid in run_ids:
        offset = 0
        while True:
            r = httpx.get(f"{url.rstrip('/')}/_sim/executions", params={"offset": offset, "limit": 10000}, timeout=30)
            r.raise_for_status()
            page = r.json()
            ids.update((e["id"], e["name"]) for e in page["entities"] if f"-{rid}-" in (e["name"] or ""))
            offset += len(page["entities"])
            if offset >= page["total"] or not page["entities"]:
                break
    return ids


def _add_load_commands(sub: Any) -> None:
    r = sub.add_parser("run", help="run a scenario headless with Locust")
    r.add_argument("scenario", nargs="?", default="scenarios/smoke.toml", help="scenario TOML (default smoke)")
    r.add_argument("--target", help="embedded (default), a region such as us_east_1, or a base URL")
    r.add_argument("--rate", type=_rate, help="one constant arrival rate, launches/s (replaces the stages)")
    r.add_argument("--duration", help="how long, e.g. 20s, 5m (with --rate, or alone: the peak rate that long)")
    r.add_argument("--workers", type=_count, default=0, help="Locust workers: master + N local worker processes")
    r.add_argument("--summary-json", help="write the run summary JSON here")
    r.add_argument("--html", help="write flowsim's HTML report here")
    r.add_argument("--locust-html", help="also write Locust's own HTML report here")
    r.add_argument("--csv", help="Locust's CSV prefix")
    r.add_argument("--run-id", help="run id (default: generated)")
    r.add_argument("--ledger-dir", default="runs", help="ledgers go to <dir>/<run_id>/ (default runs)")
    r.set_defaults(func=_cmd_run)

    v = sub.add_parser("validate", help="check a scenario and preflight its payloads against the target")
    v.add_argument("scenario", help="scenario TOML")
    v.add_argument("--target", help="embedded (default), a region, or a base URL")
    v.set_defaults(func=_cmd_validate)

    c = sub.add_parser("capacity", help="find the highest arrival rate that meets the SLO")
    c.add_argument("scenario", help="scenario TOML (its flows, limits and settings; stages are replaced)")
    c.add_argument("--target", help="embedded (default), a region, or a base URL")
    c.add_argument("--slo-p95-ms", type=float, default=500.0, help="p95 launch latency limit, ms (default 500)")
    c.add_argument("--max-error-rate", type=float, default=0.01,
                   help="share of launches failed at first attempt (default 0.01)")
    c.add_argument("--start", type=_rate, default=5.0, help="first step, launches/s (default 5)")
    c.add_argument("--max", type=_rate, default=200.0, help="never go above, launches/s (default 200)")
    c.add_argument("--step-duration", default="20s", help="hold each step this long (default 20s)")
    c.add_argument("--precision", type=float, default=0.05, help="stop bisecting within this share (default 0.05)")
    c.add_argument("--workers", type=_count, default=0, help="Locust workers per step (default 0: one process)")
    c.add_argument("--ledger-dir", default="runs", help="ledgers go to <dir>/<run_id>-s<step>/ (default runs)")
    c.add_argument("--summary-json", help="write the capacity result JSON here")
    c.add_argument("--html", help="write the capacity HTML report here")
    c.set_defaults(func=_cmd_capacity)

    from sim.results.compare import Tolerances

    cmp_ = sub.add_parser("compare", help="compare two summaries; exit 1 when B regressed beyond tolerances")
    cmp_.add_argument("a", help="baseline summary JSON")
    cmp_.add_argument("b", help="candidate summary JSON")
    t = Tolerances()
    cmp_.add_argument("--latency-rel", type=float, default=t.latency_rel,
                      help=f"relative latency rise allowed, a fraction (default {t.latency_rel})")
    cmp_.add_argument("--latency-abs-ms", type=float, default=t.latency_abs_ms,
                      help=f"and absolute rise allowed, ms (default {t.latency_abs_ms})")
    cmp_.add_argument("--error-rate-abs", type=float, default=t.error_rate_abs,
                      help=f"error-rate rise allowed, a fraction (default {t.error_rate_abs})")
    cmp_.add_argument("--rate-rel", type=float, default=t.rate_rel,
                      help=f"relative rate drop allowed, a fraction (default {t.rate_rel})")
    cmp_.set_defaults(func=_cmd_compare)

    rep = sub.add_parser("report", help="render the HTML report of a run or capacity summary JSON")
    rep.add_argument("summary", help="summary JSON (flowsim run/capacity --summary-json)")
    rep.add_argument("--out", required=True, help="HTML file to write")
    rep.set_defaults(func=_cmd_report)

    led = sub.add_parser("ledger", help="ledger tools")
    lsub = led.add_subparsers(dest="ledger_command", required=True)
    s = lsub.add_parser("summary", help="reconcile a run's ledger")
    s.add_argument("run", help="a run id (under --ledger-dir), a run directory or a ledger file")
    s.add_argument("--ledger-dir", default="runs", help="where run directories are (default runs)")
    s.add_argument("--target", help="a flowsim simulator URL: also reconcile against what it received")
    s.set_defaults(func=_cmd_ledger_summary)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"flowsim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FlowsimError as exc:
        print(f"flowsim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("flowsim: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BaseException as exc:
        from sim.run.process import Interrupted

        if isinstance(exc, Interrupted):
            print(f"flowsim: interrupted ({exc})", file=sys.stderr)
            return 128 + exc.signum
        raise


if __name__ == "__main__":
    raise SystemExit(main())
