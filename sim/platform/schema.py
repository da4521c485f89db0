"""Flow input/output schemas (JSON Schema draft-07) and launch-body validation with actionable messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import fastjsonschema

from sim.platform.org import Flow, Variable

__all__ = ["LAUNCH_FIELDS", "Problem", "variables_schema", "FlowValidator", "unknown_field_problems"]

LAUNCH_FIELDS = ("flowId", "flowVersion", "inputData", "name")
"""The only fields of FlowExecutionLaunchRequest."""

_STRING_MAX = 32000

_HINTS = {
    "routingData": "there is no 'routingData' wrapper in FlowExecutionLaunchRequest",
    "parameters": "flow inputs are not 'parameters'",
    "inputs": "flow inputs go in 'inputData'",
    "input": "flow inputs go in 'inputData'",
    "data": "flow inputs go in 'inputData'",
    "variables": "flow inputs go in 'inputData'",
}


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One validation problem: ``field`` is the JSON path a person can find in their payload."""

    field: str
    message: str


def _type_schema(var: Variable) -> dict[str, Any]:
    base: dict[str, Any]
    if var.type == "string":
        base = {"type": "string", "maxLength": _STRING_MAX}
    elif var.type == "integer":
        # The platform also accepts integers written as numeric strings.
        base = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^-?[0-9]+$"}]}
    elif var.type == "boolean":
        base = {"type": "boolean"}
    elif var.type == "decimal":
        base = {"type": "number"}
    else:  # datetime
        base = {"type": "string", "format": "date-time"}
    if var.array:
        return {"type": "array", "items": base}
    return base


def variables_schema(flow: Flow, variables: tuple[Variable, ...], kind: str) -> dict[str, Any]:
    """The JsonSchemaDocument for a flow's inputs or outputs (draft-07, ``additionalProperties: false``)."""
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "id": f"{flow.id}/{kind}",
        "title": f"{flow.name} {kind}",
        "description": f"{kind} variables of flow {flow.name}",
        "type": "object",
        "properties": {v.name: {**_type_schema(v), "title": v.name} for v in variables},
        "additionalProperties": False,
    }


def _path(parts: Any) -> str:
    out = "inputData"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f"[{p!r}]"
    return out


class FlowValidator:
    """Validates ``inputData`` for one flow; compiled once per flow."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.schema = variables_schema(flow, flow.inputs, "inputs")
        self._names = {v.name for v in flow.inputs}
        lenient = {**self.schema, "additionalProperties": True}  # unknown keys get their own messages
        # fastjsonschema compiles the schema to Python (~1 µs a launch, against ~50 µs for jsonschema) and
        # decides; jsonschema explains, only when a payload is bad.
        self._fast = fastjsonschema.compile(lenient)
        self._lenient = lenient
        self._validator: Any = None  # jsonschema's, made (and imported: 0.1 s) for the first bad payload

    def _fast_problem(self, input_data: Any) -> str | None:
        try:
            self._fast(input_data)
        except fastjsonschema.JsonSchemaException as exc:
            return str(exc).replace("data.", "inputData.", 1)
        return None

    def problems(self, input_data: Any, *, strict: bool) -> list[Problem]:
        """Everything wrong with ``input_data`` (empty when it is valid)."""
        if not isinstance(input_data, dict):
            return [Problem(field="inputData", message=f"inputData must be an object, got {type(input_data).__name__}")]
        problems = []
        declared = ", ".join(sorted(self._names)) or "(none)"
        for key in input_data:
            if key in self._names:
                continue
            if f"Flow.{key}" in self._names:
                problems.append(Problem(field=f"inputData[{key!r}]",
                                        message=f"input {key!r} is missing the 'Flow.' prefix: use 'Flow.{key}'"))
            elif strict:
                problems.append(Problem(field=f"inputData[{key!r}]",
                                        message=f"unknown input {key!r} for flow '{self.flow.name}'; declared inputs: {declared}"))
        fast = self._fast_problem(input_data)
        if not problems and fast is None:
            return problems
        before = len(problems)
        if self._validator is None:
            from jsonschema import Draft7Validator, FormatChecker

            self._validator = Draft7Validator(self._lenient, format_checker=FormatChecker())
        for err in self._validator.iter_errors(input_data):
            where = _path(err.absolute_path)
            if err.validator == "anyOf":
                msg = f"{where}: {err.instance!r} is not an integer (nor a string of digits)"
            else:
                msg = f"{where}: {err.message}"
            problems.append(Problem(field=where, message=msg))
        if fast is not None and len(problems) == before:
            # jsonschema checks some formats (date-time) only with optional packages; fastjsonschema always does.
            problems.append(Problem(field="inputData", message=fast))
        return problems


def unknown_field_problems(body: dict[str, Any]) -> list[Problem]:
    """Top-level fields outside FlowExecutionLaunchRequest, with a hint for common mistakes."""
    out = []
    for key in body:
        if key in LAUNCH_FIELDS:
            continue
        hint = _HINTS.get(key, "")
        hint = f" ({hint})" if hint else ""
        out.append(Problem(
            field=key,
            message=(f"unknown field {key!r} in FlowExecutionLaunchRequest{hint}; allowed fields: "
                     f"{', '.join(LAUNCH_FIELDS)}. Flow inputs go in inputData with 'Flow.' keys, "
                     "e.g. {\"inputData\": {\"Flow.customerId\": \"c-1\"}}"),
        ))
    return out
