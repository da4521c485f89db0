"""The load side: scenarios, identities, the arrival schedule, the platform client, the ledger and
statistics. ``sim.load.locust_user`` is the only module that imports locust; importing this package
does not import it.
"""

from sim.load.identity import Identity, IdentityFactory
from sim.load.ledger import Ledger, summarize
from sim.load.scenario import Scenario, load_scenario
from sim.load.schedule import Partition, Schedule

__all__ = ["Identity", "IdentityFactory", "Ledger", "summarize", "Scenario", "load_scenario", "Partition", "Schedule"]
