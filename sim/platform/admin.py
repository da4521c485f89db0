"""The simulator's admin endpoints, under ``/_sim`` (outside ``/api/v2``, no token): health, the flows' duration
profiles, what was received (executions, paged and filtered), counters, and expiring tokens on demand."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sim.platform.analytics import iso_ms
from sim.platform.executions import Execution
from sim.platform.http import JSON, SimState, paging

__all__ = ["ROUTES", "sim_executions", "sim_expire_tokens", "sim_flows", "sim_health", "sim_stats"]


def _record(e: Execution, now: float) -> dict[str, Any]:
    return {"id": e.id, "name": e.name, "flowId": e.flow.id, "flowVersion": e.version,
            "divisionId": e.flow.division_id, "inputData": e.input_data, "clientId": e.client_id,
            "dateLaunched": iso_ms(e.launched_at), "status": e.status_at(now),
            "dateCompleted": iso_ms(e.completed_at()) if now >= e.completed_at() else None}


async def sim_executions(request: Request) -> Response:
    """Admin: what the simulator received, filtered by ``name_prefix`` / ``flow_id``, paged."""
    state: SimState = request.app.state.sim
    q = request.query_params
    prefix, flow_id = q.get("name_prefix"), q.get("flow_id")
    paged = paging(state, q)
    if isinstance(paged, JSON):
        return paged
    limit, offset = paged
    now = state.clock()
    matched = [e for e in state.store
               if (prefix is None or (e.name or "").startswith(prefix)) and (flow_id is None or e.flow.id == flow_id)]
    page = matched[offset:offset + limit]
    return JSON({"total": len(matched), "offset": offset, "limit": limit,
                 "stored": len(state.store), "evicted": state.store.evicted,
                 "entities": [_record(e, now) for e in page]})


async def sim_stats(request: Request) -> Response:
    state: SimState = request.app.state.sim
    return JSON({"received": state.store.received, "stored": len(state.store), "evicted": state.store.evicted,
                 "counters": dict(sorted(state.counters.items()))})


async def sim_expire_tokens(request: Request) -> Response:
    """Admin: expire all tokens (or those of ``?client_id=``), to exercise refresh on 401."""
    state: SimState = request.app.state.sim
    return JSON({"expired": state.tokens.expire(request.query_params.get("client_id"))})


async def sim_flows(request: Request) -> Response:
    """Admin: each flow's duration profile (what a run may expect of it: flowsim sizes runs from this)."""
    org = request.app.state.sim.org
    return JSON({"entities": [{"id": f.id, "type": f.type, "durationMedianMs": f.duration.median_ms,
                               "durationP99Ms": f.duration.p99_ms} for f in org.flows]})


async def sim_health(request: Request) -> Response:
    return JSON({"status": "ok", "org": request.app.state.sim.org.name})


ROUTES = [
    Route("/_sim/health", sim_health, methods=["GET"]),
    Route("/_sim/flows", sim_flows, methods=["GET"]),
    Route("/_sim/executions", sim_executions, methods=["GET"]),
    Route("/_sim/stats", sim_stats, methods=["GET"]),
    Route("/_sim/tokens/expire", sim_expire_tokens, methods=["POST"]),
]
