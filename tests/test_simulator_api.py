"""The simulated platform over real HTTP on a loopback port: launch, status, errors, auth."""

from __future__ import annotations

import httpx
import pytest

from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from tests.conftest import IVR_FLOW, PROD_FLOW, TEST_FLOW, VIEWER_CLIENT, FakeClock, org_with, token

GOOD_INPUT = {"Flow.customerName": "Ada Example", "Flow.priority": 3}


def launch(http: httpx.Client, auth: dict[str, str], body: object) -> httpx.Response:
    return http.post("/api/v2/flows/executions", headers=auth, json=body)


def test_oauth_issues_bearer_token_with_client_lifetime(http: httpx.Client) -> None:
    """Client credentials with Basic auth and a form body return a bearer token and its lifetime."""
    r = http.post("/oauth/token", auth=("flowsim-load-client", "flowsim-local-secret"),
                  data={"grant_type": "client_credentials"})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 86400 and len(body["access_token"]) > 20


def test_oauth_rejects_wrong_secret(http: httpx.Client) -> None:
    """A wrong client secret is a 401."""
    r = http.post("/oauth/token", auth=("flowsim-load-client", "nope"), data={"grant_type": "client_credentials"})
    assert r.status_code == 401


def test_launch_returns_launch_response(http: httpx.Client, auth: dict[str, str]) -> None:
    """A valid launch returns id, name, flowVersion ref and selfUri, with correlation id mirrored."""
    r = launch(http, auth, {"flowId": TEST_FLOW, "name": "flowsim-r1-0", "inputData": GOOD_INPUT})
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "flowsim-r1-0"
    assert body["flowVersion"]["id"] == "1.0"
    assert body["selfUri"] == f"/api/v2/flows/executions/{body['id']}"
    assert r.headers["ININ-Correlation-Id"]
    assert r.headers["inin-ratelimit-allowed"] == "300"


def test_missing_token_is_authentication_required(http: httpx.Client) -> None:
    """No bearer token: 401 authentication.required with contextId equal to the correlation header."""
    r = launch(http, {}, {"flowId": TEST_FLOW})
    assert r.status_code == 401
    assert r.json()["code"] == "authentication.required"
    assert r.json()["contextId"] == r.headers["ININ-Correlation-Id"]


def test_unknown_token_is_bad_credentials(http: httpx.Client) -> None:
    """An unknown bearer token: 401 bad.credentials."""
    r = launch(http, {"Authorization": "Bearer not-a-token"}, {"flowId": TEST_FLOW})
    assert (r.status_code, r.json()["code"]) == (401, "bad.credentials")


def test_client_without_launch_permission_gets_403(http: httpx.Client) -> None:
    """A role without architect:flow:launch: 403 missing.any.permissions naming the permission."""
    r = launch(http, token(http, VIEWER_CLIENT), {"flowId": TEST_FLOW})
    assert (r.status_code, r.json()["code"]) == (403, "missing.any.permissions")
    assert "architect:flow:launch" in r.json()["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"flowId": TEST_FLOW, "parameters": {"customerName": "x"}}, "unknown field 'parameters'"),
        ({"flowId": TEST_FLOW, "routingData": {"priority": 1}}, "no 'routingData' wrapper"),
        ({"flowId": TEST_FLOW, "inputData": {"customerName": "x"}}, "use 'Flow.customerName'"),
        ({"flowId": TEST_FLOW, "inputData": {"Flow.priority": "high"}}, "inputData['Flow.priority']"),
        ({"flowId": TEST_FLOW, "inputData": {"Flow.nope": 1}}, "unknown input 'Flow.nope'"),
        ({"inputData": {}}, "flowId is required"),
        ({"flowId": IVR_FLOW}, "only workflow flows"),
    ],
)
def test_bad_launch_bodies_get_actionable_400(http: httpx.Client, auth: dict[str, str], body: object,
                                              fragment: str) -> None:
    """Common payload mistakes are 400 ErrorBodies whose message points at the fix."""
    r = launch(http, auth, body)
    assert r.status_code == 400
    assert r.json()["code"] in ("invalid.value", "bad.request")
    assert fragment in r.json()["message"]


def test_datetime_input_is_checked(http: httpx.Client, auth: dict[str, str]) -> None:
    """A datetime input rejects text that is not ISO-8601 and accepts one that is."""
    bad = launch(http, auth, {"flowId": PROD_FLOW, "inputData": {"Flow.requestedAt": "yesterday"}})
    assert bad.status_code == 400 and "Flow.requestedAt" in bad.json()["message"]
    good = launch(http, auth, {"flowId": PROD_FLOW, "inputData": {"Flow.requestedAt": "2026-11-28T10:00:00.000Z"}})
    assert good.status_code == 200


def test_integer_input_accepts_numeric_string(http: httpx.Client, auth: dict[str, str]) -> None:
    """An integer input also accepts a numeric string, as the platform does."""
    assert launch(http, auth, {"flowId": TEST_FLOW, "inputData": {"Flow.priority": "42"}}).status_code == 200


def test_unknown_flow_and_version_are_404(http: httpx.Client, auth: dict[str, str]) -> None:
    """Unknown flow: 404 architect.flow.not.found; unknown version: 404 architect.flow.version.missing."""
    r = launch(http, auth, {"flowId": "00000000-0000-4000-8000-00000000dead"})
    assert (r.status_code, r.json()["code"]) == (404, "architect.flow.not.found")
    r = launch(http, auth, {"flowId": TEST_FLOW, "flowVersion": "9.0"})
    assert (r.status_code, r.json()["code"]) == (404, "architect.flow.version.missing")


