"""What a Locust process shows beyond Locust's own pages: the **flowsim tab** of the web UI and the live
metrics endpoints. No locust import: it is handed the Environment's web UI (a Flask app) and a callable
that returns the current run's :class:`~sim.run.metrics.Snapshot` and finished summary.

The tab uses Locust's web-UI extension points (``extendedTabs`` / ``extendedTables`` in the template
arguments, ``extendedStats`` added to ``/stats/requests``): a table of what Locust's charts cannot say —
target vs achieved launch rate, missed starts, 429s by scope, latency per attempt and end to end, flow
outcomes and durations, each threshold and the verdict.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from gevent.pywsgi import WSGIServer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, make_wsgi_app

from sim import logs
from sim.load.figures import Figures, ms_text
from sim.load.thresholds import judge
from sim.results.summary import RunSummary
from sim.run import webform
from sim.run.fleet import ProcessRun
from sim.run.metrics import Snapshot, registry_for

__all__ = ["TAB_KEY", "tab_rows", "install_tab", "install_start_check", "install_login", "serve_metrics", "View", "check_exposure",
           "install_views"]

TAB_KEY = "flowsim"

View = Callable[[], tuple[Snapshot | None, RunSummary | None, str | None]]
"""The current run's snapshot, its summary once finished, and a plan error (bad form input), if any."""


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{ms_text(v)} ms"


def _figure_rows(f: Figures, row: Callable[[str, Any], None], in_flight: int | None = None) -> None:
    """The rows every state shows, from the one figures value (live: the run so far; finished: the ledger's)."""
    fc = f.flow_completion
    row("launches", f"launched {f.launched}, succeeded {f.succeeded}, failed {f.failed}"
                    + (f", in flight {in_flight}" if in_flight is not None else ""))
    row("errors", f"first attempt {f.first_attempt_error_rate:.2%}, after retries {f.error_rate:.2%}, "
                  f"retries {f.retries}")
    row("429s", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in f.rate_limited.items()))
    for name, p in (("latency per attempt", f.attempt_latency_ms), ("latency end to end", f.latency_ms)):
        row(name, f"p50 {_ms(p.p50)}, p95 {_ms(p.p95)}, p99 {_ms(p.p99)}")
    if fc.followed:
        row("flows", f"followed {fc.followed}, outcomes {', '.join(f'{k} {v}' for k, v in fc.outcomes.items())}"
                     f", duration p95 {_ms(fc.duration_ms.p95)}")
    if f.section is not None:
        for name, value in f.section.rows():
            row(name, value)


def tab_rows(snap: Snapshot | None, summary: RunSummary | None, error: str | None, thresholds: Any = None) -> list[dict[str, str]]:
    """The flowsim tab: rows of (figure, value); a finished run's figures come from its summary (the ledger)."""
    rows: list[dict[str, str]] = []

    def row(figure: str, value: Any) -> None:
        rows.append({"figure": figure, "value": str(value)})

    if error:
        row("error", error)
    if summary is not None:
        s = summary
        row("verdict", s.verdict + (f" — aborted: {s.aborted}" if s.aborted else ""))
        row("run", f"{s.run_id} ({s.scenario}, {s.workers} worker(s)); counts from the "
                   f"{s.ledger.get('counts_source', 'ledger')}")
        row("launch rate", f"target {s.target_rate_per_s}/s, achieved {s.achieved_rate_per_s}/s")
        row("schedule", f"scheduled {s.scheduled}; never sent: missed starts {s.missed_starts}, late {s.late}, "
                        f"not sent {s.not_sent}")
        _figure_rows(s.figures, row)
        for t in s.thresholds:
            row(f"threshold {t.name}", f"{'PASS' if t.passed else 'FAIL'}: {t.judged} ({t.describes})")
        return rows
    if snap is None:
        if not error:
            row("state", "no run yet: press START (the load shape sets the users; the scenario sets the rate)")
        return rows
    f = snap.figures
    row("verdict", "RUNNING (judged when the run ends)")
    row("run", f"{snap.run_id} ({snap.scenario})")
    row("launch rate", f"target now {snap.target_rate_per_s:g}/s, achieved so far {f.achieved_rate_per_s:.2f}/s")
    row("schedule", f"never sent so far: missed starts {f.missed_starts}, late {f.late}")
    _figure_rows(f, row, snap.in_flight)
    if thresholds is not None:
        for r in judge(f.observed(), thresholds):
            row(f"threshold {r.name}", f"{'passing' if r.passed else 'failing'} so far: {r.judged}")
    return rows


