"""Shared fixtures: a simulator on a loopback port, a controllable clock, an authenticated client."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sim.platform.org import Org, default_org
from sim.platform.server import SimulatorThread

LOAD_CLIENT = ("flowsim-load-client", "flowsim-local-secret")
VIEWER_CLIENT = ("flowsim-viewer-client", "flowsim-viewer-secret")
TEST_FLOW = "7e57f1e0-0000-4000-8000-000000000001"
PROD_FLOW = "b1d5e7a2-0000-4000-8000-000000000002"
IVR_FLOW = "c0ffee00-0000-4000-8000-000000000003"
TEST_DIVISION = "a1b2c3d4-0000-4000-8000-00000000d7e5"
HOME_DIVISION = "a1b2c3d4-0000-4000-8000-00000000d001"


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def org_with(*, settings: dict[str, Any] | None = None, flow: dict[str, Any] | None = None,
             faults: Any = None) -> Org:
    """The default org with some settings, the test flow's fields or the run-wide faults replaced."""
    org = default_org()
    if settings:
        org = dataclasses.replace(org, settings=dataclasses.replace(org.settings, **settings))
    if flow:
        flows = tuple(dataclasses.replace(f, **flow) if f.id == TEST_FLOW else f for f in org.flows)
        org = dataclasses.replace(org, flows=flows)
    if faults is not None:
        org = dataclasses.replace(org, faults=faults)
    return org


def token(client: httpx.Client, creds: tuple[str, str] = LOAD_CLIENT) -> dict[str, str]:
    r = client.post("/oauth/token", auth=creds, data={"grant_type": "client_credentials"})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(default_org()) as s:
        yield s


@pytest.fixture
def http(sim: SimulatorThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=10) as c:
        yield c


@pytest.fixture
def auth(http: httpx.Client) -> dict[str, str]:
    return token(http)