def test_wrong_content_type_and_malformed_json(http: httpx.Client, auth: dict[str, str]) -> None:
    """Non-JSON content type is 415; malformed JSON is 400 bad.request."""
    r = http.post("/api/v2/flows/executions", headers={**auth, "Content-Type": "text/plain"}, content=b"x")
    assert (r.status_code, r.json()["code"]) == (415, "unsupported.media.type")
    r = http.post("/api/v2/flows/executions", headers={**auth, "Content-Type": "application/json"}, content=b"{")
    assert (r.status_code, r.json()["code"]) == (400, "bad.request")


def test_lenient_mode_ignores_unknown_fields() -> None:
    """With strict_unknown_fields off, an unknown top-level field is ignored."""
    with SimulatorThread(org_with(settings={"strict_unknown_fields": False})) as s, httpx.Client(base_url=s.url) as c:
        assert launch(c, token(c), {"flowId": TEST_FLOW, "parameters": {}}).status_code == 200


def test_execution_runs_then_completes_with_output(clock: FakeClock) -> None:
    """Status is RUNNING until the simulated duration passes, then COMPLETED with outputData and dates."""
    org = org_with(flow={"duration": default_org().flows[0].duration.__class__(median_ms=1000, p99_ms=1000)})
    with SimulatorThread(org, clock=clock) as s, httpx.Client(base_url=s.url) as c:
        auth = token(c)
        eid = launch(c, auth, {"flowId": TEST_FLOW, "name": "n1"}).json()["id"]
        r = c.get(f"/api/v2/flows/executions/{eid}", headers=auth)
        assert r.json()["status"] == "RUNNING" and "dateCompleted" not in r.json()
        clock.advance(1.5)
        body = c.get(f"/api/v2/flows/executions/{eid}", headers=auth).json()
        assert body["status"] == "COMPLETED"
        assert body["completionReason"] == "Success"
        assert set(body["outputData"]) == {"Flow.result", "Flow.ticketNumber"}
        assert body["dateLaunched"].endswith("Z") and len(body["dateLaunched"]) == 24
        assert body["flowVersion"]["inputSchema"]["additionalProperties"] is False


def test_failure_rate_ends_executions_failed_with_error_info(clock: FakeClock) -> None:
    """A flow with failure_rate 1 ends every execution FAILED with a flowErrorInfo ErrorBody."""
    with SimulatorThread(org_with(flow={"failure_rate": 1.0}), clock=clock) as s, httpx.Client(base_url=s.url) as c:
        auth = token(c)
        eid = launch(c, auth, {"flowId": TEST_FLOW}).json()["id"]
        clock.advance(3600)
        body = c.get(f"/api/v2/flows/executions/{eid}", headers=auth).json()
        assert body["status"] == "FAILED"
        assert body["flowErrorInfo"]["code"] == "flow.execution.failed"


def test_unknown_execution_is_404(http: httpx.Client, auth: dict[str, str]) -> None:
    """Status of an id the platform never issued: 404 not.found."""
    r = http.get("/api/v2/flows/executions/00000000-0000-4000-8000-000000000000", headers=auth)
    assert (r.status_code, r.json()["code"]) == (404, "not.found")


def test_flow_and_version_endpoints_expose_type_division_and_schema(http: httpx.Client,
                                                                    auth: dict[str, str]) -> None:
    """GET flow shows type and division; GET version returns the inputSchema for preflight."""
    flow = http.get(f"/api/v2/flows/{TEST_FLOW}", headers=auth).json()
    assert flow["type"] == "WORKFLOW" and flow["division"]["name"] == "Load Testing"
    v = http.get(f"/api/v2/flows/{TEST_FLOW}/versions/1.0", headers=auth).json()
    assert "Flow.customerPhone" in v["inputSchema"]["properties"]


def test_admin_lists_received_executions(http: httpx.Client, auth: dict[str, str]) -> None:
    """/_sim/executions lists what arrived, with name, flowId, inputData and client, filterable by prefix."""
    for i in range(3):
        launch(http, auth, {"flowId": TEST_FLOW, "name": f"runA-{i}", "inputData": GOOD_INPUT})
    launch(http, auth, {"flowId": TEST_FLOW, "name": "other-0"})
    listed = http.get("/_sim/executions", params={"name_prefix": "runA-"}).json()
    assert listed["total"] == 3
    rec = listed["entities"][0]
    assert rec["flowId"] == TEST_FLOW and rec["inputData"] == GOOD_INPUT and rec["clientId"] == "flowsim-load-client"


def test_store_is_bounded() -> None:
    """The execution store keeps at most store_max_executions, evicting the oldest."""
    with SimulatorThread(org_with(settings={"store_max_executions": 5})) as s, httpx.Client(base_url=s.url) as c:
        auth = token(c)
        ids = [launch(c, auth, {"flowId": TEST_FLOW}).json()["id"] for _ in range(8)]
        listed = c.get("/_sim/executions").json()
        assert listed["stored"] == 5 and listed["evicted"] == 3
        assert c.get(f"/api/v2/flows/executions/{ids[0]}", headers=auth).status_code == 404
        assert c.get(f"/api/v2/flows/executions/{ids[-1]}", headers=auth).status_code == 200
