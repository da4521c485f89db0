"""Making a target ready for a run: the embedded simulator, credentials, preflight — then the plan.

Used by the ``flowsim`` parent (``run``, ``validate``, ``capacity``) and by the Locust master in plain
``locust`` use; never by workers, which get the finished :class:`~sim.run.plan.RunPlan`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
from typing import Any

import httpx

from sim.drivers import driver_for
from sim.errors import ConfigError, FlowsimError, TransportError
from sim.load.overrides import scenario_for_run
from sim.load.scenario import Scenario, Target, resolve_target
from sim.load.schedule import Schedule
from sim.load.target import REGIONS, check_credential_destination
from sim.run import live
from sim.run.live import LiveRules
from sim.run.plan import FlowPlan, RunPlan, check_run_id, credentials, new_run_id, webhook_secret
from sim.load.client import FlowClient
from sim.load.network import describe, ssl_context
from sim.run.preflight import FlowCheck, preflight, preflight_client
from sim.run.sizing import DEFAULT_TOKEN_LIMIT_PER_MIN, Sizing, size
from sim.run.process import spawn

__all__ = ["EmbeddedSimulator", "Prepared", "is_flowsim_simulator", "analytics_note", "prepare_from_options", "client_for"]


class EmbeddedSimulator:
    """``flowsim serve`` on a free loopback port, for the length of a command. Started at once; its :attr:`url`
    waits for it to listen (~0.5 s of imports: a caller starts it early and does other work meanwhile)."""

    def __init__(self, org: str | None = None) -> None:
        cmd = [sys.executable, "-m", "sim.platform", "--port", "0", "--log-level", "warning"]
        if org:
            cmd += ["--org", org]
        # Its own session: a terminal's Ctrl-C must not take the target away from in-flight launches;
        # the kernel ends it if this process dies (process.spawn).
        self.proc = spawn(cmd, stdout=subprocess.PIPE, text=True)
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if "listening on" not in line:
                self.proc.kill()
                raise FlowsimError("the embedded simulator did not start (see messages above)")
            self._url = line.strip().rsplit(" ", 1)[-1]
        return self._url

    def stop(self) -> None:
        """Killed, not asked: it holds nothing to flush, and a graceful uvicorn shutdown kept ``flowsim run`` ~0.3 s
        past its summary."""
        self.proc.kill()
        self.proc.wait()


def is_flowsim_simulator(api_url: str, ca_bundle: str | None = None, *, unreachable_raises: bool = False) -> bool:
    """True when ``api_url`` answers like ``flowsim serve`` (its ``/_sim/health``). ``unreachable_raises``: a host
    that cannot be reached at all (nothing listens, TLS, DNS, proxy) is a TransportError saying so — the first
    problem to name, before any talk of credentials."""
    try:
        r = httpx.get(f"{api_url}/_sim/health", timeout=3, verify=ssl_context(ca_bundle))
        return r.status_code == 200 and r.json().get("status") == "ok"
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
        if unreachable_raises:
            why = describe(exc, url=api_url, ca_bundle=ca_bundle)
            if why.startswith("connection refused by") and "proxy" not in why:
                raise TransportError(f"nothing listens at {api_url} (connection refused): is the target up, "
                                     "and is this its address?") from None
            raise TransportError(f"{api_url} cannot be reached: {why}") from None
        return False
    except (httpx.HTTPError, ValueError):
        return False


class Prepared:
    """A target made ready: embedded simulator started if asked for, credentials chosen, preflight run.

    A context manager: leaving it stops the embedded simulator.
    """

    def __init__(self, scenario: Scenario, target_name: str, *, rules: LiveRules | None = None,
                 capacity_max_rate: float | None = None, now: dt.datetime | None = None,
                 simulator: EmbeddedSimulator | None = None) -> None:
        """``rules``: check the vendor's load-test rules before anything is sent to a real org (None: no load
        will be sent, as for ``validate``). ``capacity_max_rate``: this prepares a capacity search."""
        self.scenario = scenario
        self.live_note: str | None = None
        # ``simulator``: an embedded one already started (the web UI's next START keeps its target, and its URL;
        # `flowsim run` starts it before it loads anything else): stopped by close() once this preparation succeeds
        self.sim = (simulator or EmbeddedSimulator()) if target_name == "embedded" else None
        borrowed = simulator is not None and self.sim is simulator
        try:
            self.target: Target = resolve_target(target_name, embedded_url=self.sim.url if self.sim else None)
            env_set = bool(os.environ.get(scenario.client_id_env) and os.environ.get(scenario.client_secret_env))
            # A region is never a simulator: it is not even asked. A URL is asked (`/_sim/health`, harmless).
            self.simulator = self.sim is not None or (target_name not in REGIONS and is_flowsim_simulator(
                self.target.api_url, scenario.ca_bundle, unreachable_raises=True))
            # A flowsim simulator and no credentials in the environment: its built-in test client, so
            # scenarios run unchanged against it.
            builtin = self.sim is not None or (self.simulator and not env_set)
            self.credentials: str = "builtin" if builtin else "env"
            if rules is not None and not self.simulator:  # a real org: the vendor's rules first, before any request
                rules = LiveRules(approval=rules.approval or scenario.approval, outside_window=rules.outside_window)
                schedule = Schedule(scenario.stages)
                self.live_note = live.check(
                    api_url=self.target.api_url, capacity=capacity_max_rate is not None,
                    peak_rate_per_s=capacity_max_rate or max(st.rate_per_s for st in scenario.stages),
                    launches=schedule.total, rules=rules, now=now or dt.datetime.now(dt.timezone.utc))
            if self.credentials == "env":
                check_credential_destination(self.target, simulator=self.simulator)
            cid, sec = credentials(scenario, self.credentials)
            if scenario.messaging is not None:
                webhook_secret(scenario, self.credentials)
            client = preflight_client(scenario, self.target, client_id=cid, client_secret=sec)
            try:
                self.checks: list[FlowCheck] = preflight(scenario, self.target, client)
                self.token_limit, self.token_limit_source = _token_limit(client)
            finally:
                client.close()
                client.tokens.close()
            self.flow_duration_s, self.flow_duration_source = self._flow_duration(self.simulator)
        except BaseException:
            if borrowed:
                self.sim = None  # borrowed (the last run's, or started early by the caller): not this failure's to stop
            self.close()
            raise

    def __enter__(self) -> Prepared:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.sim is not None:
            self.sim.stop()
            self.sim = None

    def _flow_duration(self, simulator: bool) -> tuple[float, str]:
        """How long a followed execution holds a slot: the simulator's p99 for these flows; on a real org,
        with no history to ask, ``follow_timeout_s`` (the bound)."""
        sc = self.scenario
        if simulator:
            try:
                flows = httpx.get(f"{self.target.api_url}/_sim/flows", timeout=sc.request_timeout_s,
                                  verify=ssl_context(sc.ca_bundle)).json()["entities"]
                ours = [f["durationP99Ms"] / 1000 for f in flows if f["id"] in {s.id for s in sc.flows}]
                if ours:
                    return max(ours), "p99 on the simulator"
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                pass
        return sc.follow_timeout_s, "follow_timeout_s, the bound: no history on a real org"

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def sizing(self, scenario: Scenario | None = None, *, processes: int = 1) -> Sizing:
        sc = scenario or self.scenario
        u = driver_for(sc.kind).sizing_inputs(sc, self.flow_duration_s, self.flow_duration_source)
        follow, poll_s, hold_s, source, words = u.follow, u.interval_s, u.hold_s, u.hold_source, u.words
        return size(peak_rate_per_s=max(st.rate_per_s for st in sc.stages), processes=processes, follow=follow,
                    poll_interval_s=poll_s, flow_duration_s=hold_s,
                    flow_duration_source=source, token_limit_per_min=self.token_limit,
                    token_limit_source=self.token_limit_source, tokens_per_client=sc.tokens_per_client,
                    max_concurrency=sc.max_concurrency, words=words)

    def plan(self, *, run_id: str, scenario: Scenario | None = None, ledger_dir: str = "runs",
             abort_error_rate: float | None = None, processes: int = 1) -> RunPlan:
        """The run plan, sized for ``processes`` load processes; ``scenario`` replaces the prepared one (same
        flows, other stages: a capacity step)."""
        sc = scenario or self.scenario
        check_run_id(run_id, ledger_dir)
        if [f.id for f in sc.flows] != [f.id for f in self.scenario.flows]:
            raise FlowsimError("a plan's flows must be the ones preflight checked")
        sizing = self.sizing(sc, processes=processes)
        sc = dataclasses.replace(sc, tokens_per_client=sizing.tokens_per_client, max_concurrency=sizing.max_concurrency)
        flows = tuple(FlowPlan(id=c.flow_id, name=c.name, division_id=c.division_id, division=c.division,
                               version=c.version, inputs=tuple(sorted(c.input_names))) for c in self.checks)
        target = dataclasses.replace(self.target, embedded=self.credentials == "builtin")
        notes = driver_for(sc.kind).notes(sc, Schedule(sc.stages).total, simulator=self.simulator)
        return RunPlan(run_id=run_id, scenario=sc, target=target, credentials="builtin" if target.embedded else "env",
                       flows=flows, ledger_dir=ledger_dir, abort_error_rate=abort_error_rate, live=self.live_note,
                       sizing=sizing.explanation + sizing.warnings + notes)


def _token_limit(client: FlowClient) -> tuple[int, str]:
    """The org's requests per minute per client-credentials token, from the Limits API (no permission needed)."""
    a = client.get_json("/api/v2/organizations/limits/namespaces/platform.api", "limits")
    if a.status == 200 and isinstance(a.body, dict):
        for e in a.body.get("entities") or []:
            if isinstance(e, dict) and e.get("key") == "client.credentials.token.rate.per.minute":
                value = e.get("value")
                if isinstance(value, int) and value > 0:
                    return value, "the org's limit"
    return DEFAULT_TOKEN_LIMIT_PER_MIN, f"the vendor default: the limits API answered {a.status or a.error}"


