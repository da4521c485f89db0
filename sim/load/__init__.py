"""What one launch needs, no processes and no locust: scenarios, the arrival schedule, identities,
payloads, the platform client and its transport, the ledger and statistics."""

# Imports nothing: importing one module of the package (say sim.run.process) must not import the rest
# (a run's first launch waits on these imports). Import from the modules themselves.
__all__: list[str] = []
