"""The ``flowsim`` subcommands' handlers: each takes the parsed options and returns the exit status.

They call into ``sim.platform`` (serve), ``sim.run`` (validate, run, capacity), ``sim.results`` (compare,
report) and ``sim.load.ledger`` (ledger summary). Heavy imports happen inside the handler that needs
them, so ``flowsim --help`` stays fast. Never imports locust.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sim.checks import analytics, compare, ledger_merge, ledger_summary, report, write_html
from sim.errors import ConfigError
from sim.load.overrides import check_load, constant_rate, scenario_for_run
from sim.load.scenario import Scenario, load_scenario, parse_duration

__all__ = ["serve", "validate", "capacity", "compare", "report", "ledger_summary", "ledger_merge", "analytics", "EXIT_OK",
           "live_view", "cleanup", "nlu", "scenario_for", "prepare", "check_workers", "check_outputs",
           "report_module"]

EXIT_OK = 0
"""A summary holds one row per second of the run: 64 MiB is days of rows; anything larger is not a summary."""


def serve(args: argparse.Namespace) -> int:
    from sim import logs
    from sim.platform.org import default_org, load_org

    org = load_org(args.org) if args.org else default_org()
    if getattr(args, "latency_ms", None):
        import dataclasses

        from sim.platform.org import Latency

        median, p99 = args.latency_ms
        org = dataclasses.replace(org, network=Latency(median_ms=median, p99_ms=p99))
    if args.describe:
        from sim.platform.describe import describe

        print(json.dumps(describe(org), indent=2))
        return EXIT_OK
    from sim.platform.server import bind, serve_announced

    logs.configure(level=args.log_level)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", field="--port") from None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("give both --tls-cert and --tls-key (PEM files), or neither", field="--tls-cert")
    serve_announced(org, sock, seed=args.seed, tls=(args.tls_cert, args.tls_key) if args.tls_cert else None)
    return EXIT_OK


def scenario_for(args: argparse.Namespace) -> Scenario:
    return scenario_for_run(args.scenario, rate_per_s=getattr(args, "rate", None),
                            duration=getattr(args, "duration", None), processes=getattr(args, "workers", 0),
                            webhook=getattr(args, "webhook", None), webhook_url=getattr(args, "webhook_url", None))


def prepare(sc: Scenario, args: argparse.Namespace, *, capacity_max_rate: float | None = None,
             simulator: Any = None) -> Any:
    from sim.run.live import LiveRules
    from sim.run.prepare import Prepared
    from sim.run.preflight import describe

    rules = LiveRules(approval=args.approval, outside_window=args.outside_window)
    prepared = Prepared(sc, args.target or sc.target, rules=rules, capacity_max_rate=capacity_max_rate,
                        simulator=simulator)
    if prepared.live_note:
        print(f"flowsim: {prepared.live_note}", file=sys.stderr)
    if not prepared.ok:
        print(describe(prepared.checks))
        prepared.close()
        raise ConfigError("preflight failed: no load was sent", source=sc.source)
    return prepared


def validate(args: argparse.Namespace) -> int:
    from sim.load.schedule import Schedule
    from sim.drivers import driver_for
    from sim.run.prepare import Prepared
    from sim.run.preflight import describe

    sc = scenario_for(args)
    with Prepared(sc, args.target or sc.target) as prepared:
        print(f"scenario {sc.source}: {len(sc.flows)} flow(s), {len(sc.stages)} stage(s), {sc.duration_s:.0f} s; "
              f"target {prepared.target.api_url}")
        print(describe(prepared.checks))
        sizing = prepared.sizing()
        for line in sizing.explanation + sizing.warnings:
            print(line)
        for line in driver_for(sc.kind).notes(sc, Schedule(sc.stages).total, simulator=prepared.simulator):
            print(line)
        ok = prepared.ok
    print("preflight passed" if ok else "preflight failed: fix the above before sending load")
    return 0 if ok else 1


def live_view(args: argparse.Namespace) -> bool:
    """The live table on a terminal; log lines when piped, with --log-json or --plain, or on a dumb terminal."""
    return (sys.stderr.isatty() and not args.plain and not args.log_json
            and os.environ.get("TERM", "dumb") not in ("dumb", "unknown"))


def check_workers(args: argparse.Namespace) -> None:
    """Worker processes on this machine: 2 per core, or up to MAX_WORKERS with --allow-many-workers (loud)."""
    from sim.cli import MAX_WORKERS

    cores = os.cpu_count() or 1
    cap = MAX_WORKERS if args.allow_many_workers else max(2, 2 * cores)
    if args.workers > cap:
        more = "" if args.allow_many_workers else "; --allow-many-workers raises the cap to " + str(MAX_WORKERS)
        raise ConfigError(f"{args.workers} workers on a {cores}-core machine: at most {cap} here (each worker is a "
                          f"process that wants a core; more only starve each other and send late){more}",
                          field="--workers")
    if args.allow_many_workers and args.workers > 2 * cores:
        print(f"flowsim: WARNING: {args.workers} workers on {cores} cores (--allow-many-workers): expect late and "
              "missed starts", file=sys.stderr)


def _ledger_bytes(sc: Scenario) -> int:
    """About how many bytes a run's ledger takes (the driver's estimate per unit). For the free-space check, not
    a promise."""
    from sim.drivers import driver_for
    from sim.load.schedule import Schedule

    return Schedule(sc.stages).total * driver_for(sc.kind).ledger_bytes_per_unit(sc)


def check_outputs(args: argparse.Namespace, sc: Scenario) -> None:
    """Everything a run will write, checked before any load is spent on it."""
    from sim._files import check_output, check_writable_dir

    check_writable_dir(args.ledger_dir, what="--ledger-dir (the run's ledger)", need_bytes=_ledger_bytes(sc))
    for name in ("summary_json", "html", "junit", "csv_series", "locust_html"):
        check_output(getattr(args, name, None), what="--" + name.replace("_", "-"))


def report_module() -> Any:
    """The HTML report module, imported only when a report is written: matplotlib takes a second to import, and
    a run's start should not wait for it."""
    from sim.results import report

    return report