_SETTLING = ("cleanup", "stopping", "stopped")
_WORKERS_BACK_S = 15.0
"""How long after a run is counted the page waits (polling) for its workers to be ready again."""


def install_tab(app: Any, template_args: dict[str, Any], view: View, thresholds: Callable[[], Any],
                unsettled: Callable[[], bool] = lambda: False) -> None:
    """Add the flowsim tab to Locust's web UI (its extension points; see the module docstring).

    Locust's page polls ``/stats/requests`` only while the state it last saw is spawning or running: a run's end
    seen as cleanup or stopping froze the page there (the STOP button red, no verdict) until a reload. While a run
    has begun and is not yet counted (``unsettled``), the page is told "running", so it keeps polling until the
    run is counted and Locust has stopped; the flowsim tab says what is happening meanwhile."""
    from flask import request

    template_args["extendedTabs"] = [{"title": "flowsim", "key": TAB_KEY}]
    template_args["extendedTables"] = [{"key": TAB_KEY, "structure": [{"key": "figure", "title": "Figure"},
                                                                       {"key": "value", "title": "Value"}]}]

    @app.after_request  # type: ignore[untyped-decorator]
    def extend_stats(response: Any) -> Any:
        if request.path != "/stats/requests" or response.status_code != 200:
            return response
        snap, summary, error = view()
        data = response.get_json()
        rows = tab_rows(snap, summary, error, thresholds())
        if data.get("state") in _SETTLING and unsettled():
            rows.insert(0, {"figure": "state", "value": f"{data['state']}: ending the run, then counting it"})
            data["state"] = "running"
        data["extendedStats"] = [{"key": TAB_KEY, "data": rows}]
        response.set_data(json.dumps(data))
        return response


def install_login(web_ui: Any, password: str) -> None:
    """Locust's ``--web-login`` with flowsim's password (``FLOWSIM_WEB_PASSWORD``): Locust's own login page and
    login manager, a password compared in constant time, a fresh session key per process."""
    import hmac

    from flask import Blueprint, redirect, request, session, url_for
    from flask_login import UserMixin, login_user

    class _User(UserMixin):  # type: ignore[misc]
        def __init__(self, uid: str) -> None:
            self.id = uid

    web_ui.app.secret_key = os.urandom(32)
    web_ui.login_manager.user_loader(lambda uid: _User(uid) if uid == "flowsim" else None)
    web_ui.auth_args = {"username_password_callback": "/flowsim/login", "title": "flowsim"}
    bp = Blueprint("flowsim_login", __name__)

    @bp.route("/flowsim/login", methods=["POST"])
    def submit() -> Any:
        given = str(request.form.get("password", ""))[:1024]
        if hmac.compare_digest(given.encode(), password.encode()):
            login_user(_User("flowsim"))
            return redirect(url_for("locust.index"))
        session["auth_error"] = "Wrong password"
        return redirect(url_for("locust.login"))

    web_ui.app.register_blueprint(bp)


