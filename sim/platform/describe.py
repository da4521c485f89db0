"""``flowsim serve --describe``: what the simulator made of an org file, as JSON."""

from __future__ import annotations

import dataclasses
from typing import Any

from sim.platform.app import PERM_LAUNCH
from sim.platform.org import Faults, Org
from sim.platform.schema import variables_schema

__all__ = ["describe"]


def _faults(f: Faults) -> dict[str, Any] | None:
    """An org's or flow's [faults] as the org file spells them (None: none)."""
    if not f.active:
        return None
    return {"latency_ms": {"median": f.latency.median_ms, "p99": f.latency.p99_ms} if f.latency else None,
            "error_rates": {str(k): v for k, v in f.error_rates.items()}, "drop_rate": f.drop_rate,
            "early_expiry_rate": f.early_expiry_rate}


def describe(org: Org) -> dict[str, Any]:
    """The org as JSON-ready data: clients (with the local test credentials, on purpose), divisions, flows with
    their input schema, durations, outcome rates, faults and capacity knees, settings and the network."""
    default = next((c for c in org.clients if PERM_LAUNCH in c.permissions), None)
    return {
        "org": {"id": org.id, "name": org.name, "source": org.source},
        # Local test credentials of the simulated org, printed on purpose so clients can log in.
        "client_id": default.id if default else None,
        "client_secret": default.secret if default else None,
        "clients": [{"id": c.id, "name": c.name, "permissions": sorted(c.permissions),
                     "token_lifetime_s": c.token_lifetime_s} for c in org.clients],
        "divisions": [{"id": d.id, "name": d.name} for d in org.divisions],
        "flows": [{"id": f.id, "name": f.name, "type": f.type, "division": org.division(f.division_id).name,
                   "divisionId": f.division_id, "version": f.version,
                   "inputSchema": variables_schema(f, f.inputs, "inputs"),
                   "duration_ms": {"median": f.duration.median_ms, "p99": f.duration.p99_ms},
                   "outcomes": {"failure_rate": f.failure_rate, "error_rate": f.error_rate},
                   "background_per_hour": f.background_per_hour, "faults": _faults(f.faults),
                   "capacity": dataclasses.asdict(f.capacity) if f.capacity else None,
                   "bot": f.bot is not None} for f in org.flows],
        "faults": _faults(org.faults),
        "settings": {"rate_limit_per_window": org.settings.rate_limit_per_window,
                     "rate_limit_window_s": org.settings.rate_limit_window_s,
                     "strict_unknown_fields": org.settings.strict_unknown_fields},
        "network": ({"latency_ms": {"median": org.network.median_ms, "p99": org.network.p99_ms}}
                    if org.network is not None else None),
    }
