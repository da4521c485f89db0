"""The org file's parser: TOML tables → an :class:`~sim.platform.org.Org`, every value checked. A wrong file raises
:class:`~sim.errors.ConfigError` naming the file, the field and what is allowed."""

from __future__ import annotations

import dataclasses
from typing import Any

from sim._toml import TableReader
from sim.errors import ConfigError
from sim.platform.bots import parse_bot
from sim.platform.messaging_model import parse_integration, parse_messaging
from sim.platform.org import (
    ERROR_STATUSES, FLOW_TYPES, VARIABLE_TYPES, Capacity, Division, Faults, Flow, Latency, OAuthClient, Org, Settings,
    Variable,
)

__all__ = ["parse_org"]


def parse_org(data: dict[str, Any], source: str) -> Org:
    """An org from its TOML tables; ConfigError naming the file and field for anything wrong."""
    root = TableReader(data, source, "")
    root.check_keys({"org", "settings", "clients", "divisions", "flows", "faults", "network", "open_messaging"})
    org_r = root.sub("org") or TableReader({}, source, "org")
    org_r.check_keys({"id", "name"})
    settings = _settings(root.sub("settings"))  # in the file's order: the first mistake is the one reported
    divisions = _divisions(root, source)
    clients = tuple(_client(r) for r in root.list_of_tables("clients"))
    flows = tuple(_flow(r, divisions) for r in root.list_of_tables("flows"))
    ids = [f.id for f in flows]
    if len(ids) != len(set(ids)):
        raise ConfigError("flow ids must be unique", source=source, field="flows")
    flows = _with_bots_resolved(flows, source)
    message_flows = {f.id: f.name for f in flows if f.messaging is not None}
    integrations = tuple(parse_integration(r, message_flows) for r in root.list_of_tables("open_messaging"))
    return Org(
        id=org_r.get("id", str, "00000000-0000-4000-8000-000000000000"),
        name=org_r.get("name", str, "simulated org"),
        settings=settings,
        clients=clients,
        divisions=divisions,
        flows=flows,
        faults=_faults(root.sub("faults")),
        integrations=integrations,
        network=_network(root.sub("network")),
        source=source,
    )


def _with_bots_resolved(flows: tuple[Flow, ...], source: str) -> tuple[Flow, ...]:
    """An inbound message flow's ``bot`` names (by id or name) a digital bot flow of the org: kept as its id."""
    bots = {f.id: f.id for f in flows if f.bot is not None} | {f.name: f.id for f in flows if f.bot is not None}
    out = []
    for f in flows:
        m = f.messaging
        if m is not None and m.bot_flow_id is not None:
            if m.bot_flow_id not in bots:
                raise ConfigError(f"flow {f.name!r}: [flows.messaging] bot = {m.bot_flow_id!r} is no digital bot flow "
                                  "of this org", source=source, field="flows.messaging.bot")
            f = dataclasses.replace(f, messaging=dataclasses.replace(m, bot_flow_id=bots[m.bot_flow_id]))
        out.append(f)
    return tuple(out)


def _settings(r: TableReader | None) -> Settings:
    if r is None:
        return Settings()
    r.check_keys(set(Settings.__dataclass_fields__))
    return Settings(
        rate_limit_per_window=r.get("rate_limit_per_window", int, 300, minimum=1),
        rate_limit_window_s=r.get("rate_limit_window_s", int, 60, minimum=1),
        strict_unknown_fields=r.get("strict_unknown_fields", bool, True),
        store_max_executions=r.get("store_max_executions", int, 200_000, minimum=1),
        store_max_age_s=r.get("store_max_age_s", int, 86_400, minimum=1),
        store_max_bytes=r.get("store_max_bytes", int, Settings.store_max_bytes, minimum=1024),
        request_bytes_max=r.get("request_bytes_max", int, Settings.request_bytes_max, minimum=1024),
        body_timeout_s=r.get("body_timeout_s", float, Settings.body_timeout_s, minimum=0.1),
        header_timeout_s=r.get("header_timeout_s", float, Settings.header_timeout_s, minimum=0.1),
    )


