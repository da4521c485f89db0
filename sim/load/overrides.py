"""A scenario as one run will use it: ``--rate`` / ``--duration`` applied, and refused when the load processes
cannot schedule it. Pure."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

from sim.errors import ConfigError
from sim.load.scenario import Scenario, Stage, load_scenario, parse_duration

__all__ = ["constant_rate", "check_load", "scenario_for_run", "with_webhook", "MAX_RATE_PER_PROCESS", "MAX_DURATION_S"]

MAX_RATE_PER_PROCESS = 5_000.0
"""Launches/s one Locust process is allowed to schedule (one measured ~2,300/s on one core; see README)."""
MAX_DURATION_S = 7 * 86_400.0
"""The longest run flowsim accepts: a week."""


def constant_rate(scenario: Scenario, *, rate_per_s: float | None, duration_s: float | None) -> Scenario:
    """The scenario with its stages replaced by one constant stage (``--rate`` / ``--duration``)."""
    if rate_per_s is None and duration_s is None:
        return scenario
    if rate_per_s is not None and not (math.isfinite(rate_per_s) and rate_per_s > 0):
        raise ConfigError(f"must be a finite number > 0, got {rate_per_s}", field="--rate")
    rate = rate_per_s if rate_per_s is not None else max(s.rate_per_s for s in scenario.stages)
    dur = duration_s if duration_s is not None else scenario.duration_s
    return dataclasses.replace(scenario, stages=(Stage(duration_s=dur, rate_per_s=rate),))


def check_load(scenario: Scenario, *, processes: int) -> None:
    """Refuse what the load processes cannot schedule, before anything starts: one line with the figures."""
    peak = max(st.rate_per_s for st in scenario.stages)
    limit = MAX_RATE_PER_PROCESS * max(1, processes)
    if peak > limit:
        raise ConfigError(f"a peak rate of {peak:g} launches/s is more than {max(1, processes)} load process(es) can "
                          f"schedule ({MAX_RATE_PER_PROCESS:g}/s each): lower the rate or add --workers",
                          source=scenario.source, field="rate")
    if scenario.duration_s > MAX_DURATION_S:
        raise ConfigError(f"{scenario.duration_s:g} s is longer than flowsim runs ({MAX_DURATION_S:g} s, a week)",
                          source=scenario.source, field="duration")


def with_webhook(scenario: Scenario, *, listen: str | None, public_url: str | None, flags: str = "--") -> Scenario:
    """An Open Messaging scenario with its receiver's address and public URL replaced (``--webhook``,
    ``--webhook-url``)."""
    if listen is None and public_url is None:
        return scenario
    if scenario.messaging is None:
        raise ConfigError(f"{flags}webhook and {flags}webhook-url are for kind = \"messaging\" scenarios",
                          source=scenario.source, field=f"{flags}webhook")
    if public_url is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", public_url):
        raise ConfigError(f"{public_url[:80]!r} is not an http(s) URL", field=f"{flags}webhook-url")
    m = dataclasses.replace(scenario.messaging, listen=listen or scenario.messaging.listen,
                            public_url=public_url or scenario.messaging.public_url)
    return dataclasses.replace(scenario, messaging=m)


def scenario_for_run(path: str | Path, *, rate_per_s: float | None, duration: str | None, processes: int,
                     flags: str = "--", webhook: str | None = None, webhook_url: str | None = None) -> Scenario:
    """The scenario a run will use: loaded, ``--rate``/``--duration`` applied, checked against what
    ``processes`` load processes can schedule. ``flags`` names the options in errors."""
    sc = load_scenario(path)
    duration_s = parse_duration(duration, where=f"{flags}duration") if duration else None
    sc = constant_rate(sc, rate_per_s=rate_per_s, duration_s=duration_s)
    sc = with_webhook(sc, listen=webhook, public_url=webhook_url, flags=flags)
    check_load(sc, processes=processes)
    return sc
