"""Plain Locust entry point: ``locust -f locustfile.py [--flowsim-scenario scenarios/smoke.toml]``.

The web UI's START needs no user count: flowsim's load shape sets the users to the scenario's concurrency
and ends the test with its schedule. The arrival rate comes from the scenario (or the form's flowsim
fields); the results are in the web UI's **flowsim** tab.
"""

from sim.run.locust_user import FlowsimShape, FlowUser

__all__ = ["FlowUser", "FlowsimShape"]
