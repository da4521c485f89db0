"""The token pool never puts a network call in a launch's path: fetched before the first launch (in parallel),
refreshed in the background while the old token is still handed out, retried on transient failures; and the
client's send-time rules (the 1 s late rule with the token in hand, refused connections are not sent)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import httpx
import pytest

from sim.errors import PlatformError
from sim.load.client import FlowClient, TokenManager


def run_now(fn: Callable[[], None]) -> None:
    fn()


class Login:
    """An OAuth endpoint: answers from a script (then 200s), can block, records the most requests in flight."""

    def __init__(self, script: list[int] | None = None, lifetime_s: float = 3600) -> None:
        self.script = list(script or [])
        self.lifetime_s = lifetime_s
        self.issued = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/oauth/token":
            return httpx.Response(200, json={"id": "e-1", "name": "n"})
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.gate.wait(10)
            with self._lock:
                status = self.script.pop(0) if self.script else 200
                if status != 200:
                    return httpx.Response(status, json={"status": status, "code": "x", "message": "x"})
                self.issued += 1
                return httpx.Response(200, json={"access_token": f"t{self.issued}", "expires_in": self.lifetime_s})
        finally:
            with self._lock:
                self.in_flight -= 1


def manager(login: Login, **kw: object) -> TokenManager:
    return TokenManager(login_url="http://login.test", client_id="c", client_secret="s",
                        transport=httpx.MockTransport(login), sleep=lambda _s: None, **kw)  # type: ignore[arg-type]


def test_prefetch_fills_the_whole_pool_in_parallel_before_any_request() -> None:
    """40 tokens are fetched up front, many at a time (not one per launch, one after another)."""
    login = Login()
    login.gate.clear()
    tokens = manager(login, pool_size=40, parallel=8)
    tokens.prefetch()
    threading.Timer(0.2, login.gate.set).start()
    tokens.prefetch(wait_s=10)
    assert tokens.ready == 40 and login.issued == 40
    assert login.most_in_flight == 8


def test_a_token_due_for_refresh_is_handed_out_while_its_replacement_is_fetched() -> None:
    """Past its refresh time a token is still valid: token() returns it at once, the refresh blocks only itself."""
    clock = [0.0]
    login = Login(lifetime_s=100)
    tokens = manager(login, pool_size=1, refresh_margin_s=10, clock=lambda: clock[0])
    tokens.prefetch(wait_s=5)
    assert tokens.token() == "t1"
    clock[0] = 95.0  # refresh due at 90, expiry at 100
    login.gate.clear()  # the refresh hangs on the network
    got: list[str] = []
    asker = threading.Thread(target=lambda: got.append(tokens.token()))
    asker.start()
    asker.join(5)
    assert got == ["t1"] and login.in_flight == 1  # answered while the refresh is still out
    login.gate.set()
    tokens.prefetch(wait_s=5)
    assert tokens.token() == "t2"


def test_transient_token_failures_are_retried_and_bad_credentials_are_not() -> None:
    """503, then a 429, then a token; a 401 from the login host is final at once."""
    login = Login([503, 429])
    tokens = manager(login, spawn=run_now)
    assert tokens.token() == "t1"
    denied = Login([401])
    with pytest.raises(PlatformError) as exc:
        manager(denied, spawn=run_now, fetch_retries=3).token()
    assert exc.value.status == 401 and denied.script == []


def flow_client(handler: Callable[[httpx.Request], httpx.Response], wall: float = 1000.0) -> FlowClient:
    transport = httpx.MockTransport(handler)
    tokens = TokenManager(login_url="http://login.test", client_id="c", client_secret="s", transport=transport,
                          spawn=run_now)
    return FlowClient(api_url="http://api.test", tokens=tokens, transport=transport, sleep=lambda _s: None,
                      rng=random.Random(1), wall=lambda: wall, token_failure_unsent=True)


def test_a_launch_that_could_only_go_after_its_deadline_is_not_sent() -> None:
    """not_after is checked with the token in hand: past it, nothing reaches the platform and it says why."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        sent.append(request.url.path)
        return httpx.Response(200, json={"id": "e"})

    c = flow_client(handler, wall=1000.0)
    late = c.launch({"flowId": "f"}, not_after=999.0)
    assert (late.sent, late.unsent, late.sent_at, sent) == (False, "late", None, [])
    ok = c.launch({"flowId": "f"}, not_after=1000.5)
    assert ok.sent and ok.status == 200 and ok.sent_at == 1000.0 and sent == ["/api/v2/flows/executions"]


def test_a_refused_connection_is_not_sent_and_a_dropped_one_may_have_run() -> None:
    """ConnectError: certainly never reached the platform (unsent "refused"); a dropped answer is status 0, sent."""
    answers: list[Exception] = [httpx.ConnectError("refused"), httpx.RemoteProtocolError("dropped")]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        raise answers.pop(0)

    c = flow_client(handler)
    refused = c.launch({"flowId": "f"})
    assert (refused.sent, refused.unsent, refused.attempts) == (False, "refused", 0)
    dropped = c.launch({"flowId": "f"})
    assert (dropped.sent, dropped.status, dropped.attempts, dropped.error) == (True, 0, 1, "RemoteProtocolError")


def test_no_token_means_not_sent_with_the_reason_never_a_traceback() -> None:
    """The login host refuses the client: the launch comes back unsent ("no_token") with the cause in words."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(401, json={"status": 401, "code": "bad.credentials", "message": "no"})
        raise AssertionError("a launch went out without a token")

    res = flow_client(handler).launch({"flowId": "f"})
    assert (res.sent, res.unsent) == (False, "no_token") and "could not get a token" in (res.cause or "")
    preflight = flow_client(handler)
    preflight.token_failure_unsent = False  # preflight and analytics: the one-line error instead
    with pytest.raises(PlatformError, match="could not get a token"):
        preflight.launch({"flowId": "f"})
