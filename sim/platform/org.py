"""The simulated org: OAuth clients, divisions, flows and platform settings, loaded from TOML.

An org is a value: frozen dataclasses built once by :func:`load_org` and handed to the app factory.
A wrong file raises :class:`~sim.errors.ConfigError` naming the file, the field and what is allowed.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sim._toml import TableReader, read_toml_file
from sim.errors import ConfigError
from sim.platform.bots import BotDefinition, parse_bot

__all__ = ["Org", "Settings", "OAuthClient", "Division", "Flow", "Variable", "Latency", "Faults", "Capacity",
           "load_org", "default_org", "VARIABLE_TYPES", "FLOW_TYPES", "ERROR_STATUSES"]

VARIABLE_TYPES = ("string", "integer", "boolean", "decimal", "datetime")
FLOW_TYPES = ("workflow", "digitalbot", "inboundcall", "inboundemail", "inboundshortmessage", "bot", "commonmodule",
              "workitem")
ERROR_STATUSES = (500, 503, 504)


@dataclass(frozen=True, kw_only=True)
class Latency:
    """A log-normal latency distribution given by its median and 99th percentile, in ms."""

    median_ms: float
    p99_ms: float

    @property
    def sigma(self) -> float:
        """Log-normal shape parameter; 2.3263 is the standard normal's 99th percentile."""
        return math.log(self.p99_ms / self.median_ms) / 2.3263 if self.p99_ms > self.median_ms else 0.0


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Injected faults. Rates are probabilities per request in [0, 1]."""

    latency: Latency | None = None
    """Extra latency added before answering."""
    error_rates: dict[int, float] = field(default_factory=dict)
    """Share of requests answered with 500 / 503 / 504 ErrorBodies."""
    drop_rate: float = 0.0
    """Share of requests whose connection is closed after the status line, before the body."""
    early_expiry_rate: float = 0.0
    """Share of issued tokens that stop working at a random point before their ``expires_in``."""

    @property
    def active(self) -> bool:
        return bool(self.latency or self.error_rates or self.drop_rate or self.early_expiry_rate)


@dataclass(frozen=True, kw_only=True)
class Capacity:
    """A flow's simulated capacity: past ``knee_per_s`` launches/s, latency and errors grow."""

    knee_per_s: float
    """Launch rate (per second, over a sliding second) the flow's backend sustains."""
    overload_latency_ms_per_excess: float = 5.0
    """Added launch latency, ms, per launch/s above the knee."""
    overload_error_rate: float = 0.05
    """Share of launches answered 503 once the rate is above the knee."""


@dataclass(frozen=True, kw_only=True)
class Variable:
    """A flow input or output variable. ``name`` carries the ``Flow.`` prefix."""

    name: str
    type: str
    array: bool = False


@dataclass(frozen=True, kw_only=True)
class Flow:
    """An Architect flow with one published version (plus optional older versions)."""

    id: str
    name: str
    type: str
    division_id: str
    version: str
    """The latest published version id, e.g. ``"1.0"``."""
    older_versions: tuple[str, ...] = ()
    inputs: tuple[Variable, ...] = ()
    outputs: tuple[Variable, ...] = ()
    duration: Latency = Latency(median_ms=400, p99_ms=2000)
    """How long an execution stays RUNNING."""
    failure_rate: float = 0.0
    """Share of executions ending FAILED."""
    error_rate: float = 0.0
    """Share of executions ending ERROR."""
    background_per_hour: float = 0.0
    """Production executions per hour the org runs on its own (seen only in analytics)."""
    faults: Faults = Faults()
    capacity: Capacity | None = None
    bot: BotDefinition | None = None
    """A digitalbot flow's dialog (``sim.platform.bots``)."""


@dataclass(frozen=True, kw_only=True)
class OAuthClient:
    """A client-credentials OAuth client and the permissions of its roles."""

    id: str
    secret: str
    name: str
    permissions: frozenset[str]
    token_lifetime_s: int = 86400


@dataclass(frozen=True, kw_only=True)
class Division:
    id: str
    name: str


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Platform behaviour switches. Items marked [U] in the API reference are assumptions."""

    rate_limit_per_window: int = 300
    """Requests per token per window (vendor default: 300 per 60 s)."""
    rate_limit_window_s: int = 60
    strict_unknown_fields: bool = True
    """[U] Reject unknown top-level fields and unknown inputData keys with 400 (else ignore them)."""
    store_max_executions: int = 200_000
    """Executions kept; the oldest are evicted beyond this (about 1 KB each)."""
    store_max_age_s: int = 86_400
    """Executions older than this are evicted."""
    store_max_bytes: int = 256 * 1024 * 1024
    """The stored executions' request bodies together; the oldest are evicted beyond this."""
    request_bytes_max: int = 512_000
    """Largest request body accepted (the platform's ``request.bytes.max``, 512,000 by default); [U] the
    answer to a larger one is 413 ``request.entity.too.large``."""
    body_timeout_s: float = 10.0
    """A request whose body has not arrived this long after its headers is answered 408."""
    header_timeout_s: float = 10.0
    """A connection that has not sent a complete request head this long after opening is closed."""