def capacity(args: argparse.Namespace) -> int:
    from sim.results.summary import CapacityStep, RunSummary
    from sim.results.text import capacity_line, step_line
    from sim.run.capacity import MIN_FAILED, SLO, launches_to_resolve, search
    from sim.run.plan import new_run_id
    from sim.run.process import Interrupted
    from sim.run.runner import RunOptions, run_locust

    sc = load_scenario(args.scenario)
    step_s = parse_duration(args.step_duration, where="--step-duration")
    if args.max < args.start:
        raise ConfigError("need --start <= --max", field="--start/--max")
    check_load(constant_rate(sc, rate_per_s=args.max, duration_s=step_s), processes=args.workers)
    check_workers(args)
    check_outputs(args, constant_rate(sc, rate_per_s=args.max, duration_s=step_s))
    slo = SLO(p95_ms=args.slo_p95_ms, max_error_rate=args.max_error_rate)
    base = new_run_id()
    count = [0]
    resolve = launches_to_resolve(slo.max_error_rate)
    if resolve and resolve > args.start * step_s:
        print(f"flowsim: a step needs {resolve} launches for {MIN_FAILED} failed ones to stand for "
              f"{slo.max_error_rate:.2%}: steps below {resolve / step_s:.4g}/s run longer than {args.step_duration} "
              f"(up to 10×)", file=sys.stderr)
    with prepare(sc, args, capacity_max_rate=args.max) as prepared:
        def step(rate: float) -> RunSummary:
            count[0] += 1
            length_s = min(10 * step_s, max(step_s, resolve / rate))  # long enough to resolve the error SLO
            plan = prepared.plan(run_id=f"{base}-s{count[0]}", ledger_dir=args.ledger_dir, processes=max(1, args.workers),
                                 scenario=constant_rate(sc, rate_per_s=rate, duration_s=length_s),
                                 # abort a step early once failures flood: well past the SLO, never far past the knee
                                 abort_error_rate=max(0.2, 5 * slo.max_error_rate))
            summary, signum = run_locust(plan, RunOptions(workers=args.workers, quiet=True))
            if signum is not None:
                raise Interrupted(signum)  # the search stops here: a cut-short step is no evidence
            return summary

        def show(st: CapacityStep) -> None:
            print(step_line(st, resolve=resolve), flush=True)

        result = search(step, slo, start=args.start, maximum=args.max, precision=args.precision, scenario=sc.name,
                        on_step=show, load=sc.kind)
    print(capacity_line(result))
    if args.summary_json:
        Path(args.summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary_json).write_text(json.dumps(result.to_dict(), indent=2))
    write_html(args.html, lambda: report_module().capacity_report(result))
    return 0 if result.passed else 1


def cleanup(args: argparse.Namespace) -> int:
    from sim.cleanup import cleanup as run_cleanup

    return run_cleanup(args)


def nlu(args: argparse.Namespace) -> int:
    from sim.nlu import nlu as run_nlu

    return run_nlu(args)
