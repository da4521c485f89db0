"""Scenarios: what to launch, how fast, against what, and what counts as a pass. Loaded from TOML.

A scenario is data. :func:`load_scenario` validates it and raises ConfigError naming the file,
the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim._toml import TableReader, read_toml_file
from sim.errors import ConfigError
from sim.load.target import REGIONS, Target, resolve_target
from sim.load.messaging_script import MessageSpec, MessagingSpec, messaging_from_dict, parse_messages, parse_messaging
from sim.load.script import CHANNELS, USER_AGENTS, TurnSpec, parse_turns
from sim.load.stages import Stage, parse_duration, parse_stages
from sim.load.template import placeholders
from sim.load.thresholds import Thresholds, read_thresholds
from sim.load.utterances import load_sets
from sim.load.datatable import load_table

__all__ = ["KINDS", "Scenario", "FlowSpec", "Stage", "Thresholds", "load_scenario", "parse_duration", "REGIONS",
           "Target", "resolve_target", "TEMPLATE_FIELDS", "scenario_to_dict", "scenario_from_dict",
           "MAX_CONCURRENCY", "MAX_TOKENS"]

KINDS = ("workflow", "conversation", "messaging")
"""The kinds of traffic a scenario may name: one per driver in ``sim.drivers`` (a test keeps the two equal)."""

MAX_CONCURRENCY = 20_000
"""Locust users a run may have in all: each is a greenlet with a connection; far more is a typo, not a test."""
MAX_TOKENS = 1_000
"""OAuth tokens per client and process: a pool that size already carries 300,000 requests a minute."""

TEMPLATE_FIELDS = (
    "identity.id", "identity.first_name", "identity.last_name", "identity.full_name", "identity.email",
    "identity.phone", "identity.seq", "run.id", "run.seq", "run.name", "flow.id",
)
"""Placeholders an inputData template may use, e.g. ``"{identity.phone}"``."""

@dataclass(frozen=True, kw_only=True)
class FlowSpec:
    """A flow to launch, with its share of launches and its inputData template."""

    id: str
    weight: float = 1.0
    version: str | None = None
    """flowVersion to launch; None = latest published."""
    input: dict[str, Any] = field(default_factory=dict)
    """inputData template: values may contain placeholders from TEMPLATE_FIELDS."""
    run_id_input: str | None = "Flow.loadTestRunId"
    """Input that receives the run id when the flow declares it (set to "" to disable)."""
    turns: tuple[TurnSpec, ...] = ()
    """A conversation scenario's script for this (digital bot) flow."""
    messages: tuple[MessageSpec, ...] = ()
    """A messaging scenario's script for this (inbound message) flow."""
    data: tuple[dict[str, str], ...] = ()
    """A data table's rows (``sim.load.datatable``): conversation n takes row n, its lines say ``{data.<column>}``."""
    channel: str = "Messaging"
    """A bot session's channel name: Chat, Call or Messaging."""
    user_agent: str = "Open"
    language: str | None = None
    """A bot session's language (None: the flow's default)."""


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    source: str
    kind: str = "workflow"
    """"workflow": launch flow executions; "conversation": bot flow sessions, each a scripted conversation."""
    target: str = "embedded"
    """"embedded", a base URL, or a region name such as ``us_east_1``."""
    client_id_env: str = "GENESYS_CLIENT_ID"
    client_secret_env: str = "GENESYS_CLIENT_SECRET"
    tokens_per_client: int | None = None
    """Tokens each load process fetches and uses round-robin (the platform limits requests per token);
    None ("auto"): sized from the rate, the polls and the org's per-token limit (``sim.run.sizing``)."""
    flows: tuple[FlowSpec, ...] = ()
    stages: tuple[Stage, ...] = ()
    max_concurrency: int | None = None
    """Locust users: executions in flight (launch plus follow) at most, per run; None ("auto"): sized by
    Little's law from the rate and the time each execution holds a user."""
    follow: bool = True
    """Poll each launched execution until it reaches a terminal status."""
    poll_interval_s: float = 1.0
    follow_timeout_s: float = 120.0
    tag_prefix: str = "flowsim"
    test_division: str | None = "Load Testing"
    """Division (name or id) the launched flows must be in; preflight refuses others."""
    allow_non_test_flows: bool = False
    identity_per: str = "execution"
    """"execution": a new identity per launch; "user": one per Locust user."""
    locale: str = "en_US"
    seed: int | None = None
    """Faker seed: the same seed gives the same identities for the same sequence numbers."""
    max_retries: int = 3
    max_retry_wait_s: float = 30.0
    """Give up instead of waiting when Retry-After exceeds this."""
    request_timeout_s: float = 30.0
    ca_bundle: str | None = None
    """A PEM file of CA certificates to trust besides the system store (a company's TLS-inspecting proxy)."""
    log_level: str = "info"
    thresholds: Thresholds = Thresholds()
    approval: str | None = None
    """``[live] approval``: the vendor's approval reference for load tests against a real org."""
    think_time_s: float = 0.5
    """Conversations: the customer's pause before each scripted turn (uniform from half to one and a half times)."""
    max_turns: int = 30
    """Conversations: a session still going after this many turns is ended (UserDisconnect) and counted."""
    messaging: MessagingSpec | None = None
    """``kind = "messaging"``: the integration, the webhook receiver, the reply timeouts (``[messaging]``)."""

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.stages)


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """Plain JSON-able data (the run plan carries the resolved scenario to every worker)."""
    return dataclasses.asdict(scenario)


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """The inverse of :func:`scenario_to_dict`."""
    kw = dict(data)
    kw["flows"] = tuple(FlowSpec(**{**f, "turns": tuple(TurnSpec.from_dict(t) for t in f.get("turns", ())),
                                    "messages": tuple(MessageSpec.from_dict(m) for m in f.get("messages", ())),
                                    "data": tuple(f.get("data", ()))})
                        for f in kw["flows"])
    kw["messaging"] = messaging_from_dict(kw.get("messaging"))
    kw["stages"] = tuple(Stage(**st) for st in kw["stages"])
    th = kw["thresholds"]
    kw["thresholds"] = Thresholds(**{**th, "abort_on_fail": tuple(th.get("abort_on_fail", ()))})
    return Scenario(**kw)


