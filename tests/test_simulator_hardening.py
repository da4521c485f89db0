"""The simulator under hostile clients: every error an ErrorBody, bodies and echoes bounded, memory bounded in
bytes, type errors rejected, half-open and trickling connections closed. Real HTTP on a loopback port."""

from __future__ import annotations

import socket

import httpx

from sim.platform.server import SimulatorThread
from tests.conftest import TEST_FLOW, org_with, token


def _is_error_body(r: httpx.Response, status: int, code: str) -> bool:
    body = r.json()
    return (r.status_code == status and r.headers["content-type"].startswith("application/json")
            and body["code"] == code and body["status"] == status and body["contextId"])


def test_body_over_request_bytes_max_is_413_with_the_limit(sim: SimulatorThread, http: httpx.Client,
                                                            auth: dict[str, str]) -> None:
    """A launch body over 512,000 bytes: 413 request.entity.too.large naming request.bytes.max."""
    r = http.post("/api/v2/flows/executions", headers=auth,
                  json={"flowId": TEST_FLOW, "inputData": {"Flow.customerName": "x" * 600_000}})
    assert _is_error_body(r, 413, "request.entity.too.large")
    assert r.json()["limit"] == {"key": "request.bytes.max", "namespace": "platform.api", "value": 512_000}


def test_deep_nesting_is_a_400_error_body_not_a_500(http: httpx.Client, auth: dict[str, str]) -> None:
    """inputData nested 1,000 levels deep: 400 invalid.value as JSON (was a text/plain 500)."""
    deep = "[" * 1000 + "]" * 1000
    raw = '{"flowId": "%s", "inputData": {"Flow.customerName": %s}}' % (TEST_FLOW, deep)
    r = http.post("/api/v2/flows/executions", headers={**auth, "Content-Type": "application/json"}, content=raw)
    assert _is_error_body(r, 400, "invalid.value") and "deeper" in r.json()["message"]


def test_type_errors_in_the_body_are_400(http: httpx.Client, auth: dict[str, str]) -> None:
    """flowVersion true, name 5, inputData a list: 400 invalid.value naming the field (no lookup of "True")."""
    for field, value in (("flowVersion", True), ("name", 5), ("inputData", [1])):
        r = http.post("/api/v2/flows/executions", headers=auth, json={"flowId": TEST_FLOW, field: value})
        assert _is_error_body(r, 400, "invalid.value"), (field, r.text)
        assert r.json()["details"][0]["fieldName"] == field


def test_error_messages_never_echo_a_huge_value(http: httpx.Client, auth: dict[str, str]) -> None:
    """A 400 KB flowId is not echoed back whole: the 404 stays under 2 KB."""
    r = http.post("/api/v2/flows/executions", headers=auth, json={"flowId": "f" * 400_000})
    assert _is_error_body(r, 404, "architect.flow.not.found") and len(r.content) < 2_000


def test_admin_listing_rejects_bad_paging_with_an_error_body(http: httpx.Client) -> None:
    """offset=-1e20, offset=-1, limit=abc: 400 ErrorBody, not a 500."""
    for q in ("offset=-1e20", "offset=-1", "limit=abc"):
        assert _is_error_body(http.get(f"/_sim/executions?{q}"), 400, "invalid.value"), q


def test_store_is_bounded_in_bytes() -> None:
    """With a 1 MB store budget, 40 launches of ~100 KB each keep at most ~1 MB: the oldest are evicted."""
    org = org_with(settings={"store_max_bytes": 1_000_000})
    with SimulatorThread(org) as s, httpx.Client(base_url=s.url) as c:
        auth = token(c)
        for i in range(40):
            r = c.post("/api/v2/flows/executions", headers=auth,
                       json={"flowId": TEST_FLOW, "name": f"n{i}-" + "x" * 100_000})
            assert r.status_code == 200
        listing = c.get("/_sim/executions", params={"limit": 1000}).json()
    assert listing["stored"] <= 10 and listing["evicted"] >= 30
    assert listing["entities"][-1]["name"].startswith("n39-")  # the newest kept


def test_half_open_and_trickling_connections_are_closed() -> None:
    """A connection that sends nothing, or half a request head, is closed after header_timeout_s; a body that
    never comes is answered 408 after body_timeout_s."""
    org = org_with(settings={"header_timeout_s": 0.5, "body_timeout_s": 0.5})
    with SimulatorThread(org) as s:
        host, port = s.url.removeprefix("http://").split(":")
        for sent in (b"", b"POST /api/v2/flows/executions HTTP/1.1\r\nHost: x\r\n"):
            with socket.create_connection((host, int(port)), timeout=30) as sock:
                sock.sendall(sent)
                assert sock.recv(100) == b""  # closed by the server (a timeout here would raise)
        with httpx.Client(base_url=s.url) as c:
            auth = token(c)["Authorization"]
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"POST /api/v2/flows/executions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Authorization: " + auth.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
            assert sock.recv(100).startswith(b"HTTP/1.1 408")
