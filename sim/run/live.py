"""The vendor's rules for load tests, as a guard (API reference §8).

Genesys Cloud requires prior approval for automated load tests (a support case at least two weeks
ahead) and an agreed window, 23:00–05:00 in the region's time zone. Against anything that is not a
flowsim simulator, a run above smoke size and every capacity search need an approval reference, and
must start inside the window unless the user says ``--outside-window`` (an agreed other window).
Pure: the clock is passed in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sim.errors import ConfigError
from sim.load.target import REGION_TIME_ZONES, REGIONS

__all__ = ["LiveRules", "REGION_TIME_ZONES", "region_of", "check", "SMOKE_MAX_RATE_PER_S", "SMOKE_MAX_LAUNCHES",
           "WINDOW"]

SMOKE_MAX_RATE_PER_S = 1.0
SMOKE_MAX_LAUNCHES = 100
"""A run at most this big is a smoke test, not a load test: no approval needed."""

WINDOW = (dt.time(23, 0), dt.time(5, 0))
"""The agreed window, in the region's local time (overnight)."""

@dataclass(frozen=True, kw_only=True)
class LiveRules:
    """What the user declared for a run against a real org."""

    approval: str | None = None
    """The approval reference (support case) for this test."""
    outside_window: bool = False
    """The user has agreed another window with the vendor."""


def region_of(api_url: str) -> str | None:
    """The region whose API host ``api_url`` is (None: not a known Genesys Cloud host)."""
    host = api_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return next((r for r, domain in REGIONS.items() if host == f"api.{domain}"), None)


def _in_window(local: dt.time) -> bool:
    start, end = WINDOW
    return local >= start or local < end


def check(*, api_url: str, peak_rate_per_s: float, launches: int, capacity: bool, rules: LiveRules,
          now: dt.datetime) -> str:
    """Raise ConfigError when the run breaks the vendor's rules; else the line to print (and record)."""
    if not capacity and peak_rate_per_s <= SMOKE_MAX_RATE_PER_S and launches <= SMOKE_MAX_LAUNCHES:
        return f"live target, smoke size ({launches} launches at ≤ {peak_rate_per_s:g}/s): no approval needed"
    region = region_of(api_url)
    zone = ZoneInfo(REGION_TIME_ZONES[region]) if region in REGION_TIME_ZONES else None
    local = now.astimezone(zone) if zone else None
    window = (f"23:00–05:00 {zone.key} (now {local:%H:%M} there, {now.astimezone():%H:%M} here)"
              if zone and local else "23:00–05:00 in the region's time zone (region unknown for this URL)")
    what = "a capacity search" if capacity else f"{launches} launches at up to {peak_rate_per_s:g}/s"
    if not rules.approval:
        raise ConfigError(f"{what} against {api_url} is a load test: Genesys requires prior approval (a support case "
                          f"opened at least two weeks ahead) and the window {window}. Declare it with --approval CASE "
                          "or [live] approval = \"CASE\" in the scenario", field="approval")
    if local is not None and not _in_window(local.time()) and not rules.outside_window:
        raise ConfigError(f"outside the approved window {window}; start inside it, or pass --outside-window if "
                          "another window was agreed with Genesys", field="window")
    return (f"live target: approval {rules.approval}; window {window}"
            + ("; outside the standard window as agreed (--outside-window)" if rules.outside_window else ""))
