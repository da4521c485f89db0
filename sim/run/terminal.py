"""The live terminal view of ``flowsim run`` on a TTY: one table, redrawn every second, with the Locust
processes' log lines scrolling above it.

The master (or single process) knows the figures; the ``flowsim`` parent owns the terminal. The master
writes :func:`figures` of its live stats to a small JSON file once a second (``--flowsim-live-file``,
replaced atomically); the parent reads it and draws :func:`render` with ``rich``. Piped output, ``--log-json``
and ``--plain`` keep the plain progress lines instead. No locust import.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sim.load.figures import ms_text
from sim.run.metrics import Snapshot

if TYPE_CHECKING:  # rich is imported where the view is drawn (the parent): the Locust processes only write figures
    from rich.console import Console
    from rich.table import Table

__all__ = ["figures", "write_figures", "render", "LiveView"]


def figures(snap: Snapshot, *, elapsed_s: float, duration_s: float, scheduled: int, workers: int) -> dict[str, Any]:
    """What the view shows, as plain data (so that it crosses a process boundary as JSON): the snapshot's
    :class:`~sim.load.figures.Figures`, the one set every view reads."""
    f = snap.figures
    attempt, e2e = f.attempt_latency_ms, f.latency_ms
    return {
        "run_id": snap.run_id, "scenario": snap.scenario, "state": snap.verdict, "workers": workers,
        "elapsed_s": round(max(0.0, elapsed_s), 1), "duration_s": duration_s, "scheduled": scheduled,
        "target_rate_per_s": round(snap.target_rate_per_s, 2),
        "achieved_rate_per_s": round(f.achieved_rate_per_s, 2) if f.launched else None,
        "launched": f.launched, "succeeded": f.succeeded, "failed": f.failed,
        "first_attempt_failed": f.first_attempt_failed, "retries": f.retries,
        "rate_limited": f.rate_limited, "missed": f.missed_starts, "late": f.late,
        "in_flight": snap.in_flight,
        "attempt_ms": [attempt.p50, attempt.p95, attempt.p99], "end_to_end_ms": [e2e.p50, e2e.p95, e2e.p99],
        "outcomes": f.flow_completion.outcomes,
        "rows": f.section.rows() if f.section is not None else [],
    }


def write_figures(path: str, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically: a reader never sees half a file."""
    tmp = f"{path}.tmp"
    Path(tmp).write_text(json.dumps(data))
    os.replace(tmp, path)


def _ms(values: list[float | None]) -> str:
    return " / ".join(ms_text(v) for v in values) + " ms"


def _pct(n: int, of: int) -> str:
    return f"{n / of:.2%}" if of else "—"


def render(f: dict[str, Any]) -> Table:
    """The view of one set of :func:`figures`."""
    from rich.table import Table

    elapsed, duration = f["elapsed_s"], f["duration_s"]
    left = max(0.0, duration - elapsed)
    achieved = f["achieved_rate_per_s"]
    table = Table(title=f"flowsim run {f['run_id']} — {f['scenario']} — {f['state']}", title_justify="left",
                  show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    workers = f"  {f['workers']} worker(s)" if f["workers"] else ""
    when = f"schedule ends in {left:.0f} s" if left > 0 else "schedule done, waiting for launches in flight"
    table.add_row("time", f"{elapsed:.0f} s of {duration:g} s  ({when}){workers}")
    table.add_row("rate", f"target {f['target_rate_per_s']:g}/s  achieved so far "
                          f"{'—' if achieved is None else f'{achieved:g}'}/s")
    n = f["launched"]
    table.add_row("launches", f"{n} of {f['scheduled']} scheduled  succeeded {f['succeeded']}  "
                              f"failed after retries {f['failed']} ({_pct(f['failed'], n)})  "
                              f"in flight {'—' if f['in_flight'] is None else f['in_flight']}")
    table.add_row("errors", f"first attempt {f['first_attempt_failed']} ({_pct(f['first_attempt_failed'], n)})  "
                            f"retries {f['retries']}  429s: "
                            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in f["rate_limited"].items()))
    table.add_row("not sent", f"missed starts {f['missed']}  late {f['late']}")
    table.add_row("latency", f"p50 / p95 / p99  per attempt {_ms(f['attempt_ms'])}   "
                             f"end to end {_ms(f['end_to_end_ms'])}")
    if f["outcomes"]:
        table.add_row("flows", "  ".join(f"{k} {v}" for k, v in f["outcomes"].items()))
    for name, value in f.get("rows", []):
        table.add_row(name, value)
    return table


class LiveView:
    """The parent's side: draws the master's figures file and prints child output above the table.

    ``with LiveView(path) as view:`` … ``view.forward(proc.stdout)`` for each child stream.
    """

    def __init__(self, path: str, *, console: Console | None = None, refresh_s: float = 1.0) -> None:
        self.path = path
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console(stderr=True)
        self._refresh_s = refresh_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._live = Live(console=self.console, auto_refresh=False, transient=True, redirect_stdout=False,
                          redirect_stderr=False)
        self._last: dict[str, Any] | None = None

    def __enter__(self) -> LiveView:
        self._live.start()
        t = threading.Thread(target=self._draw_loop, name="flowsim-live-view", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._draw()
        self._live.stop()

    def forward(self, stream: IO[bytes]) -> None:
        """Copy a child's output, line by line, above the table (until the stream ends)."""
        def pump() -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self._live.console.print(line, markup=False, highlight=False, emoji=False, overflow="fold")
            stream.close()

        t = threading.Thread(target=pump, name="flowsim-live-forward", daemon=True)
        t.start()
        self._threads.append(t)

    def _draw(self) -> None:
        try:
            data = json.loads(Path(self.path).read_text())
        except (OSError, ValueError):
            data = None  # not written yet, or the run has not started
        if data is not None and data != self._last:
            self._last = data
            self._live.update(render(data), refresh=True)

    def _draw_loop(self) -> None:
        while not self._stop.wait(self._refresh_s):
            self._draw()
