"""Benchmarks cannot rot: each one the suite knows runs once in its smoke mode and must end cleanly with its
figures printed (the figures themselves are read by people, never asserted: no timing asserts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _smoke(script: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke"], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _needs(*tools: str) -> None:
    import os
    import shutil

    missing = [t for t in tools if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing in CI: .ci/run installs them")
        pytest.skip(f"{', '.join(missing)} not installed; CI installs them")


@pytest.mark.slow
@pytest.mark.xdist_group("heavy")  # loads the CPU or checks timing: one such test at a time
def test_bench_simulator_smoke_measures_the_harness_ceiling_in_the_same_run() -> None:
    """bench/bench_simulator.py --smoke: simulator and nginx under wrk and the open-loop generator, and one flowsim
    process's ceiling measured beside them (it compared against a constant before)."""
    _needs("wrk", "nginx", "taskset")
    out = _smoke("bench_simulator.py").stdout
    assert "one flowsim process" in out and "simulator max / one flowsim harness process" in out
    assert "measured above" in out


@pytest.mark.slow
@pytest.mark.xdist_group("heavy")  # loads the CPU or checks timing: one such test at a time
def test_bench_capacity_smoke_finds_a_knee() -> None:
    out = _smoke("bench_capacity.py").stdout
    assert "found" in out and "steps" in out


@pytest.mark.slow
@pytest.mark.xdist_group("heavy")  # loads the CPU or checks timing: one such test at a time
def test_bench_conversations_smoke_runs_flowsim_beside_locusts_users() -> None:
    _needs("taskset")
    out = _smoke("bench_conversations.py").stdout
    assert "sessions vs FastHttpUser" in out and "flowsim workflow launches" in out


@pytest.mark.slow
@pytest.mark.xdist_group("heavy")  # loads the CPU or checks timing: one such test at a time
def test_bench_memory_smoke_samples_both_generators() -> None:
    _needs("taskset")
    out = _smoke("bench_memory.py").stdout
    assert "flowsim (Locust process)" in out and "Locust FastHttpUser" in out


@pytest.mark.slow
@pytest.mark.xdist_group("heavy")  # loads the CPU or checks timing: one such test at a time
def test_bench_startup_smoke_runs_and_prints_its_figures() -> None:
    """bench/bench_startup.py --smoke: one flowsim run and one bare Locust run, both figures printed."""
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_startup.py"), "--smoke"], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "Locust alone" in r.stdout and "flowsim run, 0 worker(s): first launch" in r.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("heavy")  # loads the CPU or checks timing: one such test at a time
def test_bench_harness_smoke_runs_against_its_nginx_beside_locusts_users() -> None:
    """bench/bench_harness.py --smoke: flowsim (both transports), HttpUser and FastHttpUser against the loopback
    nginx, and the rate accuracy table (it ended in a traceback on c46245f: the vendor-rules guard refused nginx)."""
    import os
    import shutil

    if shutil.which("nginx") is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing in CI: .ci/run installs nginx-light")
        pytest.skip("nginx not installed (apt-get install nginx-light); CI installs it")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_harness.py"), "--smoke"], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "Locust FastHttpUser (same body)" in r.stdout and "flowsim rate accuracy" in r.stdout
