"""`flowsim analytics`: the platform's flow-execution aggregates over a run's interval, against its ledger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from sim.results.analytics import interval_of
from tests.conftest import TEST_DIVISION, VIEWER_CLIENT
from tests.test_run_e2e import ENV, flowsim_run, write_scenario


def test_interval_is_rounded_out_to_whole_minutes() -> None:
    """A run from mm:30 to (mm+1):10 is queried over mm:00–(mm+2):00."""
    minute = 1_800_000_000.0  # a whole minute: 2027-01-15T08:00:00Z
    assert interval_of(minute + 30, minute + 70) == "2027-01-15T08:00:00.000Z/2027-01-15T08:02:00.000Z"


def test_a_run_counts_only_under_the_test_division_and_matches_its_ledger(tmp_path: Path) -> None:
    """After a run on the simulator: the run's flow counts exactly the ledger's accepted launches, under the test
    division only; production traffic in the same interval is listed apart; exit 0. A client without
    analytics:flowExecutionAggregate:view gets one line and exit 2."""
    with SimulatorThread(default_org()) as sim:
        code, s, out = flowsim_run(write_scenario(tmp_path, rate=10, duration="3s"), tmp_path, sim.url)
        assert code == 0, out[-2000:]
        cmd = [sys.executable, "-m", "sim.cli", "analytics", s["run_id"], "--ledger-dir", str(tmp_path / "runs"),
               "--target", sim.url, "--wait", "5"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=ENV, cwd=tmp_path)
        denied = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                                env={**ENV, "GENESYS_CLIENT_ID": VIEWER_CLIENT[0],
                                     "GENESYS_CLIENT_SECRET": VIEWER_CLIENT[1]})
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"under the test division(s): {s['succeeded']} executions; ledger: {s['succeeded']} accepted" in r.stdout
    assert "under any other division: none" in r.stdout and "verdict   SEPARATED" in r.stdout
    assert TEST_DIVISION not in r.stdout.split("by division:")[1]  # production divisions only, listed apart
    assert denied.returncode == 2 and "analytics:flowExecutionAggregate:view" in denied.stderr
    assert len(denied.stderr.strip().splitlines()) == 1