def _placeholders(value: Any, r: TableReader, key: str) -> list[str]:
    if not isinstance(value, str):
        return []
    try:
        return placeholders(value)
    except ValueError as exc:
        raise r.fail(key, str(exc)) from None


def _parse(data: dict[str, Any], source: str) -> Scenario:
    root = TableReader(data, source, "")
    root.check_keys({"scenario", "flows", "stages", "thresholds", "live", "messaging", "utterances", "nlu"})
    kw = _settings(TableReader(data.get("scenario", {}), source, "scenario"), source)
    kind = kw.get("kind", "workflow")
    sets = load_sets(data, source, TEMPLATE_FIELDS) if kind in ("conversation", "messaging") else {}
    flows = _flows(data, source, kind=kind, sets=sets, seed=kw.get("seed"))
    if kind == "messaging":
        if not isinstance(data.get("messaging"), dict):
            raise root.fail("messaging", 'a kind = "messaging" scenario needs a [messaging] table (its integration)')
        kw["messaging"] = parse_messaging(TableReader(data["messaging"], source, "messaging"))
    elif "messaging" in data:
        raise root.fail("messaging", 'is for kind = "messaging" scenarios')
    stages = parse_stages(data, source)
    thresholds = read_thresholds(TableReader(data.get("thresholds", {}), source, "thresholds"))
    live = TableReader(data.get("live", {}), source, "live")
    live.check_keys({"approval"})
    approval = live.get("approval", str, None) or None
    return Scenario(name=str(kw.pop("name", Path(source).stem)), source=source, flows=flows,
                    stages=stages, thresholds=thresholds, approval=approval, **kw)


