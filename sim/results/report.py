"""Self-contained HTML reports (inline SVG, no scripts, nothing fetched): a load run or a capacity search."""

from __future__ import annotations

import html
import json
from typing import Any

from sim.results.summary import CapacityResult, RunSummary, ThresholdResult

__all__ = ["run_report", "capacity_report", "line_chart", "bar_chart"]

Point = tuple[float, float]
COLORS = {"target": "#888888", "achieved": "#1f77b4", "p50": "#2ca02c", "p95": "#ff7f0e", "p99": "#d62728",
          "failed": "#d62728", "r429": "#9467bd", "missed": "#8c564b", "error": "#d62728"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:980px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:8px 0} td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4} .pass{color:#137333;font-weight:600} .fail{color:#b3261e;font-weight:600}
.kpis{display:flex;flex-wrap:wrap;gap:12px} .kpi{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:120px}
.kpi b{display:block;font-size:20px} svg{background:#fff;border:1px solid #eee;margin:6px 0}
"""


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** len(str(int(v))) / 10
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * mag:
            return float(m * mag)
    return v


def line_chart(series: list[tuple[str, str, list[Point]]], *, title: str, xlabel: str, ylabel: str,
               width: int = 900, height: int = 260, marker_x: float | None = None, marker_label: str = "",
               dots: bool = False) -> str:
    """An SVG line chart; ``series`` is (label, colour, points)."""
    pad_l, pad_r, pad_t, pad_b = 60, 20, 30, 40
    xs = [x for _, _, pts in series for x, _ in pts] or [0.0, 1.0]
    ys = [y for _, _, pts in series for _, y in pts] or [0.0]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = _nice_max(max(ys) * 1.05)
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(x: float) -> float:
        return pad_l + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return pad_t + h - (y / y1) * h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{html.escape(title)}">',
           f'<text x="{pad_l}" y="18" font-size="14" font-weight="600">{html.escape(title)}</text>']
    for i in range(5):
        yv = y1 * i / 4
        out.append(f'<line x1="{pad_l}" x2="{pad_l + w}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" stroke="#eee"/>'
                   f'<text x="{pad_l - 6}" y="{sy(yv) + 4:.1f}" font-size="11" text-anchor="end">{yv:g}</text>')
    for i in range(6):
        xv = x0 + (x1 - x0) * i / 5
        out.append(f'<text x="{sx(xv):.1f}" y="{pad_t + h + 16}" font-size="11" text-anchor="middle">{xv:.3g}</text>')
    out.append(f'<text x="{pad_l + w / 2}" y="{height - 6}" font-size="12" text-anchor="middle">{html.escape(xlabel)}</text>'
               f'<text x="14" y="{pad_t + h / 2}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 14 {pad_t + h / 2})">{html.escape(ylabel)}</text>')
    if marker_x is not None:
        mx = sx(marker_x)
        right = mx > pad_l + 0.7 * w  # near the right edge the label goes on the left of the line
        out.append(f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{pad_t}" y2="{pad_t + h}" '
                   f'stroke="#137333" stroke-width="2" stroke-dasharray="6 4"/>'
                   f'<text x="{mx - 4 if right else mx + 4:.1f}" y="{pad_t + 24}" font-size="12" fill="#137333" '
                   f'text-anchor="{"end" if right else "start"}">{html.escape(marker_label)}</text>')
    lx = pad_l + 10
    for n, (label, color, pts) in enumerate(series):
        if pts:
            path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(pts))
            dash = ' stroke-dasharray="8 5"' if n == 0 and len(series) > 1 else ""  # keep overlapping lines visible
            out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="{3 if n == 0 else 2}"{dash}/>')
            if dots:
                out.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}"/>' for x, y in pts)
        out.append(f'<rect x="{lx}" y="{pad_t - 2}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{lx + 14}" y="{pad_t + 7}" font-size="11">{html.escape(label)}</text>')
        lx += 24 + 7 * len(label)
    out.append("</svg>")
    return "".join(out)


def bar_chart(bars: list[tuple[str, float, str]], *, title: str, width: int = 900, height: int = 220) -> str:
    pad_l, pad_t, pad_b = 60, 30, 40
    w, h = width - pad_l - 20, height - pad_t - pad_b
    top = _nice_max(max([v for _, v, _ in bars] or [1]) * 1.1)
    bw = w / max(1, len(bars))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{html.escape(title)}"><text x="{pad_l}" y="18" font-size="14" font-weight="600">'
           f'{html.escape(title)}</text>']
    for i, (label, v, color) in enumerate(bars):
        bh = v / top * h
        x = pad_l + i * bw + bw * 0.15
        out.append(f'<rect x="{x:.1f}" y="{pad_t + h - bh:.1f}" width="{bw * 0.7:.1f}" height="{bh:.1f}" fill="{color}"/>'
                   f'<text x="{x + bw * 0.35:.1f}" y="{pad_t + h - bh - 4:.1f}" font-size="12" text-anchor="middle">{v:g}</text>'
                   f'<text x="{x + bw * 0.35:.1f}" y="{pad_t + h + 16}" font-size="12" text-anchor="middle">'
                   f'{html.escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _page(title: str, subtitle: str, body: str, data: dict[str, Any]) -> str:
    # The summary rides along as JSON so the report is also the machine-readable record.
    blob = html.escape(json.dumps(data, separators=(",", ":")))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><p class="sub">{html.escape(subtitle)}</p>'
            f'{body}<script type="application/json" id="summary">{blob}</script></body></html>')


def _kpis(items: list[tuple[str, Any]]) -> str:
    return '<div class="kpis">' + "".join(
        f'<div class="kpi">{html.escape(k)}<b>{html.escape(str(v))}</b></div>' for k, v in items) + "</div>"


def _thresholds(rows: tuple[ThresholdResult, ...]) -> str:
    if not rows:
        return "<p>No thresholds configured.</p>"
    cells = "".join(
        f"<tr><td>{html.escape(t.name)}</td><td>{t.limit}</td><td>{t.observed}</td>"
        f"<td class=\"{'pass' if t.passed else 'fail'}\">{'PASS' if t.passed else 'FAIL'}</td></tr>"
        for t in rows)
    return f"<table><tr><th>threshold</th><th>limit</th><th>observed</th><th></th></tr>{cells}</table>"


def run_report(s: RunSummary) -> str:
    """The HTML report of one load run summary."""
    ts = s.timeseries
    lat = s.latency_ms
    body = [_kpis([("result", s.verdict), ("target /s", s.target_rate_per_s), ("achieved /s", s.achieved_rate_per_s),
                   ("launched", s.launched), ("failed", s.failed), ("missed starts", s.missed_starts),
                   ("not sent", s.not_sent), ("retries", s.retries), ("p95 ms", lat.p95), ("p99 ms", lat.p99)])]
    body.append("<h2>Thresholds</h2>" + _thresholds(s.thresholds))
    body.append("<h2>Arrival rate</h2>" + line_chart(
        [("target", COLORS["target"], [(r["t"], r.get("target", 0)) for r in ts]),
         ("achieved (launches by due second)", COLORS["achieved"], [(r["t"], r["launched"]) for r in ts])],
        title="Launches per second: target vs achieved", xlabel="seconds since start", ylabel="launches/s"))
    body.append("<h2>Latency</h2>" + line_chart(
        [(p, COLORS[p], [(r["t"], r[p]) for r in ts if p in r]) for p in ("p50", "p95", "p99")],
        title="Launch latency percentiles per second (first send to final answer)", xlabel="seconds since start",
        ylabel="ms"))
    body.append("<h2>Errors, 429s and missed starts</h2>" + line_chart(
        [("failed launches", COLORS["failed"], [(r["t"], r["failed"]) for r in ts]),
         ("429 responses", COLORS["r429"], [(r["t"], r["r429"]) for r in ts]),
         ("missed starts", COLORS["missed"], [(r["t"], r["missed"]) for r in ts])],
        title="Per second", xlabel="seconds since start", ylabel="count"))
    outcomes = s.flow_completion.outcomes
    if outcomes:
        palette = {"COMPLETED": "#2ca02c", "FAILED": "#d62728", "ERROR": "#ff7f0e", "TIMEOUT": "#8c564b"}
        body.append("<h2>Flow outcomes</h2>" + bar_chart(
            [(k, v, palette.get(k, "#7f7f7f")) for k, v in sorted(outcomes.items())], title="Followed executions"))
    status = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in s.http_status.items())
    body.append(f"<h2>HTTP status of launches (after retries)</h2><table><tr><th>status</th><th>count</th></tr>"
                f"{status}</table><p>Ledger: <code>{html.escape(s.ledger_path)}</code></p>")
    note = s.analytics.get("note")
    if note:
        body.append(f"<h2>Analytics</h2><p>{html.escape(note)}</p>")
    return _page(f"flowsim run {s.run_id} — {s.verdict}",
                 f"scenario {s.scenario} · target {s.target} · {s.workers} worker(s)", "".join(body), s.to_dict())


def capacity_report(c: CapacityResult) -> str:
    """The HTML report of a capacity search: latency and errors against rate, the knee marked."""
    steps = sorted(c.steps, key=lambda st: st.rate_per_s)
    knee = c.sustainable_rate_per_s
    body = [_kpis([("sustainable /s", knee), ("first failing /s", c.first_failing_rate_per_s),
                   ("steps", len(steps)), ("search s", c.search_duration_s),
                   ("limited by", c.limiting_factor or "—")])]
    body.append(f"<p>{html.escape(c.confidence)}. SLO: p95 ≤ {c.slo['p95_ms']} ms, "
                f"error rate ≤ {c.slo['max_error_rate']:.2%} (first attempts).</p>")
    body.append(line_chart(
        [(p, COLORS[p], [(st.rate_per_s, v) for st in steps if (v := getattr(st.latency_ms, p)) is not None])
         for p in ("p50", "p95", "p99")],
        title="Launch latency vs arrival rate", xlabel="launches/s", ylabel="ms", marker_x=knee or None,
        marker_label=f"sustainable {knee}/s", dots=True))
    body.append(line_chart(
        [("first-attempt error rate %", COLORS["error"], [(st.rate_per_s, 100 * st.first_attempt_error_rate)
                                                          for st in steps]),
         ("error rate after retries %", "#ff9896", [(st.rate_per_s, 100 * st.error_rate) for st in steps]),
         ("429 rate %", COLORS["r429"], [(st.rate_per_s, 100 * st.rate_429) for st in steps])],
        title="Errors vs arrival rate", xlabel="launches/s", ylabel="% of launches", marker_x=knee or None,
        marker_label="knee", dots=True))
    rows = "".join(
        f"<tr><td>{st.rate_per_s:.2f}</td><td>{st.achieved_rate_per_s:.2f}</td><td>{st.latency_ms.p95}</td>"
        f"<td>{st.first_attempt_error_rate:.2%}</td><td>{st.error_rate:.2%}</td><td>{st.rate_429:.2%}</td>"
        f"<td>{st.missed_starts}</td>"
        f"<td class=\"{'pass' if st.passed else 'fail'}\">{'pass' if st.passed else 'fail'}</td>"
        f"<td>{html.escape('; '.join(st.reasons))}</td></tr>" for st in c.steps)
    body.append("<h2>Steps, in the order run</h2><table><tr><th>rate/s</th><th>achieved/s</th><th>p95 ms</th>"
                "<th>errors (first attempt)</th><th>errors (after retries)</th><th>429s</th><th>missed</th><th></th>"
                f"<th>why</th></tr>{rows}</table>")
    return _page(f"flowsim capacity — {knee} launches/s sustainable", c.scenario, "".join(body), c.to_dict())
