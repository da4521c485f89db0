"""Self-contained HTML reports (inline SVG drawn by matplotlib, no scripts, nothing fetched): a load run or a
capacity search."""

from __future__ import annotations

import html
import json
from typing import Any

from sim.drivers import driver_for
from sim.load.figures import RequestRow, ms_text
from sim.results.coverage import coverage_text
from sim.results.charts import FAIL_COLOR, PALETTE, PASS_COLOR, Line, Rule, bar_chart, histogram, line_chart
from sim.load.thresholds import value_text
from sim.results.summary import CapacityResult, Percentiles, RunSummary, ThresholdResult

__all__ = ["run_report", "capacity_report", "COLORS"]

COLORS = {"target": "#888888", "achieved": "#1f77b4", "p50": "#2ca02c", "p95": "#ff7f0e", "p99": "#d62728",
          "failed": "#d62728", "r429": "#9467bd", "missed": "#8c564b", "error": "#d62728", "attempt": "#1f77b4",
          "end_to_end": "#ff7f0e", "first_failed": "#ff7f0e", "retries": "#17becf", "in_flight": "#1f77b4"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:8px 0} td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4} td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#137333;font-weight:600} .fail{color:#b3261e;font-weight:600} .warn{color:#9a6700;font-weight:600}
.kpi.pass{border-color:#137333;background:#e6f4ea} .kpi.fail{border-color:#b3261e;background:#fce8e6}
.kpi.warn{border-color:#9a6700;background:#fff8c5} pre{font-size:12px;background:#f6f8fa;padding:8px;overflow:auto}
.kpis{display:flex;flex-wrap:wrap;gap:12px} .kpi{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:120px}
.kpi b{display:block;font-size:20px} svg{max-width:100%;height:auto;margin:6px 0}
"""

_LATENCY_LIMITS = {"launch_p95_ms": "per attempt", "launch_p99_ms": "per attempt",
                   "launch_e2e_p95_ms": "end to end", "launch_e2e_p99_ms": "end to end"}
"""Thresholds drawn as lines on the latency charts, and the basis each is judged on."""


def _page(title: str, subtitle: str, body: str, data: dict[str, Any]) -> str:
    # The summary rides along as JSON so the report is also the machine-readable record.
    blob = html.escape(json.dumps(data, separators=(",", ":")))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><p class="sub">{html.escape(subtitle)}</p>'
            f'{body}<script type="application/json" id="summary">{blob}</script></body></html>')


_VERDICT_CLASS = {"PASS": "pass", "FAIL": "fail", "INTERRUPTED": "warn"}


def _kpis(items: list[tuple[str, Any]]) -> str:
    """Headline numbers; the one named ``result`` is coloured by its verdict."""
    return '<div class="kpis">' + "".join(
        f'<div class="kpi {_VERDICT_CLASS.get(str(v), "") if k == "result" else ""}">{html.escape(k)}'
        f'<b>{html.escape("—" if v is None else str(v))}</b></div>' for k, v in items) + "</div>"


def _verdict(passed: bool, text: str | None = None) -> str:
    return f'<span class="{"pass" if passed else "fail"}">{text or ("PASS" if passed else "FAIL")}</span>'


def _thresholds(rows: tuple[ThresholdResult, ...]) -> str:
    if not rows:
        return "<p>No thresholds configured.</p>"
    cells = "".join(
        f"<tr><td>{html.escape(t.name)}</td><td class=n>{html.escape(value_text(t.name, t.limit))}</td>"
        f"<td class=n>{'—' if t.observed is None else html.escape(value_text(t.name, t.observed))}</td>"
        f"<td>{_verdict(t.passed)}</td><td>{html.escape(t.describes)}</td></tr>" for t in rows)
    return ("<table><tr><th>threshold</th><th>limit</th><th>observed</th><th></th><th>what it measures</th></tr>"
            f"{cells}</table>")


def _cell(v: Any) -> str:
    return f"<td class=n>{'—' if v is None else html.escape(str(v))}</td>"


def _requests(s: RunSummary) -> str:
    """Locust's per-request table, with flowsim's bases: each row says what it counts."""
    fc, none, path = s.flow_completion, Percentiles(), driver_for(s.load).path
    rows = [
        RequestRow(f"POST {path} — per attempt (each HTTP attempt, like Locust)", s.launched + s.retries,
                   s.retries + s.failed, s.rate_limited.get("launch", 0), s.attempt_latency_ms),
        RequestRow(f"POST {path} — end to end (first send to final answer, after retries)", s.launched,
                   s.failed, None, s.latency_ms),
    ]
    if s.section is not None:  # the kind of traffic's own requests (a conversation's turns, whole sessions)
        rows += s.section.request_rows(path)
        note = s.section.request_note
    else:
        rows += [
            RequestRow("GET /api/v2/flows/executions/{id} — status polls while following (latency not kept)",
                       fc.polls, None, s.rate_limited.get("status_poll", 0), none),
            RequestRow("flow run — launch answer to terminal status seen (resolution: the poll interval)",
                       fc.followed, None if fc.failure_rate is None else fc.followed - fc.outcomes.get("COMPLETED", 0),
                       None, fc.duration_ms)]
        note = "flow run: followed executions that ended other than COMPLETED."
    body = "".join(f"<tr><td>{html.escape(r.name)}</td>{_cell(r.count)}{_cell(r.failed)}{_cell(r.r429)}"
                   f"{_cell(r.latency.p50)}{_cell(r.latency.p95)}{_cell(r.latency.p99)}{_cell(r.latency.max)}</tr>"
                   for r in rows)
    return ("<table><tr><th>request</th><th>count</th><th>failed</th><th>429s</th><th>p50 ms</th><th>p95 ms</th>"
            f"<th>p99 ms</th><th>max ms</th></tr>{body}</table><p class=sub>Failed per attempt: attempts not "
            "answered 200 (each retry follows one); end to end: launches without a 200 after retries; "
            f"{html.escape(note)}</p>")


def _latency_rules(s: RunSummary, basis: str | None) -> list[Rule]:
    """Latency thresholds as lines: those judged on ``basis`` (None: all, labelled with theirs)."""
    return [Rule(float(t.limit), f"{t.name} ≤ {t.limit:g} ms ({_LATENCY_LIMITS[t.name]})", vertical=basis is None,
                 color=PASS_COLOR if t.passed else FAIL_COLOR)
            for t in s.thresholds if t.name in _LATENCY_LIMITS and (basis is None or _LATENCY_LIMITS[t.name] == basis)]


def _section(s: RunSummary) -> str:
    """The kind of traffic's own figures: its headline numbers and charts."""
    sec = s.section
    out = [f"<h2>{html.escape(sec.title)}</h2>" + _kpis(sec.kpis())]
    out += [bar_chart(list(c.bars), title=c.title, ylabel=c.ylabel) for c in sec.charts()]
    ts = s.timeseries
    if any("turn_p50" in r for r in ts):
        out.append("<h3>Turn latency over time</h3>" + line_chart(
            [Line(p, COLORS[p], [(r["t"], r[f"turn_{p}"]) for r in ts if f"turn_{p}" in r], dashed=p == "p95",
                  dotted=p == "p50") for p in ("p99", "p95", "p50")],
            title="Each turn's latency (a bot's answer; a message's first reply), by the second its conversation was due",
            xlabel="seconds since start", ylabel="ms"))
    names = sorted({k for r in ts for k in r.get("endings", {})})
    if names:
        out.append("<h3>Endings over time</h3>" + line_chart(
            [Line(name, PALETTE[i % len(PALETTE)], [(r["t"], r.get("endings", {}).get(name, 0)) for r in ts],
                  dashed=i >= len(PALETTE)) for i, name in enumerate(names)],
            title="How conversations ended, by the second each was due", xlabel="seconds since start",
            ylabel="count"))
    steps = sec.steps()
    if steps:
        out.append("<h3>Each scripted step</h3><table><tr><th>step</th><th>what the customer said (one of)</th>"
                   "<th>reached</th><th>broke</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th></tr>" + "".join(
                       f"<tr><td>script {st['script'] + 1} step {st['step']}</td><td>{html.escape(st['said'])}</td>"
                       f"<td class=n>{st['reached']}</td><td class=n>{st['failed']}</td>"
                       + "".join(f"<td class=n>{ms_text(st.get(k))}</td>" for k in ("p50_ms", "p95_ms", "p99_ms"))
                       + "</tr>" for st in steps) + "</table>")
    groups = sec.failure_groups()
    if groups:
        out.append(f"<h2>What broke ({len(groups)} group(s), most frequent first)</h2>")
        out += [_group(g) for g in groups]
    return "".join(out)


def _group(g: dict[str, Any]) -> str:
    """One failure group: the step, the check, how often, what came instead, and one transcript."""
    got = ", ".join(f"{html.escape(repr(text[:120]))} ({n})" for text, n in g["got"])
    sample = g["sample"]
    rows = "".join(f"<tr><th>{html.escape(who)}</th><td>{html.escape(text)}</td></tr>" for who, text in
                   sample["transcript"])
    latency = f"; that turn took {sample['latency_ms']:g} ms" if sample.get("latency_ms") is not None else ""
    return (f"<h3>script {g['script'] + 1}, step {g['step']}: {html.escape(str(g['check']))} expected "
            f"{html.escape(repr(g['expected']))} — {g['count']} conversation(s)</h3>"
            f"<p>what came instead: {got}</p><p>one of them: conversation "
            f"<code>{html.escape(str(sample['session'] or sample['name']))}</code>{latency}</p>"
            f"<table class=\"transcript\">{rows}</table>")


def _failures_and_concurrency(ts: tuple[dict[str, Any], ...]) -> list[str]:
    """Per-second failures (first attempt and after retries), retries, 429s, missed starts; launches in flight."""
    out = []
    out.append("<h2>Errors, retries, 429s and missed starts</h2>" + line_chart(
        [Line("failed at first attempt (retries may have saved them)", COLORS["first_failed"],
              [(r["t"], r.get("first_failed", 0)) for r in ts]),
         Line("retries (attempts after the first)", COLORS["retries"], [(r["t"], r.get("retries", 0)) for r in ts],
              dotted=True),
         Line("failed launches (after retries)", COLORS["failed"], [(r["t"], r["failed"]) for r in ts]),
         Line("429 responses (launch and status poll)", COLORS["r429"], [(r["t"], r["r429"]) for r in ts]),
         Line("missed starts", COLORS["missed"], [(r["t"], r["missed"]) for r in ts])],
        title="Per second (by the second each launch was due)", xlabel="seconds since start", ylabel="count"))
    if any("busy_ms" in r for r in ts):
        out.append("<h2>Concurrency</h2>" + line_chart(
            [Line("launches in flight, average (each second's launches × their end-to-end time, Little's law)",
                  COLORS["in_flight"], [(r["t"], r.get("busy_ms", 0) / 1000) for r in ts])],
            title="Launches in flight (by the second each launch was due)", xlabel="seconds since start",
            ylabel="in flight"))
    return out


def run_report(s: RunSummary) -> str:
    """The HTML report of one load run summary."""
    ts = s.timeseries
    lat, att = s.latency_ms, s.attempt_latency_ms
    body = [_kpis([("result", s.verdict), ("target /s", s.target_rate_per_s), ("achieved /s", s.achieved_rate_per_s),
                   ("launched", s.launched), ("failed after retries", s.failed),
                   ("errors at first attempt", f"{s.first_attempt_error_rate:.2%}"),
                   ("missed starts", s.missed_starts), ("not sent", s.not_sent), ("retries", s.retries),
                   ("p95 per attempt ms", ms_text(att.p95)), ("p95 end to end ms", ms_text(lat.p95))])]
    body.append(f"<p>First launch sent {html.escape(s.first_send_at or '—')}, last {html.escape(s.last_send_at or '—')} "
                f"(UTC); schedule {s.duration_s:g} s, {s.scheduled} launches.</p>")
    if s.aborted:
        body.append(f"<p class=fail>Stopped early: {html.escape(s.aborted)}</p>")
    if s.partial:
        body.append(f"<p class=fail>Partial counts: {html.escape(s.partial)}</p>")
    body.append("<h2>Thresholds</h2>" + _thresholds(s.thresholds))
    body.append("<h2>Requests</h2>" + _requests(s))
    body.append("<h2>Arrival rate</h2>" + line_chart(
        [Line("target", COLORS["target"], [(r["t"], r.get("target", 0)) for r in ts], dashed=True),
         Line("achieved (launches by due second)", COLORS["achieved"], [(r["t"], r["launched"]) for r in ts])],
        title="Launches per second: target vs achieved", xlabel="seconds since start", ylabel="launches/s"))
    hist = s.latency_histograms
    if hist.get("attempt") or hist.get("end_to_end"):
        body.append("<h2>Latency distribution</h2>" + histogram(
            [(f"per attempt ({att.count} attempts)", COLORS["attempt"], hist.get("attempt", [])),
             (f"end to end ({lat.count} launches)", COLORS["end_to_end"], hist.get("end_to_end", []))],
            title="Launch latency histogram (log scale; 4 bins per doubling)", xlabel="ms",
            rules=_latency_rules(s, None)))
    body.append("<h2>Latency over time</h2>" + line_chart(
        # p95 dashed and p50 dotted, over a solid p99: at a few launches a second they coincide and stay visible
        [Line(p, COLORS[p], [(r["t"], r[p]) for r in ts if p in r], dashed=p == "p95", dotted=p == "p50")
         for p in ("p99", "p95", "p50")],
        title="Launch latency per second, end to end (first send to final answer)", xlabel="seconds since start",
        ylabel="ms", rules=_latency_rules(s, "end to end")))
    body += _failures_and_concurrency(s.timeseries)
    if s.section is not None:
        body.append(_section(s))
    tc = s.turn_check
    if tc:
        groups = (tc.get("failures") or {}).get("groups") or []
        body.append(f"<h2>Intent and slot checks: {html.escape(str(tc['verdict']))}</h2><p>{tc.get('checked', 0)} "
                    f"step(s) checked against the platform's reporting turns, {tc.get('failed', 0)} broke.</p>"
                    + "".join(_group(g) for g in groups)
                    + "".join(f"<p>{html.escape(label)} {html.escape(text)}</p>"
                              for label, text in (coverage_text(tc["coverage"]) if tc.get("coverage") else [])))
    outcomes = s.flow_completion.outcomes
    if outcomes:
        palette = {"COMPLETED": "#2ca02c", "FAILED": "#d62728", "ERROR": "#ff7f0e", "TIMEOUT": "#8c564b"}
        body.append("<h2>Flow outcomes</h2>" + bar_chart(
            [(k, v, palette.get(k, "#7f7f7f")) for k, v in sorted(outcomes.items())],
            title="Followed executions by terminal status"))
    status = "".join(f"<tr><td>{html.escape(k)}</td><td class=n>{v}</td></tr>" for k, v in s.http_status.items())
    body.append(f"<h2>HTTP status of launches (after retries)</h2><table><tr><th>status</th><th>count</th></tr>"
                f"{status}</table><p>Ledger: <code>{html.escape(s.ledger_path)}</code></p>")
    body.append(_analytics(s.analytics))
    return _page(f"flowsim run {s.run_id} — {s.verdict}",
                 f"scenario {s.scenario} · target {s.target} · {s.workers} worker(s)", "".join(body), s.to_dict())


def _analytics(a: dict[str, Any]) -> str:
    """The separation note, and the proof's verdict and lines when the run checked it."""
    out = [f"<p>{html.escape(str(a['note']))}</p>"] if a.get("note") else []
    check = a.get("check")
    if check:
        sep = check.get("separated")
        cls = "warn" if sep is None else "pass" if sep else "fail"
        out.append(f'<p>Separation: <span class="{cls}">{html.escape(str(check.get("verdict")))}</span></p>')
        if check.get("lines"):
            out.append("<pre>" + html.escape("\n".join(map(str, check["lines"]))) + "</pre>")
    return "<h2>Analytics</h2>" + "".join(out) if out else ""


def capacity_report(c: CapacityResult) -> str:
    """The HTML report of a capacity search: latency and errors against rate, each step passed or failed,
    the SLO and the knee marked."""
    steps = sorted(c.steps, key=lambda st: st.rate_per_s)
    knee = c.sustainable_rate_per_s
    passed = [st.passed for st in steps]
    unbounded = c.first_failing_rate_per_s is None
    body = [_kpis([("sustainable /s", f"≥ {knee}" if unbounded and knee else knee),
                   ("first failing /s", "none up to --max" if unbounded else c.first_failing_rate_per_s),
                   ("steps", len(steps)), ("search s", c.search_duration_s),
                   ("limited by", c.limiting_factor or "—")])]
    body.append(f"<p>{html.escape(c.confidence)}. SLO: p95 end to end ≤ {c.slo['p95_ms']} ms, "
                f"error rate ≤ {c.slo['max_error_rate']:.2%} (first attempts).</p>")
    knee_rule = [Rule(knee, f"sustainable {knee:g}/s", color=PASS_COLOR, vertical=True, style=":")] if knee else []
    body.append(line_chart(
        [Line("p50", COLORS["p50"], [(st.rate_per_s, st.latency_ms.p50) for st in steps
                                     if st.latency_ms.p50 is not None], dots=True),
         Line("p95 (the SLO's)", COLORS["p95"], [(st.rate_per_s, st.latency_ms.p95 or 0.0) for st in steps],
              passed=passed),
         Line("p99", COLORS["p99"], [(st.rate_per_s, st.latency_ms.p99) for st in steps
                                     if st.latency_ms.p99 is not None], dots=True)],
        title="Launch latency (end to end) vs arrival rate", xlabel=f"{c.unit}/s", ylabel="ms",
        rules=[Rule(float(c.slo["p95_ms"]), f"SLO p95 ≤ {c.slo['p95_ms']:g} ms"), *knee_rule]))
    body.append(line_chart(
        [Line("first-attempt error rate % (the SLO's)", COLORS["error"],
              [(st.rate_per_s, 100 * st.first_attempt_error_rate) for st in steps], passed=passed),
         Line("error rate after retries %", "#ff9896", [(st.rate_per_s, 100 * st.error_rate) for st in steps],
              dots=True),
         Line("429 rate %", COLORS["r429"], [(st.rate_per_s, 100 * st.rate_429) for st in steps], dots=True)],
        title="Errors vs arrival rate", xlabel=f"{c.unit}/s", ylabel=f"% of {c.unit}",
        rules=[Rule(100 * c.slo["max_error_rate"], f"SLO errors ≤ {c.slo['max_error_rate']:.2%}"), *knee_rule]))
    rows = "".join(
        f"<tr><td class=n>{st.rate_per_s:.2f}</td><td class=n>{st.achieved_rate_per_s:.2f}</td>"
        f"<td class=n>{st.launched}</td>"
        f"<td class=n>{st.latency_ms.p95}</td><td class=n>{st.first_attempt_error_rate:.2%}</td>"
        f"<td class=n>{st.error_rate:.2%}</td><td class=n>{st.rate_429:.2%}</td><td class=n>{st.missed_starts}</td>"
        f"<td>{_verdict(st.passed, 'pass' if st.passed else 'fail')}</td><td>{html.escape('; '.join(st.reasons))}</td>"
        f"<td><code>{html.escape(st.run_id)}</code></td></tr>" for st in c.steps)
    body.append("<h2>Steps, in the order run</h2><table><tr><th>rate/s</th><th>achieved/s</th>"
                f"<th>{html.escape(c.unit)}s</th><th>p95 ms end to end</th>"
                "<th>errors (first attempt)</th><th>errors (after retries)</th><th>429s</th><th>missed</th><th></th>"
                f"<th>why</th><th>run</th></tr>{rows}</table>")
    title = (f"flowsim capacity — at least {knee} {c.unit}/s sustainable (no step failed up to --max)"
             if unbounded and knee else f"flowsim capacity — {knee} {c.unit}/s sustainable")
    return _page(title, c.scenario, "".join(body), c.to_dict())
