"""End to end: real `flowsim run` (real Locust processes) against the simulator on a loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from sim.load.identity import is_fictional_phone
from sim.load.ledger import ledger_files, read_records
from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from tests.conftest import LOAD_CLIENT, TEST_FLOW, VIEWER_CLIENT, org_with
from tests.e2e import (CAN_MAKE_HOSTS, ENV, fleet_pids, flowsim_run, launches, run_command, sim_records,
                       start_run, wait_for_launches, write_scenario)

pytestmark = pytest.mark.slow
ACROSS_HOSTS = pytest.mark.skipif(CAN_MAKE_HOSTS, reason="runs across hosts (network and mount namespaces) in "
                                  "tests/test_hosts.py, with the same checks")
"""A worker killed or paused: where namespaces can be made (CI), the many-hosts tests prove it harder."""


@pytest.mark.xdist_group("heavy")  # loads the CPU or checks timing: one such test at a time
@pytest.mark.parametrize("workers", [0, 2])
def test_rate_and_duration_options_hold_with_any_number_of_workers(tmp_path: Path, workers: int) -> None:
    """--rate 100 --duration 8s (the scenario says 2/s): 800 launched within 1 % of 100/s, each seq once,
    one run id, identities unique, and one preflight for the whole fleet. (More workers: the partition and leases
    are unit-tested with any number in tests/test_coordination.py.)"""
    scenario = write_scenario(tmp_path, rate=2, duration="30s", tokens=40, concurrency=100)
    with SimulatorThread(default_org()) as sim:
        code, s, out = flowsim_run(scenario, tmp_path, sim.url, "--rate", "100", "--duration", "8s",
                                   "--workers", str(workers))
        assert code == 0, out[-3000:]
        ledger = launches(tmp_path, s["run_id"])
        received = sim_records(sim.url, s["run_id"])
        counters = httpx.get(f"{sim.url}/_sim/stats").json()["counters"]
    assert s["scheduled"] == 800 and s["launched"] == 800 == len(ledger) == len(received), out[-3000:]
    assert abs(s["achieved_rate_per_s"] - 100) / 100 <= 0.01, s["achieved_rate_per_s"]
    assert sorted(r["seq"] for r in ledger) == list(range(800)) and s["duplicate_launches"] == 0
    assert len({r["worker"] for r in ledger}) == max(1, workers) and s["workers"] == max(1, workers)
    assert len({r["identity_id"] for r in ledger}) == 800 and {r["run_id"] for r in ledger} == {s["run_id"]}
    assert counters["flow.served"] == 1  # preflight ran once, in the parent: not again on master or workers
    assert s["ledger"]["counts_source"] == "ledger"
    by_id = {r["id"]: r for r in received}
    assert {rec["execution_id"] for rec in ledger} == set(by_id)
    for rec in ledger:
        got = by_id[rec["execution_id"]]
        assert got["name"] == rec["name"] and got["inputData"]["Flow.identityId"] == rec["identity_id"]
        assert got["inputData"]["Flow.loadTestRunId"] == s["run_id"]
        assert is_fictional_phone(got["inputData"]["Flow.customerPhone"])


def test_rate_limits_and_token_expiry_are_survived_and_counted(tmp_path: Path) -> None:
    """429s are retried after Retry-After and counted as retries; a mid-run token expiry is refreshed."""
    org = org_with(settings={"rate_limit_per_window": 15, "rate_limit_window_s": 4})
    burst = ('[[stages]]\nduration = "2s"\nrate = 10\n'   # 20 launches into a 15-per-4-s window
             '[[stages]]\nduration = "10s"\nrate = 2\n')  # then room for the retries
    with SimulatorThread(org) as sim:
        expire = threading.Timer(7.0, lambda: httpx.post(f"{sim.url}/_sim/tokens/expire"))
        expire.start()
        code, s, out = flowsim_run(write_scenario(tmp_path, rate=0, duration="", tokens=1, stages=burst),
                                   tmp_path, sim.url)
        expire.cancel()
        counters = httpx.get(f"{sim.url}/_sim/stats").json()["counters"]
    assert code == 0, out
    assert counters.get("error.429.too.many.requests", 0) > 0
    assert counters["oauth.issued"] >= 2 and counters.get("error.401.bad.credentials", 0) >= 1
    assert s["launched"] == 40 and s["succeeded"] == 40
    attempts = [r["attempts"] for r in launches(tmp_path, s["run_id"])]
    assert max(attempts) > 1 and sum(a - 1 for a in attempts) == s["retries"]


def test_revoking_every_token_mid_run_fails_nothing(tmp_path: Path) -> None:
    """50/s with 40 pooled tokens, every token revoked mid-run: no launch fails and no followed flow turns
    UNKNOWN; each request in flight pays at most one retry."""
    scenario = write_scenario(tmp_path, rate=50, duration="10s", tokens=40, follow=True, concurrency=150)
    with SimulatorThread(default_org()) as sim:
        proc = start_run(scenario, tmp_path, sim.url)
        try:
            wait_for_launches(tmp_path, 200)
            httpx.post(f"{sim.url}/_sim/tokens/expire")
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        counters = httpx.get(f"{sim.url}/_sim/stats").json()["counters"]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert proc.returncode == 0, out[-3000:]
    assert counters.get("error.401.bad.credentials", 0) >= 1  # the revocation was felt
    assert s["launched"] == s["succeeded"] == 500 and s["failed"] == 0
    assert s["flow_completion"]["outcomes"].get("UNKNOWN", 0) == 0 and s["flow_completion"]["followed"] == 500
    assert all(r["attempts"] <= 2 for r in launches(tmp_path, s["run_id"]))


def test_following_reports_flow_outcomes(tmp_path: Path) -> None:
    """With follow on, each execution is polled to its terminal status and outcomes land in summary and ledger."""
    with SimulatorThread(org_with(flow={"failure_rate": 0.5})) as sim:
        code, s, out = flowsim_run(write_scenario(tmp_path, rate=10, duration="4s", follow=True,
                                                  thresholds="flow_failure_rate = 0.9"), tmp_path, sim.url)
    assert code == 0, out
    fc = s["flow_completion"]
    assert fc["followed"] == 40 and set(fc["outcomes"]) == {"COMPLETED", "FAILED"}
    outcomes = [r for r in read_records(ledger_files(tmp_path / "runs" / s["run_id"])) if r["event"] == "outcome"]
    assert len(outcomes) == 40


def test_dropped_launches_are_counted_and_never_retried(tmp_path: Path) -> None:
    """A connection drop on launch is a transport error in summary and ledger, not retried (no idempotency key)."""
    faults = default_org().flows[0].faults.__class__(drop_rate=0.3)
    with SimulatorThread(org_with(flow={"faults": faults}), seed=3) as sim:
        code, s, out = flowsim_run(write_scenario(tmp_path, rate=10, duration="3s",
                                                  thresholds="launch_error_rate = 0.9"), tmp_path, sim.url)
        drops = httpx.get(f"{sim.url}/_sim/stats").json()["counters"]["fault.drop"]
    assert code == 0, out
    assert s["launched"] == 30 and s["transport_errors"] == drops > 0
    assert s["succeeded"] == 30 - drops and s["retries"] == 0
    failed = [r for r in launches(tmp_path, s["run_id"]) if r["http_status"] == 0]
    assert len(failed) == drops and all(r["attempts"] == 1 and r["execution_id"] is None for r in failed)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_client_without_launch_permission_stops_the_run_at_once(tmp_path: Path, workers: int) -> None:
    """Preflight passes (the client may read flows) but the first launch is refused 403: the run stops there,
    with one line naming the missing permission, exit 2 — not 200 refused launches."""
    env = {**ENV, "GENESYS_CLIENT_ID": VIEWER_CLIENT[0], "GENESYS_CLIENT_SECRET": VIEWER_CLIENT[1]}
    with SimulatorThread(default_org()) as sim:
        r = subprocess.run(run_command(write_scenario(tmp_path, rate=20, duration="10s"), tmp_path, sim.url,
                                       "--workers", str(workers)), capture_output=True, text=True, timeout=120,
                           env=env, cwd=tmp_path)
        refused = httpx.get(f"{sim.url}/_sim/stats").json()["counters"].get("error.403.missing.any.permissions", 0)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "flowsim: launch refused: 403 missing.any.permissions" in r.stderr and "architect:flow:launch" in r.stderr
    assert s["fatal"] is True and s["passed"] is False and s["launched"] == refused < 20


def test_launches_that_timed_out_but_ran_are_reported_as_such_not_as_a_mismatch(tmp_path: Path) -> None:
    """A client timeout leaves an execution the platform ran: the summary says "no answer, may have run" and
    `ledger summary --target` finds each one in the ledger by name (unanswered_but_ran), exit 0."""
    slow = default_org().flows[0].faults.__class__(
        latency=default_org().flows[0].duration.__class__(median_ms=800, p99_ms=800))
    scenario = write_scenario(tmp_path, rate=5, duration="2s", thresholds="launch_error_rate = 1.0")
    scenario.write_text(scenario.read_text().replace("max_retry_wait_s = 10", "max_retry_wait_s = 10\nrequest_timeout_s = 0.3"))
    with SimulatorThread(org_with(flow={"faults": slow})) as sim:
        code, s, out = flowsim_run(scenario, tmp_path, sim.url)
        deadline = time.monotonic() + 30  # the simulator finishes the slow launches the client gave up on
        while len(sim_records(sim.url, s["run_id"])) < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        r = subprocess.run([sys.executable, "-m", "sim.cli", "ledger", "summary", "--json", s["run_id"], "--ledger-dir",
                            str(tmp_path / "runs"), "--target", sim.url], capture_output=True, text=True, timeout=60)
    assert code == 0, out[-3000:]
    assert s["launched"] == 10 and s["transport_errors"] == 10 and "they may have run" in out
    rec = json.loads(r.stdout)
    assert r.returncode == 0, r.stdout
    assert rec["unanswered_may_have_run"] == 10
    assert rec["reconciliation"] == {"target_received": 10, "accepted_not_received": 0, "unanswered_but_ran": 10,
                                     "received_not_in_ledger": 0}


def test_failed_threshold_exits_1(tmp_path: Path) -> None:
    """A threshold that cannot be met makes `flowsim run` exit 1 and say FAIL."""
    with SimulatorThread(default_org()) as sim:
        code, s, out = flowsim_run(write_scenario(tmp_path, rate=5, duration="2s",
                                                  thresholds="launch_p95_ms = 0.001"), tmp_path, sim.url)
    assert code == 1, out
    assert s["passed"] is False and "FAIL" in out


def test_missed_starts_when_concurrency_is_too_low(tmp_path: Path) -> None:
    """Launches due while every user is busy are counted as missed starts, not sent late."""
    org = org_with(flow={"faults": default_org().flows[0].faults.__class__(
        latency=default_org().flows[0].duration.__class__(median_ms=300, p99_ms=300))})
    with SimulatorThread(org) as sim:
        code, s, out = flowsim_run(write_scenario(tmp_path, rate=20, duration="3s", concurrency=2,
                                                  thresholds="missed_start_rate = 0.01"), tmp_path, sim.url)
    assert code == 1, out
    assert s["missed_starts"] > 20 and s["launched"] + s["missed_starts"] == 60


def test_embedded_smoke_run_and_ledger_summary(tmp_path: Path) -> None:
    """`flowsim run` with no target starts its own simulator; `flowsim ledger summary` reconciles the run."""
    scenario = write_scenario(tmp_path, rate=5, duration="3s")
    code, s, out = flowsim_run(scenario, tmp_path, "embedded")
    assert code == 0, out
    r = subprocess.run([sys.executable, "-m", "sim.cli", "ledger", "summary", "--json", s["run_id"],
                        "--ledger-dir", str(tmp_path / "runs")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accepted"] == 15


def test_smoke_scenario_runs_unchanged_against_flowsim_serve(tmp_path: Path) -> None:
    """scenarios/smoke.toml with --target of a `flowsim serve` and no credentials uses its built-in test client."""
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESYS_")}
    with SimulatorThread(default_org()) as sim:
        r = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(root / "scenarios" / "smoke.toml"), "--target",
                            sim.url, "--duration", "3s", "--summary-json", str(tmp_path / "s.json"),
                            "--ledger-dir", str(tmp_path / "runs")], capture_output=True, text=True, timeout=120,
                           env=env, cwd=tmp_path)
        received = httpx.get(f"{sim.url}/_sim/executions").json()["total"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((tmp_path / "s.json").read_text())["succeeded"] == 6 == received


def test_preflight_refuses_production_flow(tmp_path: Path) -> None:
    """A flow outside the test division is refused before any load, with exit 2 and the reason."""
    p = tmp_path / "prod.toml"
    p.write_text(write_scenario(tmp_path, rate=1, duration="1s").read_text()
                 .replace(TEST_FLOW, "b1d5e7a2-0000-4000-8000-000000000002"))
    with SimulatorThread(default_org()) as sim:
        code, _s, out = flowsim_run(p, tmp_path, sim.url)
        assert httpx.get(f"{sim.url}/_sim/executions").json()["total"] == 0
    assert code == 2 and "not the test division" in out


def test_validate_explains_a_bad_payload(tmp_path: Path) -> None:
    """`flowsim validate` renders a sample payload and explains what the platform would reject."""
    p = tmp_path / "bad_input.toml"
    p.write_text(write_scenario(tmp_path, rate=1, duration="1s").read_text()
                 .replace('"Flow.customerName"', '"Flow.customerFullName"'))
    r = subprocess.run([sys.executable, "-m", "sim.cli", "validate", str(p)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert "Flow.customerFullName" in r.stdout and "sample payload" in r.stdout


def test_bad_scenario_exits_2_with_one_line(tmp_path: Path) -> None:
    """A scenario error is one line naming file and field, exit 2, no traceback."""
    p = tmp_path / "typo.toml"
    p.write_text("[scenario]\nmax_concurency = 3\n")
    r = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(p)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "max_concurency" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_secrets_never_in_output_or_ledger(tmp_path: Path) -> None:
    """The client secret and bearer tokens appear in no output, summary or ledger file."""
    with SimulatorThread(default_org()) as sim:
        code, s, out = flowsim_run(write_scenario(tmp_path, rate=5, duration="2s"), tmp_path, sim.url)
    assert code == 0
    texts = [out, json.dumps(s)] + [f.read_text() for f in (tmp_path / "runs").rglob("*.jsonl")]
    assert all(LOAD_CLIENT[1] not in t and "Bearer " not in t for t in texts)


@ACROSS_HOSTS
def test_killed_worker_is_reported_and_the_summary_equals_the_ledger(tmp_path: Path) -> None:
    """SIGKILL one of 2 workers mid-run: reported lost, the survivor takes over, summary = ledger = what arrived."""
    scenario = write_scenario(tmp_path, rate=20, duration="20s")
    with SimulatorThread(default_org()) as sim:
        proc = start_run(scenario, tmp_path, sim.url, "--workers", "2")
        try:
            wait_for_launches(tmp_path, 80)
            _master, workers = fleet_pids(tmp_path)
            assert len(workers) == 2, workers
            os.kill(workers[0], signal.SIGKILL)
            out, _ = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
        s = json.loads((tmp_path / "summary.json").read_text())
        arrived = sim_records(sim.url, s["run_id"])
    received = {r["id"] for r in arrived}
    assert s["workers_lost"], out[-3000:]  # the killed one (a starved survivor may be lost a moment too, and rejoin)
    ledger = launches(tmp_path, s["run_id"])
    seqs = [r["seq"] for r in ledger]
    assert s["launched"] == len(ledger) and len(set(seqs)) == len(seqs) and s["duplicate_launches"] == 0
    assert s["launched"] + s["not_sent"] + s["missed_starts"] == s["scheduled"] == 400 and 0 < s["not_sent"] < 200
    ledger_ids = {r["execution_id"] for r in ledger if r["execution_id"]}
    assert ledger_ids <= received                  # every recorded launch arrived
    # The master counts what reached it: the killed worker's last lines did not; how many launches that may be is
    # bounded by its lease, stated, and fails the verdict — never silently "not sent".
    assert len(s["ledger"]["incomplete_workers"]) == 1 and s["possibly_sent"] > 0
    assert len(received - ledger_ids) <= s["possibly_sent"] and s["passed"] is False and "RESULT     FAIL" in out
    assert "PARTIAL" in out and f"up to {s['possibly_sent']} launches may have been sent and are unrecorded" in out
    # Its local copy, folded in: every launch it wrote is counted; missing then only its requests in flight.
    local = list((tmp_path / "runs" / s["run_id"] / "local").glob("ledger-*.jsonl"))
    merged = subprocess.run([sys.executable, "-m", "sim.cli", "ledger", "merge", s["run_id"], *map(str, local),
                             "--ledger-dir", str(tmp_path / "runs")], capture_output=True, text=True, env=ENV,
                            timeout=60)
    assert merged.returncode == 0 and "refused 0 of another run" in merged.stdout, merged.stdout + merged.stderr
    ledger = launches(tmp_path, s["run_id"])
    seqs = [r["seq"] for r in ledger]
    ledger_ids = {r["execution_id"] for r in ledger if r["execution_id"]}
    assert len(set(seqs)) == len(seqs) and ledger_ids <= received
    missing = {int(r["name"].rsplit("-", 1)[1]) for r in arrived} - set(seqs)
    killed = s["ledger"]["incomplete_workers"]
    assert all(seq % 2 == (next(r["seq"] for r in ledger if r["worker"] in killed) % 2) for seq in missing)
    assert len(missing) <= s["possibly_sent"]  # only the killed worker's requests in flight at the kill
    dead = {r["worker"] for r in ledger} - {r["worker"] for r in ledger if r["seq"] >= 390}
    assert len(dead) == 1
    last_dead = max(r["seq"] for r in ledger if r["worker"] in dead)
    residue = last_dead % 2
    # the survivor took the dead worker's share over: from some seq on it sent every one, its old residue and
    # the dead worker's, to the end of the schedule
    resumed = max(set(range(400)) - set(seqs)) + 1
    assert resumed > last_dead and all(r["worker"] not in dead for r in ledger if r["seq"] >= resumed)
    assert any(r["seq"] % 2 == residue for r in ledger if r["seq"] >= resumed)


@ACROSS_HOSTS
def test_paused_worker_never_sends_twice_or_late(tmp_path: Path) -> None:
    """SIGSTOP one of 2 workers for 8 s, then SIGCONT: no execution launched twice, nothing sent more than 1 s
    late, its overdue share written to the ledger as late, and it takes a share again after it resumes."""
    scenario = write_scenario(tmp_path, rate=40, duration="25s")
    with SimulatorThread(default_org()) as sim:
        proc = start_run(scenario, tmp_path, sim.url, "--workers", "2")
        try:
            wait_for_launches(tmp_path, 200)
            _master, workers = fleet_pids(tmp_path)
            os.kill(workers[0], signal.SIGSTOP)
            time.sleep(8)
            resumed_at = time.time()
            os.kill(workers[0], signal.SIGCONT)
            out, _ = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
        s = json.loads((tmp_path / "summary.json").read_text())
        received = sim_records(sim.url, s["run_id"])
    names = [r["name"] for r in received]
    assert len(names) == len(set(names)), "an execution was launched twice"
    ledger = launches(tmp_path, s["run_id"])
    assert s["launched"] == len(ledger) == len(received) and s["duplicate_launches"] == 0, out[-3000:]
    assert all(r["sent_at"] - r["intended_at"] <= 1.0 for r in ledger)  # the engine's own rule, not a timing guess
    late = [r for r in read_records(ledger_files(tmp_path / "runs" / s["run_id"])) if r["event"] == "late"]
    assert s["late"] == len(late) > 0 and not {r["seq"] for r in late} & {r["seq"] for r in ledger}
    assert s["launched"] + s["missed_starts"] + s["not_sent"] == s["scheduled"] == 1000
    paused = next(w for w in {r["worker"] for r in ledger} if any(x["worker"] == w for x in late))
    assert any(r["worker"] == paused and r["intended_at"] > resumed_at + 1 for r in ledger), "never rejoined"


def test_plain_locust_with_the_locustfile_starts_its_own_simulator(tmp_path: Path) -> None:
    """`locust -f locustfile.py` alone (no flowsim run) starts the embedded simulator, paces and writes a summary."""
    scenario = write_scenario(tmp_path, rate=5, duration="3s")
    root = Path(__file__).resolve().parent.parent
    # No -u / -r / --run-time: flowsim's load shape sets the users and ends the test with the schedule.
    r = subprocess.run([sys.executable, "-m", "locust", "-f", str(root / "locustfile.py"), "--headless",
                        "--flowsim-scenario", str(scenario),
                        "--flowsim-summary-json", str(tmp_path / "s.json"), "--flowsim-ledger-dir",
                        str(tmp_path / "runs")], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "FLOWSIM_LOG_JSON": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["launched"] == s["succeeded"] == 15 and s["target"].startswith("http://127.0.0.1:")
    line = next(json.loads(ln) for ln in r.stderr.splitlines() if '"simulator.embedded"' in ln)
    assert line["url"] == s["target"]
    with pytest.raises(httpx.TransportError):  # stopped with the run
        httpx.get(f"{line['url']}/_sim/health", timeout=2)


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(p)
    return alive


def _iso(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize(("sig", "group", "workers", "embedded", "twice"), [
    (signal.SIGTERM, False, 2, True, False),  # kill PID of a CI job's flowsim, fleet and embedded simulator
    (signal.SIGINT, True, 2, False, False),   # Ctrl-C in a terminal: the whole foreground group
    (signal.SIGTERM, True, 0, False, False),  # a CI runner cancelling the job's process group
    (signal.SIGINT, False, 0, True, True),    # one Ctrl-C under `timeout`: terminal and wrapper both send SIGINT
])
def test_signals_stop_everything_and_keep_summary_ledger_and_report(
        tmp_path: Path, sig: int, group: bool, workers: int, embedded: bool, twice: bool) -> None:
    """SIGINT/SIGTERM to `flowsim run` (PID or group, with or without workers, embedded or external target; the
    same signal twice 0.1 s apart, as one Ctrl-C under a wrapper delivers it): exit 128+signal, nothing left
    running, nothing sent 2 s after the signal, summary + ledger + HTML written, verdict INTERRUPTED, the ledger
    matches what the target received."""
    scenario = write_scenario(tmp_path, rate=20, duration="60s")
    with SimulatorThread(default_org()) as sim:
        proc = start_run(scenario, tmp_path, "embedded" if embedded else sim.url, "--workers", str(workers),
                         "--html", str(tmp_path / "report.html"), start_new_session=True)
        try:
            wait_for_launches(tmp_path, 40)
            family = _descendants(proc.pid)
            assert len(family) == workers + 1 + (1 if embedded else 0), family
            signalled_at = time.time()
            os.killpg(proc.pid, sig) if group else os.kill(proc.pid, sig)
            if twice:
                time.sleep(0.1)  # not a timing assert: the second delivery of one Ctrl-C
                os.kill(proc.pid, sig)
            out, _ = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        received = [] if embedded else sim_records(sim.url, json.loads((tmp_path / "summary.json").read_text())["run_id"])
    assert proc.returncode == 128 + sig, out[-3000:]
    assert _alive(family) == [], "a child outlived flowsim run"
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["interrupted"] is True and s["passed"] is False and "RESULT     INTERRUPTED" in out
    assert "Traceback" not in out and "closed file" not in out
    assert (tmp_path / "report.html").read_text().count("INTERRUPTED") >= 1
    ledger = launches(tmp_path, s["run_id"])
    assert s["launched"] == len(ledger) >= 40 and s["duplicate_launches"] == 0
    assert all(r["sent_at"] < signalled_at + 2 for r in ledger)
    if not embedded:
        assert all(_iso(r["dateLaunched"]) < signalled_at + 2 for r in received)
        assert {r["execution_id"] for r in ledger} == {r["id"] for r in received}


def test_parent_killed_takes_its_children_with_it(tmp_path: Path) -> None:
    """SIGKILL of `flowsim run` (no chance to clean up): the kernel stops master, workers and simulator, the
    master still writes the summary, and the target hears nothing more."""
    scenario = write_scenario(tmp_path, rate=20, duration="60s")
    with SimulatorThread(default_org()) as sim:
        proc = start_run(scenario, tmp_path, sim.url, "--workers", "2", start_new_session=True)
        try:
            wait_for_launches(tmp_path, 40)
            family = _descendants(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
            deadline = time.monotonic() + 60
            while _alive(family) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            for p in _alive(_descendants(proc.pid)) + [proc.pid]:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
        assert _alive(family) == [] and len(family) == 3
        s = json.loads((tmp_path / "summary.json").read_text())
        received = sim_records(sim.url, s["run_id"])
    assert s["interrupted"] is True and s["launched"] == len(received) == len(launches(tmp_path, s["run_id"]))


@pytest.mark.xdist_group("heavy")  # loads the CPU or checks timing: one such test at a time
def test_ramp_follows_the_stages_second_by_second(tmp_path: Path) -> None:
    """A 0→30/s ramp over 6 s then 3 s at 30/s: each second's launches match the scheduled rate."""
    stages = '[[stages]]\nduration = "6s"\nrate = 30\nramp = true\n[[stages]]\nduration = "3s"\nrate = 30\n'
    with SimulatorThread(default_org()) as sim:
        code, s, out = flowsim_run(write_scenario(tmp_path, rate=0, duration="", stages=stages), tmp_path, sim.url)
    assert code == 0, out
    assert s["scheduled"] == s["launched"] == 180
    per_second = {row["t"]: row["launched"] for row in s["timeseries"]}
    # ∫ of the ramp over second k is 2.5·(2k+1) launches; the hold is 30 a second
    expected = [round(2.5 * (2 * k + 1)) for k in range(6)] + [30, 30, 30]
    assert all(abs(per_second.get(k, 0) - e) <= 1 for k, e in enumerate(expected)), per_second


