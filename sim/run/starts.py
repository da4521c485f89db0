"""What a START begins, in the Locust master or single process: the plan of the next run — ``flowsim run``'s
resolved plan (once), or one resolved here from the ``--flowsim-*`` options as typed or as the web UI's form set
them (only the form's own fields change; ``sim.run.webform``) — and how SIGTERM stops it. No locust import:
``locust_user`` calls in."""

from __future__ import annotations

import copy
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import gevent

from sim import logs
from sim.errors import FlowsimError
from sim.run import webform
from sim.run.fleet import ProcessRun, Role
from sim.run.live import LiveRules
from sim.run.plan import RunPlan
from sim.run.prepare import Prepared, prepare_from_options

__all__ = ["halt_on_sigterm", "add_options", "resolve_plan", "form_options", "current", "next_run", "check_start",
           "PLAN_WAIT_S", "await_workers", "WORKERS_WAIT_S"]


def add_options(parser: Any) -> None:
    """flowsim's ``--flowsim-*`` options on Locust's command line (and, marked, in its web UI's form)."""
    # The web UI's form shows the run options (a START resolves a new plan from them); the plan file,
    # the outputs and the metrics address are start-up options only.
    def a(*args: Any, ui: bool = False, **kw: Any) -> None:
        parser.add_argument(*args, include_in_web_ui=ui, **kw)

    # Loopback unless told: Locust's own defaults are every interface, with no login (sim.run.webform).
    parser.set_defaults(web_host="127.0.0.1", master_bind_host="127.0.0.1")

    a("--flowsim-plan", default="", help="a resolved run plan (JSON) from `flowsim run`; replaces the options below")
    a("--flowsim-scenario", default=os.environ.get("FLOWSIM_SCENARIO", "scenarios/smoke.toml"), ui=True,
      help="scenario TOML file")
    a("--flowsim-target", default="", ui=True, help="override the scenario's target (URL, region, embedded)")
    a("--flowsim-run-id", default="", help="run id (default: generated)")
    a("--flowsim-rate", default="", ui=True, help="one constant arrival rate (launches/s) instead of the stages")
    a("--flowsim-duration", default="", ui=True, help="duration with --flowsim-rate, e.g. 20s, 5m")
    a("--flowsim-ledger-dir", default="runs", help="where ledgers go (<dir>/<run_id>/)")
    a("--flowsim-summary-json", default="", help="write the run summary JSON here")
    # Never from the form (sim.run.webform.pin): the vendor's rules are agreed on the command line.
    a("--flowsim-approval", default="", help="the vendor's approval reference, for load tests against a real org")
    a("--flowsim-outside-window", action="store_true", help="another test window was agreed with the vendor")
    a("--flowsim-prometheus", default="", help="HOST:PORT: serve live metrics for Prometheus at /metrics")
    a("--flowsim-live-file", default="", help="write the live view's figures here every second (from `flowsim run`)")
    a("--flowsim-abort-error-rate", type=float, default=0.0, ui=True,
      help="stop early when failures + 429s exceed this share of launches over 3 s (0: never)")


PLAN_WAIT_S = 600.0
"""How long a master started by ``flowsim run`` waits for its plan (the parent resolves it meanwhile: preflight,
sizing look-ups). The parent ends it sooner if preflight fails; the kernel, if the parent dies."""


def _wait_for(path: Path) -> Path:
    """``flowsim run`` starts Locust while it resolves the plan, and writes the file (atomically) when it has it."""
    deadline = time.monotonic() + PLAN_WAIT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise FlowsimError(f"no run plan at {path} after {PLAN_WAIT_S:.0f} s")
        time.sleep(0.02)
    return path


def resolve_plan(opts: Any) -> tuple[RunPlan, Prepared | None]:
    """The plan from `flowsim run`, or resolved here (preflight included) in plain Locust use."""
    if opts.flowsim_plan:
        return RunPlan.from_dict(json.loads(_wait_for(Path(opts.flowsim_plan)).read_text())), None
    return _prepare(opts, run_id=opts.flowsim_run_id,
                    processes=getattr(opts, "expect_workers", 1) if getattr(opts, "master", False) else 1)


def _prepare(opts: Any, *, run_id: str, processes: int, simulator: Any = None) -> tuple[RunPlan, Prepared]:
    """A plan (preflight included) from the ``--flowsim-*`` options, as typed or as the web UI's form set them."""
    return prepare_from_options(
        scenario=opts.flowsim_scenario, target=opts.flowsim_target, rate=opts.flowsim_rate,
        duration=opts.flowsim_duration, run_id=run_id, ledger_dir=opts.flowsim_ledger_dir,
        abort_error_rate=opts.flowsim_abort_error_rate, processes=processes,
        rules=LiveRules(approval=opts.flowsim_approval or None, outside_window=opts.flowsim_outside_window),
        simulator=simulator)


def current(env: Any) -> ProcessRun | None:
    """This process's current (or last) run."""
    return getattr(env, "flowsim", None)


