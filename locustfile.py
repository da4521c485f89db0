"""Plain Locust entry point: ``locust -f locustfile.py [--flowsim-scenario scenarios/smoke.toml]``.

``-u`` is the scenario's concurrency (executions in flight); the arrival rate comes from the scenario.
"""

from sim.run.locust_user import FlowUser

__all__ = ["FlowUser"]
