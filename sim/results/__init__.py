"""What a run produced: the typed summaries (``summary``), the terminal text (``text``), the HTML report
(``report``) and the regression gate (``compare``)."""

# Imports nothing: importing one module of the package (say sim.run.process) must not import the rest
# (a run's first launch waits on these imports). Import from the modules themselves.
__all__: list[str] = []
