"""Kinds of traffic, one driver each. A driver owns, for one unit of work (a launch and its follow-up; a
conversation): its request sequence and ledger records (``run``), its preflight, its sizing inputs, its own
figures (``section``), its notes and its analytics separation. The engine paces units and hands each to the
driver; the views read what drivers contribute without asking which kind runs.

Adding a kind of traffic: its module here, one line in :data:`DRIVERS`, its tests.
"""

from __future__ import annotations

from sim.drivers.base import Driver, SizingInputs, Ticket, UnitContext
from sim.drivers.conversation import CONVERSATION
from sim.drivers.messaging import MESSAGING
from sim.drivers.workflow import WORKFLOW
from sim.errors import ConfigError

__all__ = ["Driver", "UnitContext", "Ticket", "SizingInputs", "DRIVERS", "driver_for"]

DRIVERS: dict[str, Driver] = {d.kind: d for d in (WORKFLOW, CONVERSATION, MESSAGING)}


def driver_for(kind: str) -> Driver:
    try:
        return DRIVERS[kind]
    except KeyError:
        raise ConfigError(f"no driver for kind {kind!r} (known: {', '.join(DRIVERS)})", field="kind") from None