def _settings(s: TableReader, source: str) -> dict[str, Any]:
    """The [scenario] table's settings, checked (the Scenario's keyword arguments)."""
    fields = {f.name for f in dataclasses.fields(Scenario)} - {"source", "flows", "stages", "thresholds", "approval",
                                                                "messaging"}
    s.check_keys(fields)
    kw: dict[str, Any] = {}
    for key in ("max_concurrency", "tokens_per_client"):
        if key in s.table:
            v = s.table[key]
            top = MAX_CONCURRENCY if key == "max_concurrency" else MAX_TOKENS
            if not (v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= top)):
                raise s.fail(key, f'must be a whole number from 1 to {top:,} or "auto", got {str(v)[:40]!r}')
            kw[key] = None if v == "auto" else v
    for f in dataclasses.fields(Scenario):
        if f.name in s.table and f.name in fields and f.name not in ("max_concurrency", "tokens_per_client"):
            default = f.default
            kind: Any = {"int": int, "float": float, "bool": bool, "str": str}.get(type(default).__name__, str)
            if f.name == "seed":
                kind = int
            kw[f.name] = s.get(f.name, kind, default)
    for key in ("poll_interval_s", "follow_timeout_s", "request_timeout_s", "max_retry_wait_s"):
        if key in kw and kw[key] <= 0:
            raise s.fail(key, f"must be > 0 (seconds), got {kw[key]}")
    if "max_retries" in kw and kw["max_retries"] < 0:
        raise s.fail("max_retries", "must be >= 0")
    s.get("identity_per", str, "execution", choices=("execution", "user"))
    s.get("kind", str, "workflow", choices=KINDS)
    conversation = kw.get("kind", "workflow") in ("conversation", "messaging")
    if kw.get("think_time_s", 0.0) < 0:
        raise s.fail("think_time_s", "must be >= 0 (seconds)")
    if kw.get("max_turns", 1) < 1:
        raise s.fail("max_turns", "must be >= 1")
    if conversation:
        kw["follow"] = False  # a session is followed by its own turns, not by status polls
    if "locale" in kw:
        from faker.config import AVAILABLE_LOCALES

        if kw["locale"] not in AVAILABLE_LOCALES:
            raise s.fail("locale", f"{kw['locale']!r} is not a Faker locale (e.g. en_US, en_GB, de_DE, fr_FR)")
    s.get("log_level", str, "info", choices=("debug", "info", "warning", "error"))
    if "target" in kw:
        try:
            resolve_target(kw["target"], embedded_url="http://placeholder")
        except ConfigError as exc:
            raise ConfigError(str(exc).split(": ", 1)[-1], source=source, field="scenario.target") from None
    if kw.get("ca_bundle") is not None:
        bundle = Path(kw["ca_bundle"])
        if not bundle.is_absolute():
            bundle = Path(source).parent / bundle
        if not bundle.is_file():
            raise s.fail("ca_bundle", f"{kw['ca_bundle']!r} is not a file (a PEM bundle of CA certificates)")
        kw["ca_bundle"] = str(bundle)
    if "tag_prefix" in kw and not re.fullmatch(r"[A-Za-z0-9_.]{1,32}", kw["tag_prefix"]):
        raise s.fail("tag_prefix", "must be 1-32 letters, digits, '_' or '.' (it starts every execution name)")
    return kw


def _flows(data: dict[str, Any], source: str, *, kind: str, sets: dict[str, tuple[str, ...]],
           seed: int | None) -> tuple[FlowSpec, ...]:
    conversation, messaging = kind == "conversation", kind == "messaging"
    flows = []
    raw_flows = data.get("flows", [])
    if not isinstance(raw_flows, list) or not raw_flows:
        raise ConfigError("at least one [[flows]] entry is required", source=source, field="flows")
    for i, raw in enumerate(raw_flows):
        r = TableReader(raw, source, f"flows[{i}]")
        r.check_keys({"id", "weight", "version", "input", "run_id_input"}
                     | ({"turns", "channel", "user_agent", "language"} if conversation else set())
                     | ({"messages"} if messaging else set()) | ({"data"} if conversation or messaging else set()))
        if "id" not in r.table or not isinstance(r.table["id"], str) or not r.table["id"]:
            what = {"conversation": "digital bot flow", "messaging": "inbound message flow"}.get(kind, "workflow")
            raise r.fail("id", f"is required: the flow id (a UUID) of a {what}")
        data_file = r.get("data", str, None)
        table = load_table(data_file, source, f"flows[{i}].data") if data_file else ()
        fields = TEMPLATE_FIELDS + tuple(f"data.{c}" for c in (table[0] if table else {}))
        turns = parse_turns(r, fields, sets, seed) if conversation else ()
        if conversation and not turns:
            raise r.fail("turns", "a conversation needs a script: [[flows.turns]] with what the customer says")
        messages = parse_messages(r, fields, sets, seed) if messaging else ()
        if messaging and not messages:
            raise r.fail("messages", "a messaging conversation needs a script: [[flows.messages]] with what the "
                                     "customer writes")
        inputs = r.get("input", dict, {})
        for k, v in inputs.items():
            if not k.startswith("Flow."):
                raise r.fail(f"input.{k}", f"input keys carry the 'Flow.' prefix: use 'Flow.{k}'")
            for ph in _placeholders(v, r, f"input.{k}"):
                if ph not in TEMPLATE_FIELDS:
                    raise r.fail(f"input.{k}", f"unknown placeholder {{{ph}}}; allowed: "
                                 + ", ".join("{" + t + "}" for t in TEMPLATE_FIELDS))
        weight = r.get("weight", float, 1.0)
        if weight <= 0:
            raise r.fail("weight", "must be > 0")
        flows.append(FlowSpec(id=r.table["id"], weight=weight, version=r.get("version", str, None) or None,
                              input=dict(inputs), run_id_input=r.get("run_id_input", str, "Flow.loadTestRunId") or None,
                              turns=turns, messages=messages, data=table, channel=r.get("channel", str, "Messaging", choices=CHANNELS),
                              user_agent=r.get("user_agent", str, "Open", choices=USER_AGENTS), language=r.get("language", str, None)))
    return tuple(flows)


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario TOML file."""
    return _parse(read_toml_file(path, what="a scenario file"), str(path))
