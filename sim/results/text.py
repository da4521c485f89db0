"""What a run or a capacity step looks like in the terminal: labelled rows, units on every figure, words wrapped
whole under their label (never broken mid-word at any width), ✓/✗ on thresholds and ``RESULT`` as the last line.
Drawn with ``rich``: coloured on a TTY, plain when piped (``NO_COLOR`` is honoured)."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sim.drivers import driver_for
from sim.load.breaks import group_rows
from sim.results.coverage import coverage_text
from sim.load.figures import counts_text as _counts
from sim.load.figures import ms_text as _ms
from sim.results.summary import CapacityResult, CapacityStep, Percentiles, RunSummary

__all__ = ["Row", "run_rows", "run_text", "print_run", "render", "step_line", "capacity_line"]

_LABEL_WIDTH = 10

_VERDICT_STYLE = {"PASS": "bold green", "FAIL": "bold red", "INTERRUPTED": "bold yellow"}


@dataclass(frozen=True)
class Row:
    label: str
    text: str
    ok: bool | None = None
    """True/False: a judgement (✓ green / ✗ red); None: a figure."""
    style: str = ""


def _lat(p: Percentiles) -> str:
    return f"p50 {_ms(p.p50)}  p95 {_ms(p.p95)}  p99 {_ms(p.p99)}  max {_ms(p.max)} ms"


def _figure_rows(s: RunSummary) -> list[Row]:
    lat, li, pa, fc = s.latency_ms, s.latency_from_intended_ms, s.attempt_latency_ms, s.flow_completion
    poll = (f"; each includes up to {fc.poll_interval_s * 1000:g} ms of poll interval, the resolution of this figure"
            if fc.poll_interval_s else "")
    rows = [
        Row("rate", f"target {s.target_rate_per_s}/s  achieved {s.achieved_rate_per_s}/s"),
        Row("launches", f"scheduled {s.scheduled}  launched {s.launched}  succeeded {s.succeeded}  failed {s.failed}  "
            f"missed starts {s.missed_starts}  not sent {s.not_sent} (late {s.late}, refused {s.refused})  "
            f"retries {s.retries}"),
        Row("unanswered", f"{s.transport_errors} launches got no HTTP answer (timed out or dropped): they may have run"),
        Row("429s", f"{s.rate_limited_responses} responses ("
            + ", ".join(f"{k.replace('_', ' ')} attempts {v}" for k, v in s.rate_limited.items()) + ")"),
        Row("http", f"final status of launches: {_counts(s.http_status)}"),
        Row("latency", f"per attempt (each HTTP attempt, like Locust): {_lat(pa)}  ({pa.count} attempts)"),
        Row("latency", f"end to end (first send to final answer, retry waits included): {_lat(lat)}  "
            f"(from intended start: p99 {_ms(li.p99)} ms)"),
        Row("errors", f"first attempt {s.first_attempt_error_rate:.2%}  after retries {s.error_rate:.2%}  "
            f"(of {s.launched} launches)"),
    ]
    if fc.poll_interval_s is not None:
        rows.append(Row("flows", f"followed {fc.followed}  outcomes {_counts(fc.outcomes)}  duration p50 "
                        f"{_ms(fc.duration_ms.p50)} ms  p95 {_ms(fc.duration_ms.p95)} ms (launch answer to terminal "
                        f"status seen{poll})"))
    drv = driver_for(s.load)
    if drv.unit != "launch":
        rows.insert(1, Row("", f"(a launch here is a {drv.unit}: POST {drv.path})"))
    if s.section is not None:
        rows += [Row(label, text) for label, text in s.section.text_rows()]
    return rows


def run_rows(s: RunSummary) -> list[Row]:
    """The run's summary, row by row: header, figures, warnings, the analytics proof, thresholds, RESULT."""
    rows = [Row("run", f"{s.run_id}  ({s.scenario}, target {s.target}, {s.workers} worker(s))", style="bold")]
    rows += _figure_rows(s)
    rows.append(Row("ledger", f"{s.ledger_path} (counts from {s.ledger.get('counts_source', '?')})"))
    if s.live:
        rows.append(Row("live", s.live))
    if s.duplicate_launches:
        rows.append(Row("DUPLICATES", f"{s.duplicate_launches} sequence numbers were launched more than once", False))
    if s.partial:
        rows.append(Row("PARTIAL", s.partial, False))
    offsets = s.ledger.get("clock_offsets_s") or {}
    if any(abs(v) >= 0.25 for v in offsets.values()):
        rows.append(Row("clocks", "workers' wall clocks vs the master's (they keep to the master's: no figure moves): "
                        + ", ".join(f"{w} {v:+.2f} s" for w, v in offsets.items()), style="yellow"))
    if s.workers_lost:
        rows.append(Row("workers", f"lost mid-run: {', '.join(s.workers_lost)} (their share moved to the others)",
                        style="yellow"))
    if s.aborted:
        rows.append(Row("ABORTED", s.aborted, False))
    rows.append(Row("analytics", str(s.analytics.get("note", ""))))
    check = s.analytics.get("check")
    if check:
        rows += [Row("", str(line)) for line in check.get("lines", [])]
        sep = check.get("separated")
        rows.append(Row("separation", str(check.get("verdict")), None if sep is None else bool(sep)))
    tc = s.turn_check
    if tc:
        verdict = str(tc["verdict"])
        rows.append(Row("intents", f"{verdict}: {tc.get('checked', 0)} step(s) checked against the platform's "
                        f"reporting turns, {tc.get('failed', 0)} broke"
                        + (f"; {tc['sessions_behind']} of {tc['sessions']} sessions not yet fully reported after "
                           f"{tc['waited_s']} s (those steps unchecked)" if tc.get("sessions_behind") else ""),
                        True if verdict == "PASS" else False if verdict == "FAIL" else None))
        rows += [Row(label, text) for label, text in group_rows(tc.get("failures") or {})]
        if tc.get("coverage"):
            rows += [Row(label, text) for label, text in coverage_text(tc["coverage"])]
    for t in s.thresholds:
        rows.append(Row("threshold", f"{'PASS' if t.passed else 'FAIL'} {t.name}  {t.judged}"
                        + (f"  ({t.describes})" if t.describes else ""), t.passed))
    rows.append(Row("RESULT", s.verdict, style=_VERDICT_STYLE.get(s.verdict, "bold")))
    return rows


