"""The simulated Genesys Cloud platform: OAuth, flow launch and status, analytics, rate limits, faults.

Never imports locust or gevent.
"""

from sim.platform.app import create_app
from sim.platform.org import Org, default_org, load_org
from sim.platform.server import SimulatorThread

__all__ = ["create_app", "Org", "default_org", "load_org", "SimulatorThread"]