def serve_metrics(web_ui: Any, address: str, snapshot: Callable[[], Snapshot | None], log: Any) -> None:
    """Live metrics for Prometheus: ``/flowsim/metrics`` on Locust's web UI (``web_ui``, when up; behind its login
    when there is one) and ``http://HOST:PORT/metrics`` with ``--flowsim-prometheus HOST:PORT`` (headless runs)."""
    registry = registry_for(snapshot)
    if web_ui is not None:
        @web_ui.app.route("/flowsim/metrics")  # type: ignore[untyped-decorator]
        @web_ui.auth_required_if_enabled  # type: ignore[untyped-decorator]
        def flowsim_metrics() -> Any:
            return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}
    if not address:
        return
    host, _, port = address.rpartition(":")
    metrics_app = make_wsgi_app(registry)

    def wsgi(env: dict[str, Any], start: Any) -> Any:
        if env.get("PATH_INFO") == "/metrics":
            return metrics_app(env, start)
        start("404 Not Found", [("Content-Type", "text/plain")])
        return [b"flowsim serves /metrics\n"]

    server = WSGIServer((host, int(port)), wsgi, log=None)
    try:
        server.start()
    except OSError as exc:
        print(f"flowsim: cannot serve metrics on {address}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)
    log.info("metrics.serving", url=f"http://{host}:{server.server_port}/metrics")


def check_exposure(environment: Any, *, master: bool) -> None:
    """Exit 2 with one line when the web UI would listen beyond loopback without a login; install the login when
    asked; warn when the master listens beyond loopback (``sim.run.webform``)."""
    opts = environment.parsed_options
    problems = webform.check_exposure(web_host=getattr(opts, "web_host", None), web_ui=environment.web_ui is not None,
                                      web_login=bool(getattr(opts, "web_login", False)),
                                      password_set=bool(os.environ.get("FLOWSIM_WEB_PASSWORD")))
    if problems:
        print(f"flowsim: {problems[0]}", file=sys.stderr)
        sys.exit(2)
    if environment.web_ui is not None and getattr(opts, "web_login", False):
        install_login(environment.web_ui, os.environ["FLOWSIM_WEB_PASSWORD"])
    if master and not webform.is_loopback(getattr(opts, "master_bind_host", "*") or "*"):
        logs.get_logger(component="locust").warning(
            "master.exposed", bind=getattr(opts, "master_bind_host", "*"),
            note="whoever reaches this port can join the run as a worker: keep it on a private network")


def install_start_check(app: Any, check: Callable[[dict[str, str]], str | None]) -> None:
    """A web-UI START (``POST /swarm``) whose flowsim fields cannot make a run is refused with its reason, which
    Locust's form shows beside START — rather than flipping to STOPPED on an empty page."""
    from flask import jsonify, request

    @app.before_request  # type: ignore[untyped-decorator]
    def check_start() -> Any:
        if request.path != "/swarm" or request.method != "POST":
            return None
        problem = check({k: str(v) for k, v in request.form.items()})
        return None if problem is None else jsonify({"success": False, "message": f"flowsim: {problem}"})


def install_views(environment: Any, current: Callable[[], ProcessRun | None], log: Any) -> None:
    """The flowsim tab in Locust's web UI and the Prometheus endpoint, both reading the current run."""
    def view() -> tuple[Snapshot | None, RunSummary | None, str | None]:
        run = current()
        if run is None:
            return None, None, None
        return (run.snapshot() if run.t0 is not None else None), run.result, run.error

    def thresholds() -> Any:
        run = current()
        return run.plan.scenario.thresholds if run is not None and run.plan is not None else None

    def snapshot() -> Snapshot | None:
        run = current()
        return run.snapshot() if run is not None else None

    def unsettled() -> bool:
        """A run has begun and is not counted yet, or (master) a worker is not back to ready after it: Locust
        drops a stopping worker from its count until the worker says it is ready again, and its page, were it to
        stop polling before that, would keep START disabled for want of workers."""
        run = current()
        if run is None or not run.life.begun or run.error is not None:
            return False
        if run.result is None:
            return True
        coord, clients = run.coord, getattr(environment.runner, "clients", None)
        if coord is None or clients is None or time.monotonic() - run.counted_at > _WORKERS_BACK_S:
            return False  # a worker that has not come back by now may never: the page may settle without it
        ready = {c.id for c in clients.values() if c.state == "ready"}
        return any(m not in ready for m in coord.members if m not in coord.lost)

    web_ui = environment.web_ui
    if web_ui is not None and web_ui.app is not None:
        install_tab(web_ui.app, web_ui.template_args, view, thresholds, unsettled)
    serve_metrics(web_ui, getattr(environment.parsed_options, "flowsim_prometheus", ""), snapshot, log)
