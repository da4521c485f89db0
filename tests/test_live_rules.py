"""The vendor's rules for load tests against a real org, as a guard: approval and the 23:00–05:00 window in the
region's time zone. A fake clock and the region table; no real host is ever contacted."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.errors import ConfigError
from sim.load.target import REGIONS
from sim.run.live import REGION_TIME_ZONES, LiveRules, check, region_of

ROOT = Path(__file__).resolve().parent.parent
US_EAST = "https://api.mypurecloud.com"


def at(hour: int, minute: int = 0, zone: str = "America/New_York") -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime(2026, 11, 28, hour, minute, tzinfo=ZoneInfo(zone))


def test_every_region_has_a_time_zone_and_is_recognised_from_its_host() -> None:
    """Each region of the vendor's list maps to a time zone, and its API host back to the region."""
    assert set(REGION_TIME_ZONES) == set(REGIONS)
    assert all(region_of(f"https://api.{d}/api/v2") == r for r, d in REGIONS.items())
    assert region_of("http://127.0.0.1:8080") is None


def test_smoke_size_needs_no_approval() -> None:
    """≤ 1 launch/s and ≤ 100 launches is a smoke test: allowed at noon without approval."""
    note = check(api_url=US_EAST, peak_rate_per_s=1, launches=60, capacity=False, rules=LiveRules(), now=at(12))
    assert "no approval needed" in note


def test_a_load_test_without_approval_is_refused_with_the_rule_and_the_window() -> None:
    """10/s against us_east_1 without an approval reference: refused, naming the rule and the window in local time."""
    with pytest.raises(ConfigError) as e:
        check(api_url=US_EAST, peak_rate_per_s=10, launches=600, capacity=False, rules=LiveRules(), now=at(2))
    text = str(e.value)
    assert "prior approval" in text and "two weeks" in text and "23:00–05:00 America/New_York" in text
    assert "now 02:00 there" in text and "--approval" in text


@pytest.mark.parametrize(("hour", "minute", "allowed"), [(23, 0, True), (2, 30, True), (4, 59, True),
                                                           (5, 0, False), (12, 0, False), (22, 59, False)])
def test_the_window_is_23_to_05_in_the_regions_time_zone(hour: int, minute: int, allowed: bool) -> None:
    """With approval: inside 23:00–05:00 New York time the run may start; outside it is refused."""
    now = at(hour, minute).astimezone(dt.timezone.utc)  # the clock says UTC; the window is the region's
    rules = LiveRules(approval="CASE-123")
    if allowed:
        assert "approval CASE-123" in check(api_url=US_EAST, peak_rate_per_s=50, launches=3000, capacity=False,
                                            rules=rules, now=now)
    else:
        with pytest.raises(ConfigError, match="outside the approved window"):
            check(api_url=US_EAST, peak_rate_per_s=50, launches=3000, capacity=False, rules=rules, now=now)


def test_another_agreed_window_and_capacity_searches() -> None:
    """--outside-window lets an approved run start at noon; a capacity search always needs approval."""
    note = check(api_url=US_EAST, peak_rate_per_s=50, launches=3000, capacity=False,
                 rules=LiveRules(approval="CASE-1", outside_window=True), now=at(12))
    assert "outside the standard window as agreed" in note
    with pytest.raises(ConfigError, match="a capacity search"):
        check(api_url=US_EAST, peak_rate_per_s=0.5, launches=10, capacity=True, rules=LiveRules(), now=at(2))


def test_an_unknown_host_needs_approval_and_cannot_check_the_window() -> None:
    """A URL that is no known region: approval still required; the window is named but cannot be checked."""
    with pytest.raises(ConfigError, match="region unknown"):
        check(api_url="https://gateway.example.com", peak_rate_per_s=20, launches=500, capacity=False,
              rules=LiveRules(), now=at(12))
    assert "approval CASE-2" in check(api_url="https://gateway.example.com", peak_rate_per_s=20, launches=500,
                                      capacity=False, rules=LiveRules(approval="CASE-2"), now=at(12))


@pytest.mark.parametrize("command", [["run", "scenarios/smoke.toml", "--rate", "10"],
                                     ["capacity", "scenarios/smoke.toml", "--max", "20"]])
def test_cli_refuses_before_contacting_the_region(command: list[str]) -> None:
    """`flowsim run ... --target us_east_1 --rate 10` (and capacity) without approval: exit 2 with the rule, before
    any request — the proxy variables point nowhere, so a request would fail differently."""
    env = {**os.environ, "GENESYS_CLIENT_ID": "x", "GENESYS_CLIENT_SECRET": "y",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    r = subprocess.run([sys.executable, "-m", "sim.cli", *command, "--target", "us_east_1"], capture_output=True,
                       text=True, timeout=60, cwd=ROOT, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "prior approval" in r.stderr and "23:00–05:00 America/New_York" in r.stderr