@dataclass(frozen=True, kw_only=True)
class Org:
    id: str
    name: str
    settings: Settings
    clients: tuple[OAuthClient, ...]
    divisions: tuple[Division, ...]
    flows: tuple[Flow, ...]
    faults: Faults = Faults()
    """Faults applied to every /api/v2 request (flow faults add to these)."""
    network: Latency | None = None
    """``[network] latency_ms = { median = 100, p99 = 150 }``: a round trip's delay before *every* answer,
    OAuth and admin endpoints included: the simulator then answers like a region far away."""
    source: str = "<built-in>"

    def flow(self, flow_id: str) -> Flow | None:
        return next((f for f in self.flows if f.id == flow_id), None)

    def division(self, division_id: str) -> Division:
        return next(d for d in self.divisions if d.id == division_id)

    def client(self, client_id: str) -> OAuthClient | None:
        return next((c for c in self.clients if c.id == client_id), None)


def _latency(r: TableReader | None) -> Latency | None:
    if r is None:
        return None
    r.check_keys({"median", "p99"})
    median = r.get("median", float, minimum=0.0)
    p99 = r.get("p99", float, median, minimum=0.0)
    if p99 < median:
        raise r.fail("p99", f"must be >= median ({median})")
    return Latency(median_ms=median, p99_ms=p99)


def _network(r: TableReader | None) -> Latency | None:
    if r is None:
        return None
    r.check_keys({"latency_ms"})
    return _latency(r.sub("latency_ms"))


def _rate(r: TableReader, key: str) -> float:
    return float(r.get(key, float, 0.0, minimum=0.0, maximum=1.0))


def _faults(r: TableReader | None) -> Faults:
    if r is None:
        return Faults()
    r.check_keys({"latency_ms", "error_rates", "drop_rate", "early_expiry_rate"})
    errors: dict[int, float] = {}
    er = r.sub("error_rates")
    if er is not None:
        for key in er.table:
            if key not in {str(s) for s in ERROR_STATUSES}:
                raise er.fail(key, f"unknown status; allowed: {', '.join(map(str, ERROR_STATUSES))}")
            errors[int(key)] = _rate(er, key)
        if sum(errors.values()) > 1.0:
            raise r.fail("error_rates", "rates add up to more than 1")
    return Faults(
        latency=_latency(r.sub("latency_ms")),
        error_rates=errors,
        drop_rate=_rate(r, "drop_rate"),
        early_expiry_rate=_rate(r, "early_expiry_rate"),
    )


def _variables(r: TableReader | None) -> tuple[Variable, ...]:
    if r is None:
        return ()
    out = []
    allowed = VARIABLE_TYPES + tuple(f"{t}[]" for t in VARIABLE_TYPES)
    for name in r.table:
        kind = r.get(name, str, choices=allowed)
        if not name.startswith("Flow."):
            raise r.fail(name, "variable names start with 'Flow.' (e.g. 'Flow.customerId')")
        out.append(Variable(name=name, type=kind.removesuffix("[]"), array=kind.endswith("[]")))
    return tuple(out)


