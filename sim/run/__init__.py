"""Turning a scenario into a running Locust fleet and back: the plan (resolved once), preparation
(embedded simulator, credentials, preflight), coordination (pure master/worker state machines), the
per-process engine, the Locust adapter (``locust_user``, the only module that imports locust), the
``flowsim run`` parent and the capacity search. Importing this package imports neither locust nor gevent.
"""

from sim.run.capacity import SLO, search
from sim.run.coordination import Grant, MasterCoordinator
from sim.run.pacer import Pacer, WorkerLease
from sim.run.plan import RunPlan, credentials
from sim.run.prepare import Prepared
from sim.run.runner import RunOptions, run_locust

__all__ = ["RunPlan", "credentials", "Prepared", "MasterCoordinator", "WorkerLease", "Pacer", "Grant",
           "RunOptions", "run_locust", "SLO", "search"]
