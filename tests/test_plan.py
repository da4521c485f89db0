"""The run plan: resolved once, shipped as JSON, refused by a worker of another version, never holding a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.errors import ConfigError
from sim.load.overrides import constant_rate
from sim.load.scenario import load_scenario
from sim.platform.server import SimulatorThread
from sim.run.plan import BUILTIN_CLIENT, PlanMismatch, RunPlan, credentials
from sim.run.prepare import Prepared
from tests.conftest import LOAD_CLIENT, TEST_DIVISION, TEST_FLOW

ROOT = Path(__file__).resolve().parent.parent


def make_plan(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> RunPlan:
    monkeypatch.setenv("GENESYS_CLIENT_ID", LOAD_CLIENT[0])
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", LOAD_CLIENT[1])
    sc = constant_rate(load_scenario(ROOT / "scenarios" / "smoke.toml"), rate_per_s=100, duration_s=15)
    with Prepared(sc, sim.url) as prepared:
        return prepared.plan(run_id="R1", ledger_dir="/tmp/ledgers")


def test_plan_carries_overrides_and_preflight_results(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan holds the overridden stages, the target, and the flows as preflight found them."""
    plan = make_plan(sim, monkeypatch)
    assert plan.schedule.total == 1500 and plan.scenario.stages[0].rate_per_s == 100
    assert plan.target.api_url == sim.url and plan.credentials == "env"
    (flow,) = plan.flows
    assert flow.id == TEST_FLOW and flow.division_id == TEST_DIVISION and "Flow.loadTestRunId" in flow.inputs


def test_plan_round_trips_through_json_without_secrets(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """to_dict → JSON → from_dict is the identity, and the JSON never holds the client secret."""
    plan = make_plan(sim, monkeypatch)
    text = json.dumps(plan.to_dict())
    assert RunPlan.from_dict(json.loads(text)) == plan
    assert LOAD_CLIENT[1] not in text and "access_token" not in text


def test_worker_refuses_a_plan_from_another_version(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan from another flowsim version or plan schema is refused with a message naming both versions."""
    data = make_plan(sim, monkeypatch).to_dict()
    for key, value in (("flowsim_version", "0.0.1"), ("schema", 99)):
        with pytest.raises(PlanMismatch, match="install the same version everywhere"):
            RunPlan.from_dict({**data, key: value})


def test_credentials_come_from_the_environment_or_the_builtin_client(sim: SimulatorThread,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An "env" plan reads the named variables (one clear error when unset); a "builtin" one uses the test client."""
    plan = make_plan(sim, monkeypatch)
    assert credentials(plan) == LOAD_CLIENT
    monkeypatch.delenv("GENESYS_CLIENT_SECRET")
    with pytest.raises(ConfigError, match="GENESYS_CLIENT_SECRET"):
        credentials(plan)
    assert credentials(plan.scenario, "builtin") == BUILTIN_CLIENT