def _parse(data: dict[str, Any], source: str) -> Org:
    root = TableReader(data, source, "")
    root.check_keys({"org", "settings", "clients", "divisions", "flows", "faults", "network"})
    org_r = root.sub("org") or TableReader({}, source, "org")
    org_r.check_keys({"id", "name"})
    settings_r = root.sub("settings")
    settings = Settings()
    if settings_r is not None:
        settings_r.check_keys(set(Settings.__dataclass_fields__))
        settings = Settings(
            rate_limit_per_window=settings_r.get("rate_limit_per_window", int, 300, minimum=1),
            rate_limit_window_s=settings_r.get("rate_limit_window_s", int, 60, minimum=1),
            strict_unknown_fields=settings_r.get("strict_unknown_fields", bool, True),
            store_max_executions=settings_r.get("store_max_executions", int, 200_000, minimum=1),
            store_max_age_s=settings_r.get("store_max_age_s", int, 86_400, minimum=1),
            store_max_bytes=settings_r.get("store_max_bytes", int, Settings.store_max_bytes, minimum=1024),
            request_bytes_max=settings_r.get("request_bytes_max", int, Settings.request_bytes_max, minimum=1024),
            body_timeout_s=settings_r.get("body_timeout_s", float, Settings.body_timeout_s, minimum=0.1),
            header_timeout_s=settings_r.get("header_timeout_s", float, Settings.header_timeout_s, minimum=0.1),
        )

    divisions = []
    for r in root.list_of_tables("divisions"):
        r.check_keys({"id", "name"})
        divisions.append(Division(id=r.get("id", str), name=r.get("name", str)))
    if not divisions:
        raise ConfigError("at least one [[divisions]] entry is required", source=source, field="divisions")
    by_name = {d.name: d.id for d in divisions}
    division_ids = {d.id for d in divisions}

    clients = []
    for r in root.list_of_tables("clients"):
        r.check_keys({"id", "secret", "name", "permissions", "token_lifetime_s"})
        perms = r.get("permissions", list, [])
        if not all(isinstance(p, str) for p in perms):
            raise r.fail("permissions", "must be a list of strings like 'architect:flow:launch'")
        clients.append(
            OAuthClient(
                id=r.get("id", str),
                secret=r.get("secret", str),
                name=r.get("name", str, ""),
                permissions=frozenset(perms),
                # The vendor allows 300..172800 s; the simulator allows shorter for expiry tests.
                token_lifetime_s=r.get("token_lifetime_s", int, 86400, minimum=1, maximum=172800),
            )
        )

    flows = []
    for r in root.list_of_tables("flows"):
        r.check_keys({
            "id", "name", "type", "division", "version", "older_versions", "inputs", "outputs",
            "duration_ms", "failure_rate", "error_rate", "background_per_hour", "faults", "capacity", "bot",
        })
        flow_type = r.get("type", str, choices=FLOW_TYPES)
        bot_r = r.sub("bot")
        if (bot_r is None) != (flow_type != "digitalbot"):
            raise r.fail("bot", "a digitalbot flow needs a [flows.bot] dialog, and only a digitalbot flow has one")
        division = r.get("division", str)
        division_id = by_name.get(division, division)
        if division_id not in division_ids:
            raise r.fail("division", f"unknown division {division!r}; known: {', '.join(sorted(by_name))}")
        failure_rate, error_rate = _rate(r, "failure_rate"), _rate(r, "error_rate")
        if failure_rate + error_rate > 1:
            raise r.fail("error_rate", "failure_rate + error_rate must be <= 1")
        capacity = None
        cap_r = r.sub("capacity")
        if cap_r is not None:
            cap_r.check_keys({"knee_per_s", "overload_latency_ms_per_excess", "overload_error_rate"})
            capacity = Capacity(
                knee_per_s=cap_r.get("knee_per_s", float, minimum=0.001),
                overload_latency_ms_per_excess=cap_r.get("overload_latency_ms_per_excess", float, 5.0, minimum=0.0),
                overload_error_rate=_rate(cap_r, "overload_error_rate") if "overload_error_rate" in cap_r.table else 0.05,
            )
        older = r.get("older_versions", list, [])
        flows.append(
            Flow(
                id=r.get("id", str),
                name=r.get("name", str),
                type=flow_type,
                division_id=division_id,
                version=r.get("version", str, "1.0"),
                older_versions=tuple(str(v) for v in older),
                inputs=_variables(r.sub("inputs")),
                outputs=_variables(r.sub("outputs")),
                duration=_latency(r.sub("duration_ms")) or Latency(median_ms=400, p99_ms=2000),
                failure_rate=failure_rate,
                error_rate=error_rate,
                background_per_hour=r.get("background_per_hour", float, 0.0, minimum=0.0),
                faults=_faults(r.sub("faults")),
                capacity=capacity,
                bot=parse_bot(bot_r) if bot_r is not None else None,
            )
        )
    ids = [f.id for f in flows]
    if len(ids) != len(set(ids)):
        raise ConfigError("flow ids must be unique", source=source, field="flows")
    return Org(
        id=org_r.get("id", str, "00000000-0000-4000-8000-000000000000"),
        name=org_r.get("name", str, "simulated org"),
        settings=settings,
        clients=tuple(clients),
        divisions=tuple(divisions),
        flows=tuple(flows),
        faults=_faults(root.sub("faults")),
        network=_network(root.sub("network")),
        source=source,
    )


def load_org(path: str | Path) -> Org:
    """Load and validate an org TOML file."""
    return _parse(read_toml_file(path, what="an org file"), str(path))


def default_org() -> Org:
    """The built-in org shipped with the package."""
    text = resources.files("sim.platform").joinpath("default_org.toml").read_text(encoding="utf-8")
    return _parse(tomllib.loads(text), "<built-in default org>")
