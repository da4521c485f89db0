"""The final terminal summary as a user reads it: fits 80 columns without a broken word, units on every limit,
✓/✗ and colour on a TTY, plain when piped, the analytics proof before the thresholds and RESULT last."""

from __future__ import annotations

import dataclasses
import io
import re
from typing import Any

from sim.load.thresholds import ThresholdResult
from sim.results.summary import RunSummary
from sim.results.text import print_run, run_rows, run_text
from tests.test_capacity_compare_report import fake_summary


def _summary() -> RunSummary:
    s = fake_summary(5.0, p95=4.6891)
    return dataclasses.replace(
        s, latency_ms=dataclasses.replace(s.latency_ms, p50=1001.983, p99=1234.5678),
        analytics={"note": "this run's executions count only under test division(s) a1b2c3d4-0000-4000-8000-"
                           "00000000d7e5; production aggregates queries select production divisions",
                   "check": {"verdict": "SEPARATED: test executions count only under the test division(s)",
                             "separated": True, "lines": ["analytics over 2026-11-30T10:00:00Z/2026-11-30T10:01:00Z"]}},
        passed=False, thresholds=(ThresholdResult(name="launch_p95_ms", limit=500.0, observed=4.6891, passed=True, describes="p95"),
                    ThresholdResult(name="launch_error_rate", limit=0.01, observed=0.0701, passed=False),
                    ThresholdResult(name="min_achieved_rate_ratio", limit=0.95, observed=1.0, passed=True)))


def test_the_summary_fits_80_columns_without_breaking_a_word() -> None:
    s = _summary()
    text = run_text(s, width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    wrapped_words = set(text.split())
    for row in run_rows(s):  # every word of every row is whole somewhere in the wrapped text
        for word in row.text.split():
            assert word in wrapped_words, f"{word!r} broken across lines"
    assert lines[-1].split() == ["RESULT", "FAIL"]


def test_limits_carry_their_units_and_latencies_are_rounded_for_people() -> None:
    text = run_text(_summary())
    assert "✓ PASS launch_p95_ms  4.69 ms ≤ 500 ms" in text
    assert "✗ FAIL launch_error_rate  7.01% > 1.00%" in text
    assert "✓ PASS min_achieved_rate_ratio  100.0% ≥ 95.0%" in text
    assert re.search(r"p50\s+1002\s", text) and "1001.983" not in text and re.search(r"p99\s+1235\s", text)


def test_the_separation_proof_comes_before_the_thresholds_and_result_is_last() -> None:
    lines = run_text(_summary()).splitlines()
    sep = next(i for i, line in enumerate(lines) if line.startswith("separation"))
    first_threshold = next(i for i, line in enumerate(lines) if line.startswith("threshold"))
    assert "✓ SEPARATED" in lines[sep] and sep < first_threshold
    assert lines[-1].startswith("RESULT")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_on_a_tty_and_plain_when_piped() -> None:
    tty, pipe = _Tty(), io.StringIO()
    print_run(_summary(), tty)
    print_run(_summary(), pipe)
    assert "\x1b[" in tty.getvalue() and re.search(r"\x1b\[[0-9;]*31m", tty.getvalue())  # red somewhere (the FAIL)
    assert "\x1b[" not in pipe.getvalue()
    assert all(line == line.rstrip() for line in pipe.getvalue().splitlines())
    assert pipe.getvalue().rstrip().splitlines()[-1].split() == ["RESULT", "FAIL"]


def test_compare_rows_read_in_their_units() -> None:
    """Latency in ms with the change in ms (relative only while meaningful), error rates in % with the change in
    points (also from 0), rates per second: never a bare fraction, an empty change or '+33278.7%'."""
    from sim.results.compare import cells

    assert cells({"a": 0.012, "b": 4.0, "kind": "latency"}) == ("0.012 ms", "4 ms", "+3.99 ms (x333)")
    assert cells({"a": 10.0, "b": 12.5, "kind": "latency"}) == ("10 ms", "12.5 ms", "+2.5 ms (+25%)")
    assert cells({"a": 0.0, "b": 0.004, "kind": "error"}) == ("0.00%", "0.40%", "+0.40 pts")
    assert cells({"a": 20.0, "b": 19.0, "kind": "rate"}) == ("20/s", "19/s", "-5.0%")


def test_the_analytics_check_joins_the_summary_json_or_says_why_not(tmp_path: Any, capsys: Any) -> None:
    """A real org's run: the summary says how to check analytics later (PENDING), in the JSON too; a summary
    path that cannot be written is one line on stderr, never a traceback, and the run's figures stand."""
    import json
    from types import SimpleNamespace

    from sim.run_command import add_separation

    plan, prepared = SimpleNamespace(run_id="r1"), SimpleNamespace(simulator=False)
    path = tmp_path / "s.json"
    out = add_separation(_summary(), plan, prepared, str(path))
    assert out.analytics["check"]["verdict"].startswith("PENDING") and "flowsim analytics r1" in \
        out.analytics["check"]["verdict"]
    assert json.loads(path.read_text())["analytics"]["check"] == out.analytics["check"]
    (tmp_path / "a-file").write_text("")
    kept = add_separation(_summary(), plan, prepared, str(tmp_path / "a-file" / "s.json"))
    assert kept.analytics["check"]["separated"] is None
    assert "the analytics check is not in" in capsys.readouterr().err