def prepare_from_options(*, scenario: str, target: str, rate: str, duration: str, run_id: str, ledger_dir: str,
                         abort_error_rate: float, processes: int, rules: LiveRules,
                         simulator: EmbeddedSimulator | None = None) -> tuple[RunPlan, Prepared]:
    """Plain ``locust`` use: the master (or single process) resolves the plan from its ``--flowsim-*``
    options, preflight included; the returned Prepared owns the embedded simulator (``simulator``: reuse this
    running one) until closed."""
    try:
        rate_per_s = float(rate) if rate else None
    except ValueError:
        raise ConfigError(f"{rate!r} is not a number", field="--flowsim-rate") from None
    sc = scenario_for_run(scenario, rate_per_s=rate_per_s, duration=duration or None, processes=processes,
                          flags="--flowsim-")
    prepared = Prepared(sc, target or sc.target, rules=rules, simulator=simulator)
    if not prepared.ok:
        problems = "; ".join(f"flow {c.flow_id}: {p}" for c in prepared.checks for p in c.problems)
        if simulator is not None:
            prepared.sim = None  # borrowed, still the last run's: not this failure's to stop
        prepared.close()
        raise FlowsimError(f"preflight failed, no load sent: {problems}")
    return prepared.plan(run_id=run_id or new_run_id(), ledger_dir=ledger_dir, processes=processes,
                         abort_error_rate=abort_error_rate or None), prepared


def analytics_note(plan: RunPlan) -> dict[str, Any]:
    """How analytics tell this run apart (reference §6): the driver says by which dimension."""
    return driver_for(plan.scenario.kind).analytics_note(sorted({f.id for f in plan.flows}),
                                                         sorted({f.division_id for f in plan.flows}))


def client_for(scenario: Scenario, target: Target) -> FlowClient:
    """A client for looking back at a finished run (analytics, clean-up): a flowsim simulator's built-in client
    when no credentials are in the environment, else the environment's — sent only to their own login host.
    Close it and its ``tokens``."""
    simulator = is_flowsim_simulator(target.api_url, scenario.ca_bundle)
    env_set = bool(os.environ.get(scenario.client_id_env) and os.environ.get(scenario.client_secret_env))
    mode = "builtin" if simulator and not env_set else "env"
    if mode == "env":
        check_credential_destination(target, simulator=simulator)
    cid, sec = credentials(scenario, mode)
    return preflight_client(scenario, target, client_id=cid, client_secret=sec)
