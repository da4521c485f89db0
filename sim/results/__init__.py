"""What a run produced: the typed summaries (``summary``), the terminal text (``text``), the HTML report
(``report``) and the regression gate (``compare``)."""

from sim.results.compare import Tolerances, compare
from sim.results.summary import CapacityResult, RunSummary, load_summary

__all__ = ["RunSummary", "CapacityResult", "load_summary", "compare", "Tolerances"]
