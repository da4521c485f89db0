"""Workflow launches (API reference §2–§4): ``POST /api/v2/flows/executions``, then, when the scenario follows,
status polls until the execution ends. Ledger records: one ``launch`` per unit, one ``outcome`` per followed
execution."""

from __future__ import annotations

from typing import Any


from sim.drivers.base import SizingInputs, Ticket, UnitContext, record_unit
from sim.load.client import FlowClient
from sim.load.identity import Identity, IdentityFactory
from sim.load.payload import PayloadBuilder
from sim.load.records import LaunchRecord, OutcomeRecord
from sim.load.scenario import FlowSpec, Scenario
from sim.load.stats import RunStats

__all__ = ["WorkflowDriver", "WORKFLOW"]


def _explain(schema: dict[str, Any], input_data: dict[str, Any]) -> list[str]:
    """Why the platform would answer 400 to these inputs, before it does."""
    names = set(schema.get("properties", {}))
    problems = []
    for key in input_data:
        if key not in names:
            hint = f" (declared inputs: {', '.join(sorted(names)) or 'none'})"
            problems.append(f"inputData key {key!r} is not an input of this flow version{hint}; "
                            "the platform rejects unknown inputs with 400")
    lenient = {**schema, "additionalProperties": True}
    import fastjsonschema

    try:  # fastjsonschema decides, as the simulator does; jsonschema explains, only when the inputs are bad
        fastjsonschema.validate(lenient, input_data)
        return problems
    except fastjsonschema.JsonSchemaException:
        pass
    from jsonschema import Draft7Validator, FormatChecker  # here: 0.1 s to import, for a rare case

    for err in Draft7Validator(lenient, format_checker=FormatChecker()).iter_errors(input_data):
        path = "".join(f"[{p!r}]" for p in err.absolute_path)
        problems.append(f"inputData{path}: {err.message}")
    return problems


class WorkflowDriver:
    kind = "workflow"
    flow_type = "workflow"
    unit = "launch"
    units = "launches"
    path = "/api/v2/flows/executions"
    record_event = "launch"
    analytics = "flows"
    section_key: str | None = None

    def run(self, ctx: UnitContext, client: FlowClient, ticket: Ticket, identity: Identity) -> None:
        seq, due = ticket.seq, ticket.due
        body = ctx.builder.build(seq, identity)
        base = {"run_id": ctx.run_id, "seq": seq, "name": body["name"], "flow_id": body["flowId"],
                "identity_id": identity.id, "intended_at": round(due, 6), "worker": ctx.worker}
        handed = ctx.now()
        ctx.open_in_flight(seq, lambda now: LaunchRecord(
            **base, http_status=0, error="unanswered_at_stop",
            cause="still in flight when the stop's grace ran out: it may have run", attempt_statuses=[0],
            sent_at=round(handed, 6), given_up_at=round(now, 6)))
        try:
            # The 1 s rule is applied with the token in hand, right before the request is written.
            res = client.launch(body, not_after=due + ctx.max_late_s)
        finally:
            mine = ctx.close_in_flight(seq)
        if not mine:  # written at the stop as unanswered; this late answer is not written twice
            return
        answered = ctx.now()
        written = record_unit(ctx, res, seq, due, lambda: LaunchRecord(
            **base, execution_id=res.execution_id, http_status=res.status, error=res.error, context_id=res.context_id,
            attempts=res.attempts, attempt_statuses=list(res.statuses), attempt_ms=list(res.attempt_ms),
            sent_at=round(res.sent_at or handed, 6), answered_at=round(answered, 6),
            latency_ms=round(res.elapsed_ms, 3)), refused="launch", needs="architect:flow:launch")
        if not written:
            return
        if res.execution_id and ctx.scenario.follow:
            self._follow(ctx, client, seq, due, answered, body["name"], res.execution_id)

    @staticmethod
    def _follow(ctx: UnitContext, client: FlowClient, seq: int, due: float, answered: float, name: str,
                execution_id: str) -> None:
        sc = ctx.scenario
        outcome: dict[str, Any] = {"run_id": ctx.run_id, "seq": seq, "name": name, "execution_id": execution_id,
                                   "intended_at": round(due, 6), "answered_at": round(answered, 6),
                                   "worker": ctx.worker}
        ctx.open_in_flight(seq, lambda now: OutcomeRecord(**outcome, flow_status="INTERRUPTED",
                                                          observed_at=round(now, 6)))
        try:
            f = client.follow(execution_id, poll_interval_s=sc.poll_interval_s, timeout_s=sc.follow_timeout_s,
                              stopping=lambda: ctx.stopping)
        finally:
            mine = ctx.close_in_flight(seq)
        if mine:
            ctx.write(OutcomeRecord(**outcome, flow_status=f.status, polls=f.polls, poll_429=f.rate_limited,
                                    observed_at=round(ctx.now(), 6)))

    def section(self, stats: RunStats) -> None:
        return None  # a workflow's own figures (flow completion) are every run's: Figures.flow_completion

    def section_from_dict(self, data: dict[str, Any]) -> None:
        return None

    def preflight(self, client: FlowClient, scenario: Scenario, spec: FlowSpec, version: str,
                  run_id: str) -> tuple[dict[str, Any], set[str], list[str]]:
        """A sample launch body for this flow, the version's declared inputs, and why it would be refused."""
        v = client.get_json(f"/api/v2/flows/{spec.id}/versions/{version}", "preflight flow version")
        if v.status != 200 or not isinstance(v.body, dict):
            return {}, set(), [f"cannot read version {version!r}: HTTP {v.status} {v.error or ''}".strip()]
        schema = v.body.get("inputSchema") or {"type": "object", "properties": {}}
        names = set(schema.get("properties", {}))
        builder = PayloadBuilder(scenario, run_id, {spec.id: names})
        seq = next(i for i in range(10_000) if builder.flow_for(i).id == spec.id)
        sample = builder.build(seq, IdentityFactory(locale=scenario.locale, seed=scenario.seed).make(seq))
        return sample, names, _explain(schema, sample["inputData"])

    def sizing_inputs(self, scenario: Scenario, flow_duration_s: float, source: str) -> SizingInputs:
        return SizingInputs(follow=scenario.follow, interval_s=scenario.poll_interval_s, hold_s=flow_duration_s,
                            hold_source=source, words=("launches", "polls", "execution"))

    def notes(self, scenario: Scenario, units: int, *, simulator: bool) -> tuple[str, ...]:
        return ()

    def ledger_bytes_per_unit(self, scenario: Scenario) -> int:
        """A launch line ~450 B, ~300 B more when followed."""
        return 450 + (300 if scenario.follow else 0)

    def analytics_note(self, flow_ids: list[str], division_ids: list[str]) -> dict[str, Any]:
        """How analytics tell this run apart (reference §6): names are no dimension, flows and divisions are."""
        return {
            "test_division_ids": division_ids,
            "test_flow_ids": flow_ids,
            "this_run_filter": {"type": "or", "predicates": [
                {"type": "dimension", "dimension": "flowId", "operator": "matches", "value": f} for f in flow_ids]},
            "note": (f"this run's executions count only under test division(s) {', '.join(division_ids)}; production "
                     "aggregates queries select production divisions (divisionId matches ...) and so never see "
                     "them. The aggregates filter has no negation, and execution names are not a dimension."),
        }


WORKFLOW = WorkflowDriver()
