"""The platform client against httpx.MockTransport: retries, Retry-After, jitter, token refresh after a 401,
and no retry of a launch whose connection broke. No sleeping: waits are recorded, not slept."""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx
import pytest

from sim.load.client import FlowClient, TokenManager

Handler = Callable[[httpx.Request], httpx.Response]


def run_now(fn: Callable[[], None]) -> None:
    """A token manager's background work, run at once (deterministic tests)."""
    fn()


class Platform:
    """A scripted platform: answers launches from a list, counts tokens issued and what each request carried."""

    def __init__(self, answers: list[httpx.Response | Exception]) -> None:
        self.answers = answers
        self.tokens_issued = 0
        self.seen_tokens: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.tokens_issued += 1
            return httpx.Response(200, json={"access_token": f"t{self.tokens_issued}", "expires_in": 3600})
        self.seen_tokens.append(request.headers["Authorization"].removeprefix("Bearer "))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(platform: Platform, waits: list[float], **kw: object) -> FlowClient:
    transport = httpx.MockTransport(platform)
    tokens = TokenManager(login_url="http://login.test", client_id="c", client_secret="s", transport=transport,
                          pool_size=int(kw.pop("pool_size", 1)), spawn=run_now)  # type: ignore[call-overload]
    return FlowClient(api_url="http://api.test", tokens=tokens, transport=transport, sleep=waits.append,
                      rng=random.Random(1), **kw)  # type: ignore[arg-type]


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"status": status, "code": code, "message": code})


OK = httpx.Response(200, json={"id": "e-1", "name": "n"})


def test_503_is_retried_with_backoff_and_the_first_failure_stays_visible() -> None:
    """A 503 then a 200: the launch succeeds after one retry; first_status keeps the 503."""
    waits: list[float] = []
    res = client(Platform([error(503, "service.unavailable"), OK]), waits).launch({"flowId": "f"})
    assert (res.status, res.first_status, res.retries, res.execution_id) == (200, 503, 1, "e-1")
    assert res.statuses == (503, 200) and len(waits) == 1 and 1.0 <= waits[0] <= 1.25


def test_429_waits_retry_after_plus_jitter_never_less() -> None:
    """A 429 with Retry-After: 2 waits between 2 and 2.5 s (jitter only ever adds), then retries."""
    waits: list[float] = []
    plat = Platform([error(429, "too.many.requests", {"Retry-After": "2"})] * 3 + [OK])
    res = client(plat, waits).launch({"flowId": "f"})
    assert res.status == 200 and res.retries == 3 and res.statuses.count(429) == 3
    assert all(2.0 <= w <= 2.5 for w in waits) and len(set(waits)) > 1


def test_429_without_retry_after_waits_3_s_like_the_vendor_sdk() -> None:
    """No Retry-After header: the vendor SDKs' 3 s (plus jitter)."""
    waits: list[float] = []
    client(Platform([error(429, "too.many.requests"), OK]), waits).launch({"flowId": "f"})
    assert 3.0 <= waits[0] <= 3.75


def test_retry_after_beyond_the_cap_gives_up_at_once() -> None:
    """A Retry-After above max_retry_wait_s is not waited for: the 429 is the answer."""
    waits: list[float] = []
    res = client(Platform([error(429, "too.many.requests", {"Retry-After": "600"})]), waits,
                 max_retry_wait_s=30).launch({"flowId": "f"})
    assert res.status == 429 and res.error == "too.many.requests" and waits == []


def test_retries_stop_at_max_retries() -> None:
    """Four 503s with max_retries=3: three retries, then the 503 is final."""
    waits: list[float] = []
    res = client(Platform([error(503, "service.unavailable")] * 4), waits, max_retries=3).launch({"flowId": "f"})
    assert res.status == 503 and res.attempts == 4 and res.retries == 3 and len(waits) == 3


def test_401_fetches_a_new_token_and_retries_once_on_it() -> None:
    """A revoked token: the 401 invalidates it, a new token is fetched and the retry carries it."""
    plat = Platform([error(401, "bad.credentials"), OK])
    res = client(plat, []).launch({"flowId": "f"})
    assert res.status == 200 and plat.tokens_issued == 2 and plat.seen_tokens == ["t1", "t2"]


def test_a_second_401_is_final() -> None:
    """Two 401s in a row: no loop of token fetches, the 401 is the answer."""
    plat = Platform([error(401, "bad.credentials"), error(401, "bad.credentials")])
    res = client(plat, []).launch({"flowId": "f"})
    assert res.status == 401 and res.attempts == 2 and plat.tokens_issued == 2


def test_a_broken_launch_connection_is_never_retried() -> None:
    """A launch whose connection broke may have run: no idempotency key, so no retry."""
    waits: list[float] = []
    plat = Platform([httpx.RemoteProtocolError("dropped"), OK])
    res = client(plat, waits).launch({"flowId": "f"})
    assert res.status == 0 and res.attempts == 1 and res.error == "RemoteProtocolError" and waits == []