def render(rows: list[Row]) -> Table:
    """The rows as a two-column grid: the label, and the text wrapped at word boundaries beside it."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, width=_LABEL_WIDTH)
    grid.add_column(overflow="fold")
    for r in rows:
        text = Text(r.text, style=r.style)
        if r.ok is not None:
            text = Text.assemble(("✓ " if r.ok else "✗ ", "bold green" if r.ok else "bold red"), text)
        grid.add_row(Text(r.label, style=r.style or ("bold red" if r.ok is False else "bold")), text)
    return grid


def print_run(s: RunSummary, file: IO[str] | None = None) -> None:
    """The summary on ``file`` (stdout). On a TTY: colour, ✓/✗, wrapped to the terminal's width. Piped: plain
    text, one line per row, whatever ``COLUMNS`` says (logs and grep see each figure whole)."""
    out = file or sys.stdout
    if out.isatty():
        Console(file=out, highlight=False).print(render(run_rows(s)))
    else:
        print(run_text(s, width=100_000), file=out, flush=True)


def run_text(s: RunSummary, *, width: int = 100) -> str:
    """The summary as plain text, wrapped to ``width`` columns at word boundaries."""
    buf = io.StringIO()
    Console(file=buf, width=width, highlight=False, force_terminal=False, no_color=True).print(render(run_rows(s)))
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines())


def step_line(st: CapacityStep, *, resolve: int = 0) -> str:
    """One capacity step. ``resolve``: launches a step needs to resolve the error SLO (a shorter step says so)."""
    short = f" (fewer than the {resolve} that resolve the error SLO)" if st.launched < resolve else ""
    return (f"step {st.rate_per_s:>9}/s  achieved {st.achieved_rate_per_s:>9}/s  {st.launched} launches{short}  "
            f"p95 {_ms(st.latency_ms.p95)} ms end to end  errors {st.first_attempt_error_rate:.2%} first attempt / "
            f"{st.error_rate:.2%} after retries  429s {st.rate_429:.2%}  missed {st.missed_starts}  "
            + (f"turn p95 {_ms(st.turn_p95_ms)} ms  " if st.turn_p95_ms is not None else "")
            + ('pass' if st.passed else 'FAIL: ' + '; '.join(st.reasons)))


def capacity_line(c: CapacityResult) -> str:
    floor = "at least " if c.first_failing_rate_per_s is None and c.passed else ""
    return (f"sustainable rate: {floor}{c.sustainable_rate_per_s} {c.unit}/s ({c.confidence}); "
            f"limited by: {c.limiting_factor or 'nothing up to --max'}; SLO: p95 end to end ≤ {c.slo['p95_ms']:g} ms, "
            f"errors ≤ {c.slo['max_error_rate']:.2%} (first attempts); search took {c.search_duration_s} s")
