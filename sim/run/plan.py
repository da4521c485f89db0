"""The run plan: everything a run's processes must agree on, resolved once and handed on.

One place — the ``flowsim`` parent, or the Locust master in plain ``locust`` use — turns a scenario,
the command-line overrides, the target and the preflight results into a :class:`RunPlan`. The
master hands it to every worker in the start message; workers never re-read the scenario, never
re-run preflight and never parse option strings for anything the plan holds. The plan is frozen,
typed, JSON-serialisable and holds no secret: credentials are named (the environment variables),
or are the flowsim simulator's built-in test client.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Literal

from sim import __version__
from sim.errors import ConfigError
from sim.load.scenario import Scenario, Target, scenario_from_dict, scenario_to_dict
from sim.load.schedule import Schedule

__all__ = ["RunPlan", "FlowPlan", "PLAN_SCHEMA", "BUILTIN_CLIENT", "BUILTIN_WEBHOOK_SECRET", "credentials",
           "webhook_secret", "new_run_id", "check_run_id", "PlanMismatch"]

PLAN_SCHEMA = 1
"""Bumped whenever a field changes meaning; a worker refuses a plan of another schema."""

BUILTIN_CLIENT = ("flowsim-load-client", "flowsim-local-secret")
"""The flowsim simulator's built-in OAuth client: local test values, never valid anywhere else."""
BUILTIN_WEBHOOK_SECRET = "flowsim-local-webhook-secret"
"""The webhook signature secret of the flowsim simulator's built-in Open Messaging integration (local test value)."""


def new_run_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + os.urandom(2).hex()


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_run_id(run_id: str, ledger_dir: str) -> None:
    """A run id names a folder under ``ledger_dir`` and tags every execution: letters, digits, ``.``, ``_``, ``-``,
    at most 64, not starting with ``.`` or ``-`` (so never a path outside ``ledger_dir``); and it is new there (a
    reused id would merge two runs' ledgers)."""
    if not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f"{run_id[:80]!r}: a run id is 1 to 64 letters, digits, '.', '_' or '-', starting with a "
                          "letter or digit", field="run id")
    rdir = Path(ledger_dir) / run_id
    if rdir.exists() and any(rdir.iterdir()):
        raise ConfigError(f"run {run_id!r} already exists in {ledger_dir}: a run id is used once (its ledger would "
                          "mix two runs); choose another or leave it out", field="run id")


class PlanMismatch(ConfigError):
    """A worker was handed a plan it cannot run (another flowsim version or plan schema), or cannot keep to the
    master's clock (its own is too far off: ``sim.run.clock``)."""


@dataclass(frozen=True, kw_only=True)
class FlowPlan:
    """One flow as preflight found it on the target."""

    id: str
    name: str
    division_id: str
    division: str
    version: str
    inputs: tuple[str, ...]
    """Input variables the flow version declares (``Flow.`` names)."""


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """A run, fully resolved. Build with :meth:`create`; ship with :meth:`to_dict` / :meth:`from_dict`."""

    schema: int = PLAN_SCHEMA
    flowsim_version: str = __version__
    run_id: str
    scenario: Scenario
    """The scenario with every override applied (``--rate``/``--duration``, a capacity step's rate)."""
    target: Target
    credentials: Literal["builtin", "env"]
    """"builtin": the flowsim simulator's test client; "env": read from the scenario's *_env variables."""
    flows: tuple[FlowPlan, ...]
    ledger_dir: str = "runs"
    abort_error_rate: float | None = None
    """Stop early when failures + 429s exceed this share of launches over 3 s (None: never)."""
    live: str | None = None
    """Against a real org: the approval and window this run was checked against (recorded in plan.json)."""
    sizing: tuple[str, ...] = ()
    """How tokens and slots were sized, and any warning (``sim.run.sizing``)."""
    replies_url: str | None = None
    """Open Messaging runs: where the run's other processes read their customers' replies — the receiver of the
    process that hosts it (``sim.run.webhook``), which sets this before it hands the plan on."""

    @property
    def tokens_per_process(self) -> int:
        return self.scenario.tokens_per_client or 1

    @property
    def users(self) -> int:
        """Locust users (concurrency slots) for the whole run."""
        return self.scenario.max_concurrency or 1

    @functools.cached_property
    def schedule(self) -> Schedule:
        """Built once per process, from the plan's stages."""
        return Schedule(self.scenario.stages)

    @property
    def declared_inputs(self) -> dict[str, set[str]]:
        return {f.id: set(f.inputs) for f in self.flows}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["scenario"] = scenario_to_dict(self.scenario)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPlan:
        """Rebuild a shipped plan; raises PlanMismatch for another plan schema or flowsim version."""
        schema, version = data.get("schema"), data.get("flowsim_version")
        if schema != PLAN_SCHEMA or version != __version__:
            raise PlanMismatch(f"the master runs flowsim {version} (plan schema {schema}); this worker runs "
                               f"flowsim {__version__} (plan schema {PLAN_SCHEMA}): install the same version everywhere")
        kw = dict(data)
        kw["scenario"] = scenario_from_dict(data["scenario"])
        kw["target"] = Target(**data["target"])
        kw["flows"] = tuple(FlowPlan(**{**f, "inputs": tuple(f["inputs"])}) for f in data["flows"])
        kw["sizing"] = tuple(data.get("sizing", ()))
        return cls(**kw)


def credentials(plan_or_scenario: RunPlan | Scenario, mode: str | None = None) -> tuple[str, str]:
    """The OAuth client id and secret for a plan (or a scenario, with ``mode``): the built-in test client,
    or the environment variables the scenario names. The one place flowsim reads credentials."""
    if isinstance(plan_or_scenario, RunPlan):
        sc, mode = plan_or_scenario.scenario, plan_or_scenario.credentials
    else:
        sc = plan_or_scenario
    if mode == "builtin":
        return BUILTIN_CLIENT
    cid, sec = os.environ.get(sc.client_id_env), os.environ.get(sc.client_secret_env)
    if not cid or not sec:
        raise ConfigError(f"set {sc.client_id_env} and {sc.client_secret_env} in the environment "
                          "(OAuth client credentials; never in the scenario file)", source=sc.source)
    return cid, sec


def webhook_secret(plan_or_scenario: RunPlan | Scenario, mode: str | None = None) -> str:
    """An Open Messaging run's webhook signature secret: the variable ``[messaging] secret_env`` names, or (against
    a flowsim simulator with its built-in client, when unset) the built-in integration's. Never in a file."""
    if isinstance(plan_or_scenario, RunPlan):
        sc, mode = plan_or_scenario.scenario, plan_or_scenario.credentials
    else:
        sc = plan_or_scenario
    env = sc.messaging.secret_env if sc.messaging is not None else "FLOWSIM_WEBHOOK_SECRET"
    value = os.environ.get(env)
    if value:
        return value
    if mode == "builtin":
        return BUILTIN_WEBHOOK_SECRET
    raise ConfigError(f"set {env} in the environment: the Open Messaging integration's webhook signature secret "
                      "(flowsim refuses every reply it cannot verify)", source=sc.source)
