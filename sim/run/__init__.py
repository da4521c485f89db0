"""Turning a scenario into a running Locust fleet and back: the plan (resolved once), preparation
(embedded simulator, credentials, preflight), coordination (pure master/worker state machines), the
per-process engine, the Locust adapter (``locust_user``, the only module that imports locust), the
``flowsim run`` parent and the capacity search. Importing this package imports neither locust nor gevent.
"""

# Imports nothing: importing one module of the package (say sim.run.process) must not import the rest
# (a run's first launch waits on these imports). Import from the modules themselves.
__all__: list[str] = []
