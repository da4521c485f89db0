"""Preflight: before any load, check each flow is a workflow (a digital bot flow, for a conversation
scenario) in the test division and that a sample payload validates against the flow version's inputSchema
— explaining any 400 before it happens."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from jsonschema import Draft7Validator, FormatChecker

from sim.errors import FlowsimError, PlatformError
from sim.load.client import FlowClient, TokenManager
from sim.load.conversation import session_body
from sim.load.identity import IdentityFactory
from sim.load.payload import PayloadBuilder
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


def _explain(schema: dict[str, Any], input_data: dict[str, Any]) -> list[str]:
    names = set(schema.get("properties", {}))
    problems = []
    for key in input_data:
        if key not in names:
            hint = f" (declared inputs: {', '.join(sorted(names)) or 'none'})"
            problems.append(f"inputData key {key!r} is not an input of this flow version{hint}; "
                            "the platform rejects unknown inputs with 400")
    lenient = {**schema, "additionalProperties": True}
    for err in Draft7Validator(lenient, format_checker=FormatChecker()).iter_errors(input_data):
        path = "".join(f"[{p!r}]" for p in err.absolute_path)
        problems.append(f"inputData{path}: {err.message}")
    return problems


def preflight_client(scenario: Scenario, target: Target, *, client_id: str, client_secret: str) -> FlowClient:
    """The one client (and token) preflight and the sizing's look-ups share; close its ``tokens`` too."""
    tokens = TokenManager(login_url=target.login_url, client_id=client_id, client_secret=client_secret,
                          timeout_s=scenario.request_timeout_s, ca_bundle=scenario.ca_bundle)
    return FlowClient(api_url=target.api_url, tokens=tokens, max_retries=1, timeout_s=scenario.request_timeout_s,
                      ca_bundle=scenario.ca_bundle)


def preflight(scenario: Scenario, target: Target, client: FlowClient, run_id: str = "preflight") -> list[FlowCheck]:
    """One FlowCheck per scenario flow. Raises FlowsimError when the target cannot be reached at all."""
    checks = []
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
            conversation = scenario.kind == "conversation"
            if conversation and check.type != "digitalbot":
                check.problems.append(f"flow type is {check.type}; a conversation scenario talks to digital bot "
                                      "flows (POST /api/v2/textbots/botflows/sessions)")
            elif not conversation and check.type != "workflow":
                check.problems.append(f"flow type is {check.type}; only workflows can be launched through "
                                      "/api/v2/flows/executions")
            wanted = scenario.test_division
            if wanted and wanted not in (division.get("name"), division.get("id")) and not scenario.allow_non_test_flows:
                check.problems.append(f"flow is in division {check.division!r}, not the test division {wanted!r}: "
                                      "its executions would count in production analytics (set "
                                      "allow_non_test_flows = true to override)")
            version = spec.version or (flow.get("publishedVersion") or {}).get("id")
            check.version = str(version)
            if conversation:  # bot analytics have no divisionId: the dedicated test bot above is what separates
                identity = IdentityFactory(locale=scenario.locale, seed=scenario.seed).make(0)
                check.sample = session_body(spec, identity, seq=0, run_id=run_id, prefix=scenario.tag_prefix)
                continue
            v = client.get_json(f"/api/v2/flows/{spec.id}/versions/{version}", "preflight flow version")
            if v.status != 200 or not isinstance(v.body, dict):
                check.problems.append(f"cannot read version {version!r}: HTTP {v.status} {v.error or ''}".strip())
                continue
            schema = v.body.get("inputSchema") or {"type": "object", "properties": {}}
            check.input_names = set(schema.get("properties", {}))
            builder = PayloadBuilder(scenario, run_id, {spec.id: check.input_names})
            seq = next(i for i in range(10_000) if builder.flow_for(i).id == spec.id)
            check.sample = builder.build(seq, IdentityFactory(locale=scenario.locale, seed=scenario.seed).make(seq))
            check.problems.extend(_explain(schema, check.sample["inputData"]))
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
