"""JSON shapes of the platform's resources and errors, as the vendor SDKs define them."""

from __future__ import annotations

from typing import Any

from sim.platform.analytics import iso_ms
from sim.platform.executions import Execution, output_data
from sim.platform.org import Flow, Org
from sim.platform.schema import variables_schema

__all__ = ["error_body", "flow_json", "version_json", "version_ref", "execution_json", "launch_json"]

# A fixed publish date for simulated flow versions (epoch s): the simulator's flows never change.
_PUBLISHED_AT = 1767225600.0  # 2026-01-01T00:00:00Z


def error_body(status: int, code: str, message: str, context_id: str, *,
               params: dict[str, str] | None = None, details: list[dict[str, Any]] | None = None,
               limit: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ErrorBody (reference §3)."""
    body: dict[str, Any] = {
        "message": message,
        "code": code,
        "status": status,
        "messageParams": params or {},
        "contextId": context_id,
        "details": details or [],
        "errors": [],
    }
    if params:
        body["messageWithParams"] = message
    if limit:
        body["limit"] = limit
    return body


def version_ref(flow: Flow, version: str) -> dict[str, Any]:
    return {"id": version, "name": flow.name, "selfUri": f"/api/v2/flows/{flow.id}/versions/{version}"}


def version_json(flow: Flow, version: str) -> dict[str, Any]:
    """A FlowVersion with its input and output schemas."""
    ms = int(_PUBLISHED_AT * 1000)
    return {
        **version_ref(flow, version),
        "commitVersion": version,
        "configurationVersion": version,
        "type": "PUBLISH",
        "secure": False,
        "debug": False,
        "dateCreated": ms,
        "dateCheckedIn": ms,
        "dateSaved": ms,
        "datePublished": iso_ms(_PUBLISHED_AT),
        "inputSchema": variables_schema(flow, flow.inputs, "inputs"),
        "outputSchema": variables_schema(flow, flow.outputs, "outputs"),
        "compatibleFlowTypes": [flow.type.upper()],
    }


def flow_json(flow: Flow, org: Org) -> dict[str, Any]:
    """A Flow, with its division and published version."""
    division = org.division(flow.division_id)
    published = version_json(flow, flow.version)
    return {
        "id": flow.id,
        "name": flow.name,
        "division": {"id": division.id, "name": division.name,
                     "selfUri": f"/api/v2/authorization/divisions/{division.id}"},
        "type": flow.type.upper(),
        "active": True,
        "system": False,
        "deleted": False,
        "publishedVersion": published,
        "checkedInVersion": published,
        "selfUri": f"/api/v2/flows/{flow.id}",
    }


def launch_json(execution: Execution) -> dict[str, Any]:
    """FlowExecutionLaunchResponse."""
    return {
        "id": execution.id,
        "name": execution.name,
        "flowVersion": version_ref(execution.flow, execution.version),
        "selfUri": f"/api/v2/flows/executions/{execution.id}",
    }


def execution_json(execution: Execution, now: float, version: dict[str, Any], context_id: str) -> dict[str, Any]:
    """FlowRuntimeExecution as of ``now``."""
    status = execution.status_at(now)
    out: dict[str, Any] = {
        "id": execution.id,
        "name": execution.name,
        "flowVersion": version,
        "dateLaunched": iso_ms(execution.launched_at),
        "status": status,
        "selfUri": f"/api/v2/flows/executions/{execution.id}",
    }
    if status == "RUNNING":
        return out
    out["dateCompleted"] = iso_ms(execution.completed_at())
    if status == "COMPLETED":
        out["completionReason"] = "Success"
        out["outputData"] = output_data(execution)
    else:
        out["completionReason"] = "Failure" if status == "FAILED" else "Error"
        code = "flow.execution.failed" if status == "FAILED" else "flow.execution.error"
        out["flowErrorInfo"] = error_body(
            500, code, f"Simulated {status.lower()} of flow '{execution.flow.name}' (injected outcome)",
            context_id,
        )
    return out