def form_options(opts: Any) -> tuple[Any, ...]:
    """The options a web-UI form can change between runs (a change means a new plan)."""
    return tuple(getattr(opts, k, None) for k in ("flowsim_scenario", "flowsim_target", "flowsim_rate",
                                                  "flowsim_duration", "flowsim_approval", "flowsim_outside_window",
                                                  "flowsim_abort_error_rate"))


def next_run(environment: Any, *, role: Role, processes: int) -> ProcessRun | None:
    """The run a START begins (master / single process). ``--flowsim-plan``: the one plan, once. Plain
    Locust: the plan resolved at start-up for the first run if the form left the options alone, else
    resolved anew from the form (web UI). A bad form value: logged, shown in the flowsim tab, no run (the web UI
    refuses such a START before it gets here: :func:`check_start`)."""
    prev = current(environment)
    opts = environment.parsed_options
    assert opts is not None
    if opts.flowsim_plan:  # flowsim run's plan runs once
        webform.pin(opts, getattr(environment, "flowsim_startup", {}))
        return prev if prev is not None and prev.t0 is None and prev.plan is not None else None
    try:
        return _prepare_next(environment, opts, role=role, processes=processes)
    except FlowsimError as exc:
        if prev is not None:
            prev.error = str(exc)
        logs.get_logger(component="locust").error("plan.refused", reason=str(exc))
        return None


def _prepare_next(environment: Any, opts: Any, *, role: Role, processes: int) -> ProcessRun:
    """The next run for ``opts`` (the previous one if it has not begun and the form left its options alone), made
    current; FlowsimError when the form's values cannot make one."""
    prev = current(environment)
    startup: dict[str, Any] = getattr(environment, "flowsim_startup", {})
    webform.pin(opts, startup)  # only the form's own fields change a run; the rest is the command line's
    if prev is not None and prev.t0 is None and prev.plan is not None and prev.options == form_options(opts):
        return prev
    webform.check_form(opts, startup)
    # The embedded simulator outlives a run: the next START keeps its target (and the URL the web UI shows).
    sim = prev.prepared.sim if prev is not None and prev.prepared is not None else None
    plan, prepared = _prepare(opts, run_id="", processes=processes, simulator=sim)
    if prev is not None and prev.prepared is not None and prev.prepared is not prepared:
        if prepared.sim is not None and prepared.sim is prev.prepared.sim:
            prev.prepared.sim = None  # handed over: closing the old preparation must not stop it
        prev.prepared.close()
        prev.prepared = None
    run = ProcessRun(environment, plan, prepared, role=role)
    run.options = form_options(opts)
    environment.flowsim = run
    return run


def check_start(environment: Any, form: dict[str, str], *, role: Role, processes: int) -> str | None:
    """A web-UI START, checked before Locust takes it: the form's flowsim fields applied to a copy of the options
    as Locust would apply them, and the run prepared (preflight included) — the START that follows runs it. The
    problem in one line, for the form to show (None: fine)."""
    opts = copy.copy(environment.parsed_options)
    for key in webform.FORM_FIELDS:
        if key in form:
            old = getattr(opts, key, None)
            try:
                setattr(opts, key, form[key] if old is None or isinstance(old, str) else type(old)(form[key]))
            except ValueError:
                return f"{key}: {form[key][:40]!r} is not a number"
    try:
        _prepare_next(environment, opts, role=role, processes=processes)
    except FlowsimError as exc:
        prev = current(environment)
        if prev is not None:
            prev.error = str(exc)  # the flowsim tab says it too
        logs.get_logger(component="locust").error("plan.refused", reason=str(exc))
        return str(exc)
    return None


def halt_on_sigterm(environment: Any) -> None:
    """Headless with a load shape, Locust's main blocks on the shape before it installs its SIGTERM handler: until
    then SIGTERM would kill this process uncounted. Halt the run instead (the schedule stops everywhere, in-flight
    launches finish); the shape then ends the test as after any run, and the summary is written (INTERRUPTED).
    Calling runner.quit() here would race Locust's own shutdown into stopping the users twice."""
    def on_sigterm() -> None:
        run = current(environment)
        if run is None:
            return
        run.log.warning("run.signal", signal="SIGTERM", action="stopping the run, then counting it")
        if run.life.signal() == "halt":  # not begun ("end"): the shape ends the test at its next tick
            gevent.spawn(run.halt)

    gevent.signal_handler(signal.SIGTERM, on_sigterm)


WORKERS_WAIT_S = 30.0


def await_workers(runner: Any, opts: Any) -> None:
    """Headless, Locust's master polls for its ``--expect-workers`` once a second before it starts the test.
    Waiting for them here first (at init, a few ms apart; forked workers are ready ~0.1 s after the master) makes
    that poll pass at once: the run starts up to 1 s sooner. Bounded: after ``WORKERS_WAIT_S`` Locust's own wait
    (and its messages) take over."""
    if not getattr(opts, "headless", False):
        return
    deadline = time.monotonic() + WORKERS_WAIT_S
    while len(runner.clients.ready) < opts.expect_workers and time.monotonic() < deadline:
        gevent.sleep(0.02)
