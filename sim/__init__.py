"""flowsim: load and simulation tests for Genesys Cloud Architect flow executions.

``sim.platform`` is the simulated Genesys Cloud API (never imports locust or gevent); ``sim.load`` is
what one launch needs; ``sim.run`` turns a scenario into a Locust run (only ``sim.run.locust_user``
imports locust); ``sim.results`` is what a run produced.
"""

from sim._lean import import_lean
from sim.errors import ConfigError, FlowsimError, PlatformError, TransportError

import_lean()  # structlog and httpx without extras flowsim never uses (sim._lean)

__all__ = ["FlowsimError", "ConfigError", "PlatformError", "TransportError", "__version__"]

__version__ = "0.1.0"