def test_worker_joining_mid_run_takes_a_share_without_duplicates(tmp_path: Path) -> None:
    """A worker that joins mid-run gets a share of later launches only: every sequence number exactly once."""
    # 24 s: a fresh worker process needs a few seconds (imports, connect, users from Locust's rebalancing,
    # engine set-up) before the master gives it a share.
    scenario = write_scenario(tmp_path, rate=20, duration="24s")
    late: subprocess.Popen[bytes] | None = None
    with SimulatorThread(default_org()) as sim:
        proc = start_run(scenario, tmp_path, sim.url, "--workers", "1")
        try:
            wait_for_launches(tmp_path, 60)
            master = Path(f"/proc/{fleet_pids(tmp_path)[0]}/cmdline").read_text().split("\0")
            port = master[master.index("--master-bind-port") + 1]
            # A worker needs nothing but the master's address: the plan comes in the start message.
            late = subprocess.Popen([sys.executable, "-m", "locust", "-f", master[master.index("-f") + 1], "--worker",
                                     "--master-host", "127.0.0.1", "--master-port", port], env=ENV,
                                    cwd=tmp_path, stdout=open(tmp_path / "late.log", "w"), stderr=subprocess.STDOUT)
            out, _ = proc.communicate(timeout=120)
        finally:
            for p in (proc, late):
                if p is not None and p.poll() is None:
                    p.kill()
    assert proc.returncode == 0, out[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    ledger = launches(tmp_path, s["run_id"])
    # Every sequence number once: launched, or written as never sent (a launch due while a starved CPU — a new
    # worker importing beside three other test runs on two cores — held its owner past the 1 s late rule). No
    # sequence number twice, and what the ledger says is what the summary says.
    seqs = [r["seq"] for r in ledger]
    unsent = sum(int(r.get("count") or 1) for r in read_records(ledger_files(tmp_path / "runs" / s["run_id"]))
                 if r["event"] in ("missed", "late", "not_sent"))
    assert len(set(seqs)) == len(seqs) and set(seqs) <= set(range(480)) and len(seqs) + unsent == 480
    assert s["launched"] == len(seqs) and s["duplicate_launches"] == 0 and unsent <= 10
    by_worker: dict[str, list[int]] = {}
    for r in ledger:
        by_worker.setdefault(r["worker"], []).append(r["seq"])
    assert len(by_worker) == 2, (tmp_path / "late.log").read_text()[-3000:]
    original = min(by_worker.values(), key=min)  # the original worker sent seq 0
    newcomer = next(v for v in by_worker.values() if v is not original)
    # it was started once 60 launches were in the ledger: nothing before that is its
    assert min(newcomer) >= 60 and len(newcomer) > 60
