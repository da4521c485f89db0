"""`flowsim analytics`: the platform's flow-execution aggregates over a run's interval, against its ledger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from sim.results.analytics import interval_of
from tests.conftest import TEST_DIVISION, VIEWER_CLIENT
from tests.e2e import ENV, flowsim_run, write_scenario


def test_interval_is_the_runs_own_span_not_whole_minutes() -> None:
    """A run from mm:30.4 to (mm+1):10.2 is queried over mm:29–(mm+1):12: whole seconds, one more each side."""
    minute = 1_800_000_000.0  # a whole minute: 2027-01-15T08:00:00Z
    assert interval_of(minute + 30.4, minute + 70.2) == "2027-01-15T08:00:29.000Z/2027-01-15T08:01:12.000Z"


@pytest.mark.slow
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
    assert (f"under the test division(s): {s['succeeded']} executions = this run {s['succeeded']} launches "
            "(its ledger)\n") in r.stdout
    assert "under any other division: none" in r.stdout and "verdict   SEPARATED" in r.stdout
    assert TEST_DIVISION not in r.stdout.split("by division:")[1]  # production divisions only, listed apart
    assert denied.returncode == 2 and "analytics:flowExecutionAggregate:view" in denied.stderr
    assert len(denied.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_other_runs_in_the_interval_are_reported_apart_and_unknown_callers_make_the_count_unproven(
        tmp_path: Path) -> None:
    """Two runs of the same flow at once: run A's check names run B (from B's ledger) apart from its own count and
    passes; with B's ledger out of reach, B's executions are nobody's here: the verdict is UNPROVEN, exit 1."""
    import json
    import shutil

    from tests.e2e import run_command

    with SimulatorThread(default_org()) as sim:
        procs = []
        for name in ("a", "b"):
            d = tmp_path / name
            d.mkdir()
            scenario = write_scenario(d, rate=10, duration="4s")
            procs.append(subprocess.Popen(run_command(scenario, d, sim.url), env=ENV, cwd=d,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        for p in procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0, out[-2000:]
        a, b = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("a", "b"))

        def check() -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "sim.cli", "analytics", a["run_id"], "--ledger-dir",
                                   str(tmp_path / "a" / "runs"), "--target", sim.url, "--wait", "3"],
                                  capture_output=True, text=True, timeout=60, env=ENV, cwd=tmp_path)

        alone = check()
        shutil.copytree(tmp_path / "b" / "runs" / b["run_id"], tmp_path / "a" / "runs" / b["run_id"])
        together = check()
    assert alone.returncode == 1 and "verdict   UNPROVEN" in alone.stdout, alone.stdout + alone.stderr
    assert f"this run {a['succeeded']} launches (its ledger) + " in alone.stdout
    assert together.returncode == 0 and "verdict   SEPARATED" in together.stdout, together.stdout + together.stderr
    assert "other flowsim runs in the interval" in together.stdout and b["run_id"] in together.stdout
    assert "from no ledger here" not in together.stdout


@pytest.mark.slow
def test_ledger_summary_matches_names_exactly_and_says_one_line_for_a_bad_target(tmp_path: Path) -> None:
    """Runs `x` and `x-w2` on one simulator: `ledger summary x --target` claims only x's executions; a target that
    is not a flowsim simulator (nothing listening, a region name, an HTML page) is one line, exit 2."""
    import json

    with SimulatorThread(default_org()) as sim:
        for rid in ("x", "x-w2"):
            code, s, out = flowsim_run(write_scenario(tmp_path, rate=5, duration="2s"), tmp_path, sim.url,
                                       "--run-id", rid)
            assert code == 0, out[-2000:]

        def summary(target: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "sim.cli", "ledger", "summary", "--json", "x", "--ledger-dir",
                                   str(tmp_path / "runs"), "--target", target], capture_output=True, text=True,
                                  timeout=60, env=ENV, cwd=tmp_path)

        r = summary(sim.url)
        dead = summary("http://127.0.0.1:9")
        region = summary("eu_west_1")
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json.loads(r.stdout)["reconciliation"]
    assert rec == {"target_received": 10, "accepted_not_received": 0, "unanswered_but_ran": 0,
                   "received_not_in_ledger": 0}
    for bad in (dead, region):
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert "flowsim simulator" in bad.stderr and "Traceback" not in bad.stderr
