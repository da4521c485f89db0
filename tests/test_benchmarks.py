"""Benchmarks cannot rot: each one the suite knows runs once in its smoke mode and must end cleanly with its
figures printed (the figures themselves are read by people, never asserted: no timing asserts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_startup_smoke_runs_and_prints_its_figures() -> None:
    """bench/bench_startup.py --smoke: one flowsim run and one bare Locust run, both figures printed."""
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_startup.py"), "--smoke"], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "Locust alone" in r.stdout and "flowsim run, 0 worker(s): first launch" in r.stdout


@pytest.mark.slow
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
