"""The simulated org: OAuth clients, divisions, flows and platform settings, loaded from TOML (the file's parser:
``sim.platform.org_file``).

An org is a value: frozen dataclasses built once by :func:`load_org` and handed to the app factory.
A wrong file raises :class:`~sim.errors.ConfigError` naming the file, the field and what is allowed.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sim._toml import read_toml_file
from sim.platform.bots import BotDefinition
from sim.platform.messaging_model import MessagingFlow, OpenIntegrationDef

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
    messaging: MessagingFlow | None = None
    """An inbound message flow's behaviour (``sim.platform.messaging_model``)."""


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
    integrations: tuple[OpenIntegrationDef, ...] = ()
    """Open Messaging integrations (``[[open_messaging]]``), each routed to an inbound message flow."""
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


def load_org(path: str | Path) -> Org:
    """Load and validate an org TOML file."""
    from sim.platform.org_file import parse_org  # the parser builds these types: imported when first needed

    return parse_org(read_toml_file(path, what="an org file"), str(path))


def default_org() -> Org:
    """The built-in org shipped with the package."""
    from sim.platform.org_file import parse_org

    text = resources.files("sim.platform").joinpath("default_org.toml").read_text(encoding="utf-8")
    return parse_org(tomllib.loads(text), "<built-in default org>")
