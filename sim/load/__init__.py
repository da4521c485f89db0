"""What one launch needs, no processes and no locust: scenarios, the arrival schedule, identities,
payloads, the platform client and its transport, the ledger and statistics."""

from sim.load.identity import Identity, IdentityFactory
from sim.load.ledger import Ledger, summarize
from sim.load.scenario import Scenario, load_scenario
from sim.load.schedule import Schedule

__all__ = ["Identity", "IdentityFactory", "Ledger", "summarize", "Scenario", "load_scenario", "Schedule"]
