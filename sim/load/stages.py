"""The arrival-rate profile as a scenario file writes it: ``[[stages]]`` (duration, rate, ramp) and durations
("20s", "5m", "1h30m"). ``sim.load.schedule`` turns the stages into due times."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from sim._toml import TableReader
from sim.errors import ConfigError

__all__ = ["Stage", "parse_duration", "parse_stages"]

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_duration(value: Any, *, where: str = "duration") -> float:
    """Seconds from ``20``, ``"20s"``, ``"5m"``, ``"1h30m"``; raises ConfigError otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip() and (m := _DURATION.match(value)):
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = h * 3600 + mi * 60 + s
    else:
        raise ConfigError(f"{value!r} is not a duration; use seconds or e.g. '20s', '5m', '1h30m'", field=where)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{value!r} must be a finite duration longer than 0 s", field=where)
    return seconds


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One stage of the arrival-rate profile."""

    duration_s: float
    rate_per_s: float
    """Launches per second at the end of the stage."""
    ramp: bool = False
    """True: rate moves linearly from the previous stage's rate; False: constant for the stage."""


def parse_stages(data: dict[str, Any], source: str) -> tuple[Stage, ...]:
    stages = []
    raw_stages = data.get("stages", [])
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ConfigError("at least one [[stages]] entry is required (duration and rate)", source=source,
                          field="stages")
    for i, raw in enumerate(raw_stages):
        r = TableReader(raw, source, f"stages[{i}]")
        r.check_keys({"duration", "rate", "ramp"})
        if "duration" not in r.table or "rate" not in r.table:
            raise r.fail("duration" if "duration" not in r.table else "rate", "is required")
        try:
            dur = parse_duration(r.table["duration"])
        except ConfigError as exc:
            raise r.fail("duration", str(exc).split(": ", 1)[-1]) from None
        rate = r.get("rate", float, 0.0, minimum=0.0)
        stages.append(Stage(duration_s=dur, rate_per_s=rate, ramp=r.get("ramp", bool, False)))
    if all(st.rate_per_s == 0 for st in stages):
        raise ConfigError("every stage has rate 0: nothing would be launched", source=source, field="stages")
    return tuple(stages)