def test_status_polls_retry_transport_errors_and_count_429s() -> None:
    """Following retries a broken status poll (reads are safe) and reports polls and 429s seen."""
    running = httpx.Response(200, json={"id": "e-1", "status": "RUNNING"})
    done = httpx.Response(200, json={"id": "e-1", "status": "COMPLETED"})
    plat = Platform([httpx.ReadTimeout("slow"), running, error(429, "too.many.requests", {"Retry-After": "1"}), done])
    f = client(plat, []).follow("e-1", poll_interval_s=1.0, timeout_s=60, clock=lambda: 0.0)
    assert (f.status, f.polls, f.rate_limited) == ("COMPLETED", 4, 1)


@pytest.mark.parametrize("pool", [1, 4])
def test_tokens_are_handed_out_round_robin(pool: int) -> None:
    """With tokens_per_client = N, consecutive requests use N different tokens in turn."""
    plat = Platform([OK] * 8)
    c = client(plat, [], pool_size=pool)
    for _ in range(8):
        c.launch({"flowId": "f"})
    assert plat.tokens_issued == pool and len(set(plat.seen_tokens)) == pool


class RevokingPlatform(Platform):
    """Accepts only tokens issued after the last revocation; every other request gets 401."""

    def __init__(self, lifetime_s: float = 3600) -> None:
        super().__init__([])
        self.valid_from = 0
        self.lifetime_s = lifetime_s
        self.unauthorized = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.tokens_issued += 1
            return httpx.Response(200, json={"access_token": f"t{self.tokens_issued}", "expires_in": self.lifetime_s})
        tok = int(request.headers["Authorization"].removeprefix("Bearer t"))
        if tok <= self.valid_from:
            self.unauthorized += 1
            return error(401, "bad.credentials")
        return httpx.Response(200, json={"id": "e", "name": "n"})

    def revoke_all(self) -> None:
        self.valid_from = self.tokens_issued


def test_revoking_every_pooled_token_costs_one_retry_not_failures() -> None:
    """All 40 pooled tokens revoked at once: the next 100 launches all succeed, with a single 401 among them."""
    plat = RevokingPlatform()
    c = client(plat, [], pool_size=40)
    for _ in range(40):
        c.launch({"flowId": "f"})
    plat.revoke_all()
    results = [c.launch({"flowId": "f"}) for _ in range(100)]
    assert all(r.status == 200 for r in results) and plat.unauthorized == 1
    assert plat.tokens_issued <= 40 + 40  # each slot refetched once at most


def test_a_lifetime_shorter_than_the_refresh_margin_does_not_refetch_every_request() -> None:
    """Tokens living 30 s with a 60 s margin are refreshed a quarter-lifetime early, not before every request."""
    now = [0.0]
    plat = RevokingPlatform(lifetime_s=30)
    transport = httpx.MockTransport(plat)
    tokens = TokenManager(login_url="http://login.test", client_id="c", client_secret="s", transport=transport,
                          refresh_margin_s=60, clock=lambda: now[0], spawn=run_now)
    c = FlowClient(api_url="http://api.test", tokens=tokens, transport=transport, sleep=lambda _s: None)
    for i in range(100):  # one request every 0.5 s for 50 s
        now[0] = i * 0.5
        assert c.launch({"flowId": "f"}).status == 200
    assert plat.tokens_issued == 3  # at 0 s, 22.5 s and 45 s


def per_token_429() -> httpx.Response:
    return httpx.Response(429, headers={"Retry-After": "40"}, json={
        "status": 429, "code": "too.many.requests", "message": "Rate limit exceeded",
        "limit": {"key": "client.credentials.token.rate.per.minute", "namespace": "platform.api", "value": 300}})


def test_a_per_token_429_grows_the_pool_and_retries_at_once_on_the_new_token() -> None:
    """The per-token limit hit: a token is added and the retry goes out on it now, not 40 s later."""
    waits: list[float] = []
    plat = Platform([per_token_429(), OK])
    c = client(plat, waits, pool_size=2)
    res = c.launch({"flowId": "f"})
    assert res.status == 200 and res.retries == 1 and waits == []
    # t1 and t2 fill the pool; the retry goes out on the token the 429 added
    assert plat.seen_tokens == ["t1", "t3"] and c.tokens.pool_size == 3


def test_the_pool_grows_only_to_its_bound_then_waits_retry_after() -> None:
    """At max_pool_size the pool stops growing: the 429 is waited out (Retry-After), as the vendor SDKs do."""
    waits: list[float] = []
    plat = Platform([per_token_429(), per_token_429(), OK])
    transport = httpx.MockTransport(plat)
    tokens = TokenManager(login_url="http://login.test", client_id="c", client_secret="s", transport=transport,
                          pool_size=1, max_pool_size=2, spawn=run_now)
    c = FlowClient(api_url="http://api.test", tokens=tokens, transport=transport, sleep=waits.append,
                   rng=random.Random(1), max_retry_wait_s=60)
    res = c.launch({"flowId": "f"})
    assert res.status == 200 and res.retries == 2 and tokens.pool_size == 2
    assert len(waits) == 1 and 40 <= waits[0] <= 50
