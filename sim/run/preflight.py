"""Preflight: before any load, check each flow is of the type the scenario's driver drives (a workflow, a
digital bot flow, ...), in the test division, and that the driver's sample request is one the platform would take
(a workflow's against the flow version's inputSchema) — explaining any 400 before it happens."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from sim.drivers import driver_for
from sim.errors import FlowsimError, PlatformError
from sim.load.client import FlowClient, TokenManager
from sim.load.scenario import Scenario, Target

__all__ = ["FlowCheck", "preflight", "preflight_client", "describe"]


@dataclass
class FlowCheck:
    flow_id: str
    name: str = "?"
    type: str = "?"
    division: str = "?"
    division_id: str = "?"
    version: str = "?"
    problems: list[str] = field(default_factory=list)
    sample: dict[str, Any] = field(default_factory=dict)
    input_names: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems


def preflight_client(scenario: Scenario, target: Target, *, client_id: str, client_secret: str) -> FlowClient:
    """The one client (and token) preflight and the sizing's look-ups share; close its ``tokens`` too."""
    tokens = TokenManager(login_url=target.login_url, client_id=client_id, client_secret=client_secret,
                          timeout_s=scenario.request_timeout_s, ca_bundle=scenario.ca_bundle)
    return FlowClient(api_url=target.api_url, tokens=tokens, max_retries=1, timeout_s=scenario.request_timeout_s,
                      ca_bundle=scenario.ca_bundle)


def preflight(scenario: Scenario, target: Target, client: FlowClient, run_id: str = "preflight") -> list[FlowCheck]:
    """One FlowCheck per scenario flow. Raises FlowsimError when the target cannot be reached at all."""
    checks = []
    driver = driver_for(scenario.kind)
    try:
        for spec in scenario.flows:
            check = FlowCheck(flow_id=spec.id)
            checks.append(check)
            a = client.get_json(f"/api/v2/flows/{spec.id}", "preflight flow")
            if a.status == 200 and not isinstance(a.body, dict):
                check.problems.append(f"{target.api_url}/api/v2/flows/{spec.id} answered 200 with something that is "
                                      "not a flow (not JSON): is the target a Genesys Cloud API?")
                continue
            if a.status != 200 or not isinstance(a.body, dict):
                err = PlatformError.from_body(a.status, a.body) if a.status else None
                check.problems.append(f"cannot read flow: {err or a.cause or a.error}"
                                      + (" (the OAuth client's role needs architect:flow:view)" if a.status == 403 else ""))
                continue
            flow = a.body
            check.name, check.type = flow.get("name", "?"), str(flow.get("type", "?")).lower()
            division = flow.get("division") or {}
            check.division = division.get("name", "?")
            check.division_id = division.get("id", "?")
            if check.type != driver.flow_type:
                check.problems.append(f"flow type is {check.type}; a {scenario.kind} scenario drives {driver.flow_type} "
                                      f"flows (POST {driver.path})")
            wanted = scenario.test_division
            if wanted and wanted not in (division.get("name"), division.get("id")) and not scenario.allow_non_test_flows:
                check.problems.append(f"flow is in division {check.division!r}, not the test division {wanted!r}: "
                                      "its executions would count in production analytics (set "
                                      "allow_non_test_flows = true to override)")
            version = spec.version or (flow.get("publishedVersion") or {}).get("id")
            check.version = str(version)
            check.sample, check.input_names, problems = driver.preflight(client, scenario, spec, str(version), run_id)
            check.problems.extend(problems)
    except httpx.HTTPError as exc:  # pragma: no cover - FlowClient maps these
        raise FlowsimError(f"cannot reach {target.api_url}: {type(exc).__name__}") from None
    return checks


def describe(checks: list[FlowCheck]) -> str:
    """One block per flow for the terminal: what was found, each problem, the sample payload."""
    lines = []
    for c in checks:
        lines.append(f"[{'ok ' if c.ok else 'BAD'}] flow {c.flow_id} '{c.name}' type={c.type} division={c.division!r} "
                     f"version={c.version}")
        lines.extend(f"      - {p}" for p in c.problems)
        if c.sample:
            lines.append("      sample payload: " + json.dumps(c.sample))
    return "\n".join(lines)
