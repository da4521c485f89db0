"""The simulated Genesys Cloud platform: OAuth, flow launch and status, analytics, rate limits, faults.

Never imports locust or gevent.
"""

# Imports nothing: importing one module of the package (say sim.run.process) must not import the rest
# (a run's first launch waits on these imports). Import from the modules themselves.
__all__: list[str] = []
