"""The live terminal view: its figures from ledger records (no clock), its drawing, and a real run on a
pseudo-terminal (the view drawn, Locust's lines above it, nothing lost)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from sim.drivers.conversation import CONVERSATION
from sim.load.stats import RunStats
from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from sim.run.metrics import Snapshot
from sim.run.terminal import figures, render
from tests.e2e import ENV, launches, run_command, sim_records, write_scenario

T0 = 1_000_000.0


def _launch(seq: int, *, status: int = 200, statuses: list[int] | None = None, ms: float = 4.0) -> dict[str, object]:
    due = T0 + seq / 10
    return {"event": "launch", "seq": seq, "intended_at": due, "sent_at": due, "answered_at": due + ms / 1000,
            "http_status": status, "attempt_statuses": statuses or [status], "attempts": len(statuses or [status]),
            "latency_ms": ms, "attempt_ms": [ms / len(statuses or [status])] * len(statuses or [status])}


def _stats() -> RunStats:
    st = RunStats()
    for seq in range(100):  # 10/s for 10 s; seq 7 retried after a 429, seq 9 failed for good
        if seq == 7:
            st.add_json(_launch(seq, statuses=[429, 200], ms=1004.0), T0)
        elif seq == 9:
            st.add_json(_launch(seq, status=503, statuses=[503, 503, 503], ms=30.0), T0)
        else:
            st.add_json(_launch(seq), T0)
    st.add_json({"seq": 0, "event": "missed", "intended_at": T0 + 10.05, "count": 2}, T0)
    st.add_json({"seq": 0, "event": "outcome", "intended_at": T0, "answered_at": T0, "observed_at": T0 + 1, "flow_status": "COMPLETED",
            "poll_429": 1, "polls": 2}, T0)
    return st


def test_figures_count_what_the_ledger_records_say() -> None:
    snap = Snapshot(run_id="r1", scenario="s", target_rate_per_s=10.0, stats=_stats(), in_flight=3, verdict="RUNNING")
    f = figures(snap, elapsed_s=11.4, duration_s=20.0, scheduled=200, workers=2)
    assert f["launched"] == 100 and f["succeeded"] == 99 and f["failed"] == 1
    assert f["first_attempt_failed"] == 2 and f["retries"] == 3
    assert (f["rate_limited"], f["missed"]) == ({"launch": 1, "status_poll": 1}, 2)
    # The one definition of an achieved rate: (sent − 1) / (last send − first send) = 99 / 9.9 s.
    assert f["achieved_rate_per_s"] == 10.0
    assert f["attempt_ms"][0] == pytest.approx(4.0, rel=0.01) and f["end_to_end_ms"][2] == pytest.approx(30, rel=0.01)  # 99th of 100: the 503 one
    assert f["outcomes"] == {"COMPLETED": 1} and f["in_flight"] == 3
    json.dumps(f)  # crosses the process boundary as JSON
    # Before anything was sent there is no achieved rate, not a made-up 0.
    empty = Snapshot(run_id="r1", scenario="s", target_rate_per_s=10.0, stats=RunStats(), in_flight=0, verdict="RUNNING")
    assert figures(empty, elapsed_s=1.0, duration_s=20.0, scheduled=200, workers=0)["achieved_rate_per_s"] is None


def test_the_view_labels_every_figure() -> None:
    snap = Snapshot(run_id="r1", scenario="smoke", target_rate_per_s=10.0, stats=_stats(), in_flight=None,
                    verdict="RUNNING")
    console = Console(record=True, width=160, color_system=None)
    console.print(render(figures(snap, elapsed_s=11.4, duration_s=20.0, scheduled=200, workers=2)))
    text = console.export_text()
    for expected in ("flowsim run r1 — smoke — RUNNING", "11 s of 20 s  (schedule ends in 9 s)  2 worker(s)",
                     "target 10/s  achieved so far 10/s", "100 of 200 scheduled  succeeded 99  failed after retries 1 (1.00%)",
                     "in flight —", "first attempt 2 (2.00%)  retries 3  429s: launch 1, status poll 1",
                     "missed starts 2", "per attempt 4", "end to end", "COMPLETED 1"):
        assert expected in text, (expected, text)
    console = Console(record=True, width=160, color_system=None)
    console.print(render(figures(snap, elapsed_s=21.0, duration_s=20.0, scheduled=200, workers=0)))
    assert "schedule done, waiting for launches in flight" in console.export_text()


def _on_a_terminal(cmd: list[str], cwd: Path, *, timeout_s: float = 150) -> tuple[int, str]:
    """Run ``cmd`` with a pseudo-terminal as stdin/stdout/stderr; its exit status and everything it wrote."""
    master, slave = pty.openpty()
    env = {**ENV, "TERM": "xterm-256color", "COLUMNS": "150", "LINES": "40"}
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    out = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the other side closed: the command and its children are gone
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, out.decode("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_on_a_terminal_draws_the_live_view(tmp_path: Path, workers: int) -> None:
    scenario = write_scenario(tmp_path, rate=10, duration="6s", follow=True)
    with SimulatorThread(default_org()) as sim:
        code, out = _on_a_terminal(run_command(scenario, tmp_path, sim.url, "--workers", str(workers)), tmp_path)
        s = json.loads((tmp_path / "summary.json").read_text())
        received = sim_records(sim.url, s["run_id"])
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert code == 0, plain[-4000:]
    assert f"flowsim run {s['run_id']} — e2e — RUNNING" in plain, plain[-4000:]  # the view, drawn at least once
    assert "achieved" in plain and "per attempt" in plain and "end to end" in plain
    assert "run.progress" not in plain  # the view replaces the progress lines
    assert "run.started" in plain  # the Locust processes' log lines still reach the terminal, above the view
    assert "RESULT     PASS" in plain  # the summary after it
    assert s["launched"] == 60 == len(launches(tmp_path, s["run_id"])) == len(received)
    assert not list((tmp_path).glob("**/.*.live.json"))  # the figures file goes with the run


def test_the_view_is_only_for_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TTY gets the view; --plain, --log-json, TERM=dumb and piped output get plain lines."""
    from sim.cli import build_parser
    from sim.commands import live_view

    class Stream:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(sys, "stderr", Stream(True))
    assert live_view(build_parser().parse_args(["run"])) is True
    for flag in ("--plain", "--log-json"):
        assert live_view(build_parser().parse_args(["run", flag])) is False
    monkeypatch.setenv("TERM", "dumb")
    assert live_view(build_parser().parse_args(["run"])) is False
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert live_view(build_parser().parse_args(["run"])) is False


def test_the_view_adds_conversation_rows_for_bot_sessions() -> None:
    st = RunStats()
    rec = {**_launch(0), "event": "session", "session_id": "s1", "end": "Exit", "end_reason": "TriggeredByFlow",
           "ended_at": T0 + 2, "expectation_failures": ["turn 3: next action Exit, expected WaitForInput"],
           "turns": [{"status": 200, "latency_ms": 30.0, "attempts": 1, "attempt_statuses": [200]}] * 5}
    st.add_json(rec, T0)
    snap = Snapshot(run_id="r2", scenario="bot", target_rate_per_s=1.0, stats=st, in_flight=0, verdict="RUNNING",
                    section=CONVERSATION.section)
    console = Console(record=True, width=160, color_system=None)
    console.print(render(figures(snap, elapsed_s=3.0, duration_s=10.0, scheduled=10, workers=0)))
    text = console.export_text()
    assert "started 1, turns 5, turn p95 30" in text and "broke their script 1" in text
    assert "Exit:TriggeredByFlow 1" in text
