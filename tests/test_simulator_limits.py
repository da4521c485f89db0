"""Rate limits, token expiry, injected faults and analytics of the simulated platform, over HTTP."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sim.platform.org import Faults, Latency, default_org
from sim.platform.server import SimulatorThread
from tests.conftest import HOME_DIVISION, PROD_FLOW, TEST_DIVISION, TEST_FLOW, FakeClock, org_with, token


def test_rate_limit_429_with_retry_after_and_headers(clock: FakeClock) -> None:
    """Past the per-token limit: 429 too.many.requests with Retry-After; the next window is open again."""
    org = org_with(settings={"rate_limit_per_window": 5, "rate_limit_window_s": 60})
    with SimulatorThread(org, clock=clock) as s, httpx.Client(base_url=s.url) as c:
        auth = token(c)
        codes = [c.post("/api/v2/flows/executions", headers=auth, json={"flowId": TEST_FLOW}).status_code
                 for _ in range(5)]
        assert codes == [200] * 5
        clock.advance(20)
        r = c.post("/api/v2/flows/executions", headers=auth, json={"flowId": TEST_FLOW})
        assert (r.status_code, r.json()["code"]) == (429, "too.many.requests")
        assert r.headers["Retry-After"] == "40"
        assert r.headers["inin-ratelimit-allowed"] == "5" and r.headers["inin-ratelimit-count"] == "6"
        assert "maximum [5] requests within [60] seconds" in r.json()["message"]
        other = token(c)  # the limit is per token
        assert c.post("/api/v2/flows/executions", headers=other, json={"flowId": TEST_FLOW}).status_code == 200
        clock.advance(41)
        assert c.post("/api/v2/flows/executions", headers=auth, json={"flowId": TEST_FLOW}).status_code == 200


def test_token_expires_after_its_lifetime(clock: FakeClock) -> None:
    """A token stops working after expires_in seconds: 401 bad.credentials; a new token works."""
    with SimulatorThread(default_org(), clock=clock) as s, httpx.Client(base_url=s.url) as c:
        creds = ("flowsim-short-token-client", "flowsim-short-secret")
        r = c.post("/oauth/token", auth=creds, data={"grant_type": "client_credentials"})
        assert r.json()["expires_in"] == 300
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert c.post("/api/v2/flows/executions", headers=auth, json={"flowId": TEST_FLOW}).status_code == 200
        clock.advance(301)
        r = c.post("/api/v2/flows/executions", headers=auth, json={"flowId": TEST_FLOW})
        assert (r.status_code, r.json()["code"]) == (401, "bad.credentials")
        assert c.post("/api/v2/flows/executions", headers=token(c, creds), json={"flowId": TEST_FLOW}).status_code == 200


def test_early_expiry_fault_cuts_token_life(clock: FakeClock) -> None:
    """With early_expiry_rate 1, every token dies before its advertised lifetime."""
    with SimulatorThread(org_with(faults=Faults(early_expiry_rate=1.0)), clock=clock) as s, \
            httpx.Client(base_url=s.url) as c:
        auth = token(c)
        clock.advance(86400 * 0.96)
        r = c.post("/api/v2/flows/executions", headers=auth, json={"flowId": TEST_FLOW})
        assert r.status_code == 401


@pytest.mark.parametrize(("status", "code"), [(500, "internal.server.error"), (503, "service.unavailable"),
                                              (504, "request.timeout")])
def test_injected_5xx(status: int, code: str) -> None:
    """An error rate of 1 for a status answers every launch with that ErrorBody."""
    with SimulatorThread(org_with(flow={"faults": Faults(error_rates={status: 1.0})})) as s, \
            httpx.Client(base_url=s.url) as c:
        r = c.post("/api/v2/flows/executions", headers=token(c), json={"flowId": TEST_FLOW})
        assert (r.status_code, r.json()["code"]) == (status, code)


def test_injected_connection_drop() -> None:
    """A drop rate of 1 breaks the connection before the body: the client sees a transport error."""
    with SimulatorThread(org_with(flow={"faults": Faults(drop_rate=1.0)})) as s, httpx.Client(base_url=s.url) as c:
        auth = token(c)
        with pytest.raises(httpx.TransportError):
            c.post("/api/v2/flows/executions", headers=auth, json={"flowId": TEST_FLOW})
        assert c.get("/_sim/stats").json()["counters"]["fault.drop"] == 1


def test_injected_latency_delays_answers() -> None:
    """A latency fault of 200 ms median delays the launch answer by about that."""
    with SimulatorThread(org_with(flow={"faults": Faults(latency=Latency(median_ms=200, p99_ms=200))})) as s, \
            httpx.Client(base_url=s.url) as c:
        r = c.post("/api/v2/flows/executions", headers=token(c), json={"flowId": TEST_FLOW})
        assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.19


def test_faults_are_deterministic_with_a_seed() -> None:
    """The same seed gives the same sequence of injected failures."""
    org = org_with(flow={"faults": Faults(error_rates={503: 0.5})})

    def sequence(seed: int) -> list[int]:
        with SimulatorThread(org, seed=seed) as s, httpx.Client(base_url=s.url) as c:
            auth = token(c)
            return [c.post("/api/v2/flows/executions", headers=auth, json={"flowId": TEST_FLOW}).status_code
                    for _ in range(20)]

    first = sequence(7)
    assert first == sequence(7)
    assert 200 in first and 503 in first


def _query(c: httpx.Client, auth: dict[str, str], body: dict[str, object]) -> dict[str, int]:
    r = c.post("/api/v2/analytics/flowexecutions/aggregates/query", headers=auth, json=body)
    assert r.status_code == 200, r.text
    return {json.dumps(res["group"], sort_keys=True): sum(d["metrics"][0]["stats"]["count"] for d in res["data"])
            for res in r.json().get("results", [])}


def test_analytics_keeps_test_division_apart(clock: FakeClock) -> None:
    """Launches in the test division show up only under it; production queries excluding it don't see them."""
    with SimulatorThread(default_org(), clock=clock) as s, httpx.Client(base_url=s.url) as c:
        auth = token(c)
        for _ in range(7):
            c.post("/api/v2/flows/executions", headers=auth, json={"flowId": TEST_FLOW})
        interval = "2026-09-21T00:00:00.000Z/2026-09-22T00:00:00.000Z"  # contains the fake clock's now
        by_div = _query(c, auth, {"interval": interval, "metrics": ["nFlowExecutions"], "groupBy": ["divisionId"]})
        assert by_div[json.dumps({"divisionId": TEST_DIVISION})] == 7
        assert by_div[json.dumps({"divisionId": HOME_DIVISION})] > 0  # background production traffic
        prod = _query(c, auth, {
            "interval": interval, "metrics": ["nFlowExecutions"], "groupBy": ["flowId"],
            "filter": {"type": "and", "predicates": [
                {"type": "dimension", "dimension": "divisionId", "operator": "matches", "value": HOME_DIVISION}]},
        })
        assert json.dumps({"flowId": TEST_FLOW}) not in prod
        assert json.dumps({"flowId": PROD_FLOW}) in prod


