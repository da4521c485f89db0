"""Run results for other tools: JUnit XML for CI (thresholds and run invariants as test cases) and the
per-second series as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from xml.etree import ElementTree as ET

from sim.load.breaks import step_cases
from sim.results.summary import RunSummary

__all__ = ["junit_xml", "series_csv", "SERIES_COLUMNS"]

SERIES_COLUMNS = ("t", "time", "target", "launched", "first_failed", "failed", "retries", "r429", "missed", "late",
                  "outcome_failed", "in_flight", "p50", "p95", "p99")
"""Seconds since launch 0 was due; target rate; counts by due second; launch latency percentiles (ms)."""


def junit_xml(s: RunSummary) -> str:
    """One testsuite per run: every threshold, the invariants a run must keep and (conversations) every scripted
    step, as test cases."""
    cases: list[tuple[str, str | None]] = []
    for t in s.thresholds:
        cases.append((f"threshold {t.name}",
                      None if t.passed else f"{t.judged}" + (f" ({t.describes})" if t.describes else "")))
    cases.append(("no launch sent twice", None if s.duplicate_launches == 0 else
                  f"{s.duplicate_launches} sequence numbers were launched more than once"))
    cases.append(("every launch recorded", s.partial))
    cases.append(("run completed", None if not (s.interrupted or s.aborted) else
                  (f"aborted: {s.aborted}" if s.aborted else "interrupted before the schedule ended")))
    if s.section is not None:  # a conversation run: each scripted step, failing with what broke there
        cases += s.section.step_cases()
    if s.turn_check and s.turn_check.get("failures"):  # and each step checked against the reporting turns
        cases += [(f"intents {name}", why) for name, why in step_cases(s.turn_check["failures"])]
    suite = ET.Element("testsuite", name=f"flowsim run {s.run_id}", tests=str(len(cases)),
                       failures=str(sum(1 for _, f in cases if f)), errors="0", skipped="0",
                       time=f"{s.duration_s:.3f}")
    props = ET.SubElement(suite, "properties")
    for key, value in (("scenario", s.scenario), ("target", s.target), ("launched", s.launched),
                       ("achieved_rate_per_s", s.achieved_rate_per_s), ("verdict", s.verdict)):
        ET.SubElement(props, "property", name=key, value=str(value))
    for name, failure in cases:
        case = ET.SubElement(suite, "testcase", classname=f"flowsim.{s.scenario}", name=name, time="0")
        if failure:
            kind = "threshold" if name.startswith("threshold") else "expectation" if "step" in name else "invariant"
            ET.SubElement(case, "failure", message=failure, type=kind).text = failure
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def series_csv(s: RunSummary) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=SERIES_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    start = _epoch(s.started_at)
    for row in s.timeseries:
        extra = {"time": _iso(start + row["t"]) if start is not None else "",
                 "in_flight": round(row["busy_ms"] / 1000, 2) if "busy_ms" in row else ""}
        w.writerow({k: row.get(k, "") for k in SERIES_COLUMNS} | extra)
    return out.getvalue()


def _epoch(iso: str | None) -> float | None:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else None


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