def _divisions(root: TableReader, source: str) -> tuple[Division, ...]:
    divisions = []
    for r in root.list_of_tables("divisions"):
        r.check_keys({"id", "name"})
        divisions.append(Division(id=r.get("id", str), name=r.get("name", str)))
    if not divisions:
        raise ConfigError("at least one [[divisions]] entry is required", source=source, field="divisions")
    return tuple(divisions)


def _client(r: TableReader) -> OAuthClient:
    r.check_keys({"id", "secret", "name", "permissions", "token_lifetime_s"})
    perms = r.get("permissions", list, [])
    if not all(isinstance(p, str) for p in perms):
        raise r.fail("permissions", "must be a list of strings like 'architect:flow:launch'")
    return OAuthClient(
        id=r.get("id", str),
        secret=r.get("secret", str),
        name=r.get("name", str, ""),
        permissions=frozenset(perms),
        # The vendor allows 300..172800 s; the simulator allows shorter for expiry tests.
        token_lifetime_s=r.get("token_lifetime_s", int, 86400, minimum=1, maximum=172800),
    )


def _capacity(r: TableReader | None) -> Capacity | None:
    if r is None:
        return None
    r.check_keys({"knee_per_s", "overload_latency_ms_per_excess", "overload_error_rate"})
    return Capacity(
        knee_per_s=r.get("knee_per_s", float, minimum=0.001),
        overload_latency_ms_per_excess=r.get("overload_latency_ms_per_excess", float, 5.0, minimum=0.0),
        overload_error_rate=_rate(r, "overload_error_rate") if "overload_error_rate" in r.table else 0.05,
    )


def _flow(r: TableReader, divisions: tuple[Division, ...]) -> Flow:
    r.check_keys({
        "id", "name", "type", "division", "version", "older_versions", "inputs", "outputs",
        "duration_ms", "failure_rate", "error_rate", "background_per_hour", "faults", "capacity", "bot", "messaging",
    })
    flow_type = r.get("type", str, choices=FLOW_TYPES)
    bot_r = r.sub("bot")
    if (bot_r is None) != (flow_type != "digitalbot"):
        raise r.fail("bot", "a digitalbot flow needs a [flows.bot] dialog, and only a digitalbot flow has one")
    msg_r = r.sub("messaging")
    if (msg_r is None) != (flow_type != "inboundshortmessage"):
        raise r.fail("messaging", "an inboundshortmessage flow needs a [flows.messaging] table, and only one has it")
    by_name = {d.name: d.id for d in divisions}
    division = r.get("division", str)
    division_id = by_name.get(division, division)
    if division_id not in {d.id for d in divisions}:
        raise r.fail("division", f"unknown division {division!r}; known: {', '.join(sorted(by_name))}")
    failure_rate, error_rate = _rate(r, "failure_rate"), _rate(r, "error_rate")
    if failure_rate + error_rate > 1:
        raise r.fail("error_rate", "failure_rate + error_rate must be <= 1")
    return Flow(
        id=r.get("id", str),
        name=r.get("name", str),
        type=flow_type,
        division_id=division_id,
        version=r.get("version", str, "1.0"),
        older_versions=tuple(str(v) for v in r.get("older_versions", list, [])),
        inputs=_variables(r.sub("inputs")),
        outputs=_variables(r.sub("outputs")),
        duration=_latency(r.sub("duration_ms")) or Latency(median_ms=400, p99_ms=2000),
        failure_rate=failure_rate,
        error_rate=error_rate,
        background_per_hour=r.get("background_per_hour", float, 0.0, minimum=0.0),
        faults=_faults(r.sub("faults")),
        capacity=_capacity(r.sub("capacity")),
        bot=parse_bot(bot_r) if bot_r is not None else None,
        messaging=parse_messaging(msg_r) if msg_r is not None else None,
    )


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