def test_analytics_rejects_unknown_dimension(http: httpx.Client, auth: dict[str, str]) -> None:
    """groupBy on a dimension that does not exist (e.g. execution name) is a 400 naming the allowed ones."""
    r = http.post("/api/v2/analytics/flowexecutions/aggregates/query", headers=auth,
                  json={"interval": "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", "metrics": ["nFlowExecutions"],
                        "groupBy": ["name"]})
    assert r.status_code == 400 and "divisionId" in r.json()["message"]


def test_vendor_sdk_works_unmodified(sim: SimulatorThread) -> None:
    """purecloudplatformclientv2 logs in with client credentials, launches and reads an execution."""
    import PureCloudPlatformClientV2 as gc  # noqa: N813

    gc.configuration.host = sim.url
    api_client = gc.api_client.ApiClient().get_client_credentials_token("flowsim-load-client", "flowsim-local-secret")
    api = gc.ArchitectApi(api_client)
    req = gc.FlowExecutionLaunchRequest()
    req.flow_id = TEST_FLOW
    req.name = "sdk-launch-1"
    req.input_data = {"Flow.customerName": "Ada Example"}
    launched = api.post_flows_executions(req)
    assert launched.name == "sdk-launch-1" and launched.flow_version.id == "1.0"
    fetched = api.get_flows_execution(launched.id)
    assert fetched.id == launched.id and fetched.status in ("RUNNING", "COMPLETED")
    assert fetched.flow_version.input_schema.properties["Flow.customerName"]["type"] == "string"


def test_vendor_sdk_reads_the_org_limits(sim: SimulatorThread) -> None:
    """OrganizationApi.get_organizations_limits_namespace('platform.api') reads the per-token limit the simulator
    enforces (300 per 60 s → 300/min) and request.bytes.max, with a token of a client that has no permissions."""
    import PureCloudPlatformClientV2 as gc  # noqa: N813

    gc.configuration.host = sim.url
    api_client = gc.api_client.ApiClient().get_client_credentials_token("flowsim-viewer-client",
                                                                        "flowsim-viewer-secret")
    limits = gc.OrganizationApi(api_client).get_organizations_limits_namespace("platform.api")
    values = {e.key: e.value for e in limits.entities}
    assert values == {"client.credentials.token.rate.per.minute": 300, "request.bytes.max": 512_000}


def _flowsim(*args: str) -> list[str]:
    return [sys.executable, "-m", "sim.cli", *args]


def test_serve_announces_port_and_stops_cleanly_on_sigterm() -> None:
    """`flowsim serve --port 0` prints its URL, answers, and exits 0 on SIGTERM."""
    proc = subprocess.Popen(_flowsim("serve", "--port", "0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/_sim/health").json()["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_bad_org_file_is_one_line_exit_2(tmp_path: Path) -> None:
    """A bad org file prints one line naming file and field, exit 2, no traceback."""
    bad = tmp_path / "org.toml"
    bad.write_text('[[divisions]]\nid = "d"\nname = "D"\n[[flows]]\nid = "f"\nname = "F"\ntype = "wrokflow"\n'
                   'division = "D"\n')
    r = subprocess.run(_flowsim("serve", "--org", str(bad)), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert str(bad) in r.stderr and "flows[0].type" in r.stderr and "workflow" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_describe_prints_default_credentials_and_flows() -> None:
    """`flowsim serve --describe` prints client_id, client_secret and flows with their inputSchema."""
    r = subprocess.run(_flowsim("serve", "--describe"), capture_output=True, text=True, timeout=30,
                       env={**os.environ})
    org = json.loads(r.stdout)
    assert org["client_id"] == "flowsim-load-client" and org["client_secret"] == "flowsim-local-secret"
    flow = next(f for f in org["flows"] if f["id"] == TEST_FLOW)
    assert flow["type"] == "workflow" and flow["division"] == "Load Testing"
    assert "Flow.loadTestRunId" in flow["inputSchema"]["properties"]


def test_org_dataclasses_are_frozen() -> None:
    """The org is a value: mutating it raises."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_org().settings.rate_limit_per_window = 1  # type: ignore[misc]
