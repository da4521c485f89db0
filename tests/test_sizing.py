"""Self-sizing: tokens from requests per minute and the per-token limit, slots from Little's law; explicit
numbers win, with a warning when too small."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from sim.run.sizing import size
from tests.e2e import ENV

ROOT = Path(__file__).resolve().parent.parent


def sized(rate: float, *, follow: bool = True, duration_s: float = 0.4, processes: int = 1,
          tokens: int | None = None, slots: int | None = None) -> object:
    return size(peak_rate_per_s=rate, processes=processes, follow=follow, poll_interval_s=1.0, flow_duration_s=duration_s,
                flow_duration_source="p99", token_limit_per_min=300, token_limit_source="test",
                tokens_per_client=tokens, max_concurrency=slots)


def test_the_issue_example_50_per_s_with_one_poll_each() -> None:
    """50/s launches + 50/s polls → 100 req/s → 20 tokens at 300/min, 25 % headroom → 25; ≈1.4 s held → 91 slots."""
    s = sized(50, duration_s=0.0)  # polls = ceil(0/1) + 1 = 1 per execution
    assert (s.tokens_per_client, s.max_concurrency) == (25, 98)  # 50 × (0.5 + 0 + 1) × 1.3 = 97.5
    assert "100 req/s" in s.explanation[0] and "98 Locust users" in s.explanation[1] and not s.warnings


def test_tokens_split_over_processes_and_no_follow_means_no_polls() -> None:
    """Without follow only launches count; with 4 workers each process holds a quarter of the tokens."""
    s = sized(200, follow=False, processes=4)
    assert s.tokens_per_client == 13  # 200 × 60 / 300 × 1.25 = 50, over 4 processes
    assert s.max_concurrency == 130   # 200 × 0.5 × 1.3


def test_explicit_numbers_win_with_a_warning_naming_what_is_needed() -> None:
    """tokens_per_client = 2 and max_concurrency = 20 at 50/s: kept, each with a warning giving the number needed."""
    s = sized(50, tokens=2, slots=20)
    assert (s.tokens_per_client, s.max_concurrency) == (2, 20)
    assert any("it needs 38" in w and "tokens_per_client = 2" in w for w in s.warnings), s.warnings
    assert any("max_concurrency = 20" in w and "it needs" in w for w in s.warnings)


@pytest.mark.slow
@pytest.mark.xdist_group("heavy")  # loads the CPU or checks timing: one such test at a time
def test_smoke_scenario_at_50_per_s_sizes_itself_and_passes(tmp_path: Path) -> None:
    """scenarios/smoke.toml unchanged with --rate 50: no missed starts, no 429s, the sizing printed in the header."""
    with SimulatorThread(default_org()) as sim:
        r = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(ROOT / "scenarios" / "smoke.toml"),
                            "--target", sim.url, "--rate", "50", "--duration", "10s", "--summary-json",
                            str(tmp_path / "s.json"), "--ledger-dir", str(tmp_path / "runs")],
                           capture_output=True, text=True, timeout=180, env=ENV, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["launched"] == 500 and s["missed_starts"] == 0 and s["rate_limited_responses"] == 0
    assert "flowsim: tokens:" in r.stderr and "at 300/min per token (the org's limit)" in r.stderr
    assert abs(s["achieved_rate_per_s"] - 50) / 50 <= 0.02
