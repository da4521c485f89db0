"""How far B may drift from A before ``flowsim compare`` calls it a regression (``sim.results.compare``). Its own
module, with no imports: the command line shows these defaults in its help, and must not import a summary to
do so."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Tolerances"]


@dataclass(frozen=True, kw_only=True)
class Tolerances:
    latency_rel: float = 0.20
    """A latency percentile regresses when it rises by more than 20 % ..."""
    latency_abs_ms: float = 5.0
    """... and by more than 5 ms."""
    error_rate_abs: float = 0.01
    """An error or missed-start rate regresses when it rises by more than 1 percentage point."""
    rate_rel: float = 0.05
    """A rate (achieved or sustainable) regresses when it drops by more than 5 %."""
