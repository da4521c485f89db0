"""Benchmarks cannot rot: every script in bench/ runs once in its smoke mode and must end cleanly with its
figures printed (the figures themselves are read by people, never asserted: no timing asserts)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SMOKES = [
    # script, tools it needs beyond Python, what its output must say
    ("bench_simulator.py", ("wrk", "nginx", "taskset"),
     ("one flowsim process", "simulator max / one flowsim harness process", "measured above")),
    ("bench_harness.py", ("nginx", "taskset"), ("Locust FastHttpUser (same body)", "flowsim rate accuracy")),
    ("bench_capacity.py", (), ("found", "steps")),
    ("bench_conversations.py", ("taskset",), ("sessions vs FastHttpUser", "flowsim workflow launches")),
    ("bench_messaging.py", ("taskset",), ("replies per core vs FastHttpUser", "'transferred'")),
    ("bench_memory.py", ("taskset",), ("flowsim (Locust process)", "Locust FastHttpUser")),
    ("bench_startup.py", (), ("Locust alone", "flowsim run, 0 worker(s): first launch")),
    ("bench_master.py", (), ("plain Locust master + append", "per worker:")),
]


def test_every_benchmark_has_a_smoke_round_here() -> None:
    assert sorted(s for s, _t, _o in SMOKES) == sorted(p.name for p in (ROOT / "bench").glob("bench_*.py"))


LIGHT = ("bench_messaging.py", "bench_memory.py", "bench_capacity.py", "bench_master.py")
"""Smoke rounds that load the machine lightly (10-50 units a second): they run beside other tests; the rest drive a
core flat out (wrk, the harness at 5,000/s, conversations flat out) or time start-ups, and run one at a time."""


@pytest.mark.slow
@pytest.mark.xdist_group("heavy")  # loads the CPU on purpose: one such test at a time
@pytest.mark.parametrize(("script", "tools", "expected"), [s for s in SMOKES if s[0] not in LIGHT],
                         ids=[s for s, _t, _o in SMOKES if s not in LIGHT])
def test_benchmark_smoke_round_runs_and_prints_its_figures(script: str, tools: tuple[str, ...],
                                                            expected: tuple[str, ...]) -> None:
    """`python bench/<script> --smoke`: one short round, exit 0, no traceback, its figures printed (bench_harness
    ended in a traceback on c46245f, and nothing ran it)."""
    _smoke(script, tools, expected)


@pytest.mark.slow
@pytest.mark.parametrize(("script", "tools", "expected"), [s for s in SMOKES if s[0] in LIGHT],
                         ids=[s for s, _t, _o in SMOKES if s in LIGHT])
def test_light_benchmark_smoke_round_runs_and_prints_its_figures(script: str, tools: tuple[str, ...],
                                                                  expected: tuple[str, ...]) -> None:
    _smoke(script, tools, expected)


def _smoke(script: str, tools: tuple[str, ...], expected: tuple[str, ...]) -> None:
    missing = [t for t in tools if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing in CI: .ci/run installs them")
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install wrk nginx-light); CI installs them")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke"], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout[-3000:] + r.stderr[-3000:]
    assert all(e in r.stdout for e in expected), r.stdout[-3000:]
