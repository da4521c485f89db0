"""End to end through a network: a relay between flowsim and the simulator adds 50 ms each way, resets
connections, stalls and goes away. The invariants hold there too: nothing sent twice, ledger = summary =
target, nothing sent more than 1 s after it was due (checked against the relay's own log), and what could
not be sent or answered is said as such."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from sim.load.ledger import ledger_files, read_records
from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from sim.run.prepare import EmbeddedSimulator
from tests.relay import relay
from tests.e2e import ENV, flowsim_run, sim_records, start_run, wait_for_launches, write_scenario

pytestmark = pytest.mark.slow


def records(tmp_path: Path, run_id: str, event: str) -> list[dict]:
    return [r for r in read_records(ledger_files(tmp_path / "runs" / run_id)) if r["event"] == event]


@pytest.mark.xdist_group("heavy")  # loads the CPU or checks timing: one such test at a time
@pytest.mark.parametrize("workers", [0, 2])
def test_100_per_s_through_50_ms_each_way_is_on_time_and_exact(tmp_path: Path, workers: int) -> None:
    """100/s for 10 s through 50 ms each way (tokens fetched through it too): 0 late, missed starts counted (a
    few at most), every launch once, ledger = summary = simulator, and the ledger's sent_at within 50 ms of when
    the relay saw the request (99 %; every one within 0.5 s), never after it."""
    scenario = write_scenario(tmp_path, rate=2, duration="30s", tokens=40, concurrency=100)
    sim = EmbeddedSimulator()  # its own process: the relay in this one should not share a GIL with it
    try:
        with relay(int(sim.url.rsplit(":", 1)[1]), delay_s=0.05) as net:
            code, s, out = flowsim_run(scenario, tmp_path, net.url, "--rate", "100", "--duration", "10s",
                                       "--workers", str(workers))
            assert code == 0, out[-3000:]
            received = sim_records(sim.url, s["run_id"])
    finally:
        sim.stop()
    ledger = records(tmp_path, s["run_id"], "launch")
    # Every launch once, and what was not sent is said: a starved moment of this shared 2-core box (the relay is a
    # thread of this test process, three other test workers beside it) can hold every user past a launch's second
    # (seen once in a suite run: 17 of 1,000 missed at the start, all counted). Nothing is ever sent late.
    assert s["scheduled"] == 1000 == s["launched"] + s["missed_starts"], out[-3000:]
    assert s["launched"] == len(ledger) == len(received) and s["missed_starts"] <= 50, out[-3000:]
    assert s["late"] == 0 and s["not_sent"] == 0 and s["duplicate_launches"] == 0
    seqs = [r["seq"] for r in ledger]
    assert len(set(seqs)) == len(seqs) and set(seqs) <= set(range(1000))
    # The harness's own clock: nothing went out more than 1 s after it was due.
    assert max(r["sent_at"] - r["intended_at"] for r in ledger) <= 1.0
    # The wire's clock: the relay saw every launch, within 50 ms of the ledger's sent_at.
    assert set(net.sent_at) == {r["name"] for r in ledger}
    # (A Python process can pause for a GC or a busy core between the stamp and the write, and the relay — a thread
    # of this test process, beside three other test workers on two cores — between the bytes arriving and its own
    # stamp: 99 % within 50 ms, none past 0.5 s. Seen once in a suite run: three launches at 0.12 s, one pause.
    # What this rules out is c46245f's seconds-late launches recorded as on time.)
    skew = sorted(net.sent_at[r["name"]] - r["sent_at"] for r in ledger)
    assert skew[0] >= -0.005 and skew[int(len(skew) * 0.99)] <= 0.05 and skew[-1] <= 0.5, skew[-5:]
    assert s["latency_ms"]["p50"] >= 100  # the round trip is really there


def test_a_stalled_target_then_sigterm_writes_what_was_in_flight(tmp_path: Path) -> None:
    """The target stops answering mid-run, then SIGTERM: launches sent into the stall are in the ledger as
    unanswered (may have run), the summary counts them as launched, and ledger = summary."""
    scenario = write_scenario(tmp_path, rate=20, duration="30s", tokens=4, concurrency=100)
    with SimulatorThread(default_org()) as sim, relay(sim.port, delay_s=0.05) as net:
        proc = start_run(scenario, tmp_path, net.url, "--plain")
        wait_for_launches(tmp_path, 40)
        net.stall()
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
        net.stall(False)
        received = sim_records(sim.url, json.loads((tmp_path / "summary.json").read_text())["run_id"])
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["interrupted"] and not s["passed"], out[-3000:]
    ledger = records(tmp_path, s["run_id"], "launch")
    unanswered = [r for r in ledger if r["error"] == "unanswered_at_stop"]
    assert len(unanswered) >= 20, out[-3000:]  # ~2 s at 20/s went into the stall
    assert s["launched"] == len(ledger) and s["transport_errors"] == len(unanswered)
    # Everything the simulator received is in the ledger (it may hold more: sent into the stall, never arrived).
    assert {r["name"] for r in received} <= {r["name"] for r in ledger}


def test_an_outage_is_counted_as_not_sent_and_resets_as_unanswered(tmp_path: Path) -> None:
    """Connections refused during an outage are 'not sent' (reason refused), never 'may have run'; connections
    reset by the network are 'unanswered'; nothing is sent twice and ledger = summary."""
    scenario = write_scenario(tmp_path, rate=20, duration="8s", tokens=4, concurrency=100,
                              thresholds="launch_error_rate = 1.0")
    with SimulatorThread(default_org()) as sim, relay(sim.port, delay_s=0.05, reset_rate=0.03) as net:
        proc = start_run(scenario, tmp_path, net.url, "--plain")
        wait_for_launches(tmp_path, 30)
        net.outage()
        time.sleep(2)
        net.restore()
        out, _ = proc.communicate(timeout=120)
        s = json.loads((tmp_path / "summary.json").read_text())
        received = sim_records(sim.url, s["run_id"])
    ledger = records(tmp_path, s["run_id"], "launch")
    refused = records(tmp_path, s["run_id"], "not_sent")
    assert s["refused"] == sum(r.get("count", 1) for r in refused) >= 10, out[-3000:]
    assert all(r["reason"] == "refused" for r in refused)
    assert s["launched"] == len(ledger) and s["duplicate_launches"] == 0
    assert s["launched"] + s["missed_starts"] + s["not_sent"] == s["scheduled"] == 160
    by_name = {r["name"]: r for r in ledger}
    assert {r["name"] for r in received} <= set(by_name)  # nothing reached the target unrecorded
    assert not {r["name"] for r in refused} & set(by_name)
    assert net.resets > 0 and s["transport_errors"] >= 1


@pytest.mark.parametrize("workers", [0, 2])
def test_a_ledger_that_cannot_be_written_stops_the_run_and_it_never_passes(tmp_path: Path, workers: int) -> None:
    """Each file capped at 60 kB (RLIMIT_FSIZE, as a full disk): the first failed ledger write (a process's own, or
    the master's run ledger) stops sending at once; the summary is fatal, not passed, exit 2; every launch the
    target received is in the ledger or within what the summary states as unrecorded or possibly sent — none went
    out unaccounted, and far fewer than scheduled were sent."""
    import resource
    import subprocess

    from tests.e2e import run_command

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    scenario = write_scenario(tmp_path, rate=40, duration="15s", tokens=4, concurrency=100)
    with SimulatorThread(default_org()) as sim:
        r = subprocess.run(run_command(scenario, tmp_path, sim.url, "--workers", str(workers), "--plain"),
                           env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=180, preexec_fn=cap)
        out = r.stdout + r.stderr
        s = json.loads((tmp_path / "summary.json").read_text())
        received = sim_records(sim.url, s["run_id"])
    ledger = records(tmp_path, s["run_id"], "launch")
    assert r.returncode == 2 and s["fatal"] and not s["passed"], out[-3000:]
    assert "could not be written" in s["aborted"] and "PARTIAL" in r.stdout
    # A single process: its own write fails (unrecorded). With workers the master's run ledger (both workers'
    # lines) fills first: what it could not write is each worker's shortfall, bounded by its lease (possibly_sent).
    unknown = s["unrecorded"] + s["possibly_sent"]
    assert unknown >= 1 and s["launched"] == len(ledger)
    # every ledger line reached the target; whatever else the target received is counted as unknown. (An upper
    # bound, not an equality: a launch in flight when the failed write stopped the run is unrecorded and may
    # not have reached the target — seen once in four runs as 217 received, 216 + 2.)
    assert {r["name"] for r in ledger} <= {r["name"] for r in received}
    assert len(ledger) <= len(received) <= len(ledger) + unknown, (len(received), len(ledger), s["unrecorded"],
                                                                    s["possibly_sent"])
    assert len(received) < s["scheduled"] / 2  # it stopped: 600 were scheduled
