"""Charts for the HTML reports, drawn by matplotlib as inline SVG: no scripts, nothing fetched.

matplotlib (not hand-written SVG) chooses the ticks, scales and legends. Figures are made with the
object API (no pyplot state), text stays text (``svg.fonttype = none``: searchable, small), and ids
are salted with a constant so that the same data gives the same SVG.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatter, MaxNLocator

__all__ = ["Line", "Rule", "line_chart", "histogram", "bar_chart", "PASS_COLOR", "FAIL_COLOR", "PALETTE", "Point"]

PASS_COLOR, FAIL_COLOR = "#137333", "#b3261e"
_RC: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "flowsim", "font.size": 9, "axes.titlesize": 11,
       "axes.titleweight": "bold", "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
       "grid.color": "#e6e6e6", "legend.fontsize": 8, "legend.frameon": False}
_WIDTH_IN, _HEIGHT_IN = 9.4, 2.9

Point = tuple[float, float]


PALETTE = ("#2ca02c", "#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
"""Colours for lines that have no colour of their own (a run's endings), in order."""

@dataclass(frozen=True)
class Line:
    label: str
    color: str
    points: Sequence[Point]
    dashed: bool = False
    dots: bool = False
    dotted: bool = False
    passed: Sequence[bool] | None = None
    """One per point: drawn as a pass (circle) or fail (cross) marker, with a legend entry for each."""


@dataclass(frozen=True)
class Rule:
    """A threshold or marker line across the plot: horizontal at ``at`` on the y axis, or vertical (x)."""

    at: float
    label: str
    color: str = FAIL_COLOR
    vertical: bool = False
    style: str = "--"


@dataclass
class _Chart:
    title: str
    xlabel: str
    ylabel: str
    rules: Sequence[Rule] = field(default_factory=tuple)
    log_x: bool = False

    @property
    def counts(self) -> bool:
        """A y axis of counts: whole-number ticks, and at least 0-1 (all zeros must not read as 0-0.05)."""
        return self.ylabel == "count"


def _svg(fig: Figure, title: str) -> str:
    buf = io.StringIO()
    FigureCanvasSVG(fig)
    fig.savefig(buf, format="svg", metadata={"Date": None, "Title": title}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]  # inline: no XML declaration or doctype


def _figure(c: _Chart) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(_WIDTH_IN, _HEIGHT_IN), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(c.title, loc="left")
    ax.set_xlabel(c.xlabel)
    ax.set_ylabel(c.ylabel)
    if c.log_x:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        # A narrow range shows only minor ticks: label them 2, 3, 4 (not 2×10⁰), and only when few (as matplotlib's
        # own log formatter decides).
        ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
    for r in c.rules:
        (ax.axvline if r.vertical else ax.axhline)(r.at, color=r.color, linestyle=r.style, linewidth=1.2,
                                                   label=r.label)
    return fig, ax


def _finish(fig: Figure, ax: Axes, title: str, counts: bool = False) -> str:
    ax.set_ylim(bottom=0)
    if counts:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(top=max(1.0, ax.get_ylim()[1]))
    handles, _labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, title)


def line_chart(lines: Sequence[Line], *, title: str, xlabel: str, ylabel: str,
               rules: Sequence[Rule] = ()) -> str:
    """Lines over a shared x axis, with threshold rules and optional pass/fail markers."""
    with rc_context(_RC):
        chart = _Chart(title, xlabel, ylabel, rules)
        fig, ax = _figure(chart)
        for ln in lines:
            if not ln.points:
                continue
            xs, ys = zip(*ln.points)
            ax.plot(xs, ys, color=ln.color, label=ln.label,
                    linestyle="--" if ln.dashed else ":" if ln.dotted else "-", linewidth=1.8,
                    marker="o" if ln.dots else None, markersize=3.5,
                    zorder=2.5 if ln.dashed or ln.dotted else 2)  # a dashed line stays visible on a solid one
            if ln.passed is not None:
                for ok, marker, color, name in ((True, "o", PASS_COLOR, "passed"), (False, "X", FAIL_COLOR, "failed")):
                    pts = [p for p, good in zip(ln.points, ln.passed) if good is ok]
                    if pts:
                        px, py = zip(*pts)
                        ax.scatter(px, py, marker=marker, s=46, color=color, zorder=3,
                                   label=f"{ln.label}: step {name}")
        return _finish(fig, ax, title, chart.counts)


def histogram(dists: Sequence[tuple[str, str, Sequence[Sequence[float]]]], *, title: str, xlabel: str,
              rules: Sequence[Rule] = ()) -> str:
    """Distributions on a logarithmic x axis: (label, colour, [[low, high, count], ...]) each."""
    with rc_context(_RC):
        fig, ax = _figure(_Chart(title, xlabel, "count", rules, log_x=True))
        for label, color, bins in dists:
            if bins:
                ax.bar([b[0] for b in bins], [b[2] for b in bins], width=[b[1] - b[0] for b in bins],
                       align="edge", label=label, color=color, alpha=0.45, edgecolor=color, linewidth=0.8)
        return _finish(fig, ax, title, counts=True)


def bar_chart(bars: Sequence[tuple[str, float, str]], *, title: str, ylabel: str = "count") -> str:
    with rc_context(_RC):
        fig, ax = _figure(_Chart(title, "", ylabel))
        labels = [b[0] for b in bars]
        drawn = ax.bar(labels, [b[1] for b in bars], color=[b[2] for b in bars])
        ax.bar_label(drawn)
        ax.grid(axis="x", visible=False)
        return _finish(fig, ax, title, counts=ylabel == "count")
