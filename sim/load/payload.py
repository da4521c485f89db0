"""Launch bodies: the scenario's inputData template filled from an identity, tagged with the run."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from typing import Any

from sim.load.identity import Identity
from sim.load.scenario import FlowSpec, Scenario

__all__ = ["PayloadBuilder", "execution_name", "template_value"]

_Getter = Callable[[Identity, int], Any]


def execution_name(prefix: str, run_id: str, seq: int) -> str:
    """``<prefix>-<run_id>-<seq>``: traceable to its run in status look-ups and flow execution data."""
    return f"{prefix}-{run_id}-{seq}"


def template_value(name: str, identity: Identity, *, seq: int, run_id: str, prefix: str, flow_id: str) -> Any:
    """The value of one placeholder (``identity.*``, ``run.id``, ``run.seq``, ``run.name``, ``flow.id``)."""
    if name.startswith("identity."):
        return getattr(identity, name[9:])
    return {"run.id": run_id, "run.seq": seq, "run.name": execution_name(prefix, run_id, seq), "flow.id": flow_id}[name]


class PayloadBuilder:
    """Builds FlowExecutionLaunchRequest bodies; templates are compiled once."""

    def __init__(self, scenario: Scenario, run_id: str, declared_inputs: dict[str, set[str]] | None = None) -> None:
        self.scenario = scenario
        self.run_id = run_id
        self._flows = scenario.flows
        rng = random.Random(0)
        weights = [f.weight for f in self._flows]
        # A fixed interleaving of flows by weight, indexed by sequence number: deterministic and O(1).
        self._pattern = rng.choices(range(len(self._flows)), weights=weights, k=1000) if len(self._flows) > 1 else [0]
        self._compiled = [self._compile(f, (declared_inputs or {}).get(f.id)) for f in self._flows]

    def _value_getter(self, flow: FlowSpec, template: Any) -> _Getter:
        if not isinstance(template, str):
            return lambda _i, _s: template
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
        if not fields:
            return lambda _i, _s: template
        run_id, prefix = self.run_id, self.scenario.tag_prefix

        def lookup(name: str, ident: Identity, seq: int) -> Any:
            return template_value(name, ident, seq=seq, run_id=run_id, prefix=prefix, flow_id=flow.id)

        if template == "{" + fields[0] + "}":
            only = fields[0]
            return lambda ident, seq: lookup(only, ident, seq)
        return lambda ident, seq: template.format_map(_Lookup(lambda n: lookup(n, ident, seq)))

    def _compile(self, flow: FlowSpec, declared: set[str] | None) -> list[tuple[str, _Getter]]:
        items = [(k, self._value_getter(flow, v)) for k, v in flow.input.items()]
        rid = flow.run_id_input
        if rid and rid not in flow.input and declared is not None and rid in declared:
            items.append((rid, lambda _i, _s: self.run_id))
        return items

    def flow_for(self, seq: int) -> FlowSpec:
        return self._flows[self._pattern[seq % len(self._pattern)]]

    def build(self, seq: int, identity: Identity) -> dict[str, Any]:
        i = self._pattern[seq % len(self._pattern)]
        flow = self._flows[i]
        body: dict[str, Any] = {"flowId": flow.id,
                                "name": execution_name(self.scenario.tag_prefix, self.run_id, seq),
                                "inputData": {k: g(identity, seq) for k, g in self._compiled[i]}}
        if flow.version:
            body["flowVersion"] = flow.version
        return body


class _Lookup(dict[str, Any]):
    def __init__(self, fn: Callable[[str], Any]) -> None:
        super().__init__()
        self._fn = fn

    def __missing__(self, key: str) -> Any:
        return self._fn(key)
