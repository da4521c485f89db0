"""``flowsim run``: Locust and the embedded simulator are started first (their start-up takes longest), the scenario
and outputs are checked and preflight runs meanwhile, then the plan, the run, the checks that need the target
(separation, bot turns), the reports and the verdict. The other subcommands' handlers are ``sim.commands``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sim.checks import write_html
from sim.commands import check_outputs, check_workers, live_view, prepare, report_module, scenario_for
from sim.errors import EXIT_USAGE, FlowsimError
from sim.load.scenario import Scenario

__all__ = ["run", "add_separation"]


def run(args: argparse.Namespace) -> int:
    from sim.run.runner import Fleet, RunOptions

    check_workers(args)
    # Locust starts up first (its imports take longest), while the scenario, the outputs and preflight are checked
    # (its master waits for the plan): a short run starts sooner. A problem found meanwhile ends it unused.
    with Fleet(RunOptions(workers=args.workers, summary_json=args.summary_json, locust_html=args.locust_html,
                          csv=args.csv, prometheus=args.prometheus, live_view=live_view(args))) as fleet:
        sc = scenario_for(args)
        with _embedded(args.target or sc.target) as simulator:  # the other thing a run waits for: started next
            from sim.run.plan import check_run_id

            check_outputs(args, sc)
            if args.run_id:
                check_run_id(args.run_id, args.ledger_dir)
            summary, signum = _run_fleet(fleet, sc, args, simulator)
    return _after_run(summary, signum, args)


@contextlib.contextmanager
def _embedded(target: str) -> Iterator[Any]:
    """The embedded simulator when it is the target, started now and stopped on the way out (if preflight has not
    taken it over and stopped it already)."""
    if target != "embedded":
        yield None
        return
    from sim.run.prepare import EmbeddedSimulator

    simulator = EmbeddedSimulator()
    try:
        yield simulator
    finally:
        simulator.stop()


def _run_fleet(fleet: Any, sc: Scenario, args: argparse.Namespace, simulator: Any) -> tuple[Any, int | None]:
    """Preflight, the plan, the run on ``fleet``, and the checks that need the embedded simulator still up."""
    from sim.intents import add_turn_check
    from sim.run.plan import new_run_id

    with prepare(sc, args, simulator=simulator) as prepared:
        try:
            plan = prepared.plan(run_id=args.run_id or new_run_id(), ledger_dir=args.ledger_dir,
                                 processes=max(1, args.workers))
            for line in plan.sizing:
                print(f"flowsim: {line}", file=sys.stderr)
            summary, signum = fleet.run(plan)
        finally:
            fleet.close()  # every Locust process ends before the embedded simulator (closed next) does
        return add_separation(add_turn_check(summary, plan, prepared), plan, prepared, args.summary_json), signum


def _after_run(summary: Any, signum: int | None, args: argparse.Namespace) -> int:
    """The run's reports, its summary on the terminal, its exit status."""
    from sim.results.text import print_run

    write_html(args.html, lambda: report_module().run_report(summary))
    if args.junit or args.csv_series:
        from sim.results.export import junit_xml, series_csv

        for path, text in ((args.junit, junit_xml), (args.csv_series, series_csv)):
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(text(summary), encoding="utf-8")
    interrupted = signum is not None or summary.interrupted
    if summary.fatal:
        print(f"flowsim: {summary.aborted}", file=sys.stderr)
    elif interrupted:
        print("flowsim: interrupted; the summary and ledger below cover what was sent", file=sys.stderr)
    print_run(summary)  # last: its RESULT line ends the output
    if summary.fatal:
        return EXIT_USAGE
    if interrupted:
        return 128 + (signum or signal.SIGINT)
    return 0 if summary.passed else 1


def add_separation(summary: Any, plan: Any, prepared: Any, summary_json: str | None) -> Any:
    """The separation proof, in the summary (and its JSON, rewritten): on the embedded simulator analytics are
    immediate, so it is checked now; a real org's analytics lag behind, so the summary says how to check later.
    A check after the run never turns it into a failure."""
    import dataclasses

    from sim.separation import analytics_of

    if not summary.launched or summary.interrupted or summary.fatal:
        return summary
    if prepared.simulator:
        try:
            check = analytics_of(plan, Path(summary.ledger_path), prepared.target, wait_s=10).to_dict()
        except FlowsimError as exc:
            check = {"verdict": f"NOT CHECKED: {exc}", "separated": False, "lines": []}
    else:
        check = {"verdict": f"PENDING: platform analytics lag behind; check them in a few minutes with "
                            f"`flowsim analytics {plan.run_id}`", "separated": None, "lines": []}
    summary = dataclasses.replace(summary, analytics={**summary.analytics, "check": check})
    if summary_json:  # replaced whole (a reader never sees half a file); a full disk is one line, not a traceback
        tmp = Path(f"{summary_json}.tmp")
        try:
            tmp.write_text(json.dumps(summary.to_dict(), indent=2), encoding="utf-8")
            os.replace(tmp, summary_json)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            print(f"flowsim: the analytics check is not in {summary_json} ({exc.strerror or exc}); the summary "
                  "there is the run's, without it", file=sys.stderr)
    return summary
