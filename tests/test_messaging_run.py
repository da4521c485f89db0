"""Open Messaging runs end to end: the shipped scenarios/open-messaging.toml under real Locust (0 and 2 workers)
against the simulator on loopback, whose deliveries go to flowsim's own receiver. What the simulator delivered,
what the ledger holds and what the summary says agree exactly — with the simulator's delivery faults on too
(duplicates, reordering, drops): no reply counted twice, every duplicate counted, no customer stuck."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from sim.load.ledger import ledger_files, read_records
from sim.platform.messaging_model import DeliveryFaults
from sim.platform.server import SimulatorThread
from tests.conftest import token
from tests.test_messaging_simulator import INTEGRATION, _org

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "scenarios" / "open-messaging.toml"
# No credentials in the environment: the simulator's built-in client and integration secret, as `make run` uses.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "FLOWSIM_WEBHOOK"))}


def _run(scenario: Path, tmp_path: Path, url: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    cmd = [sys.executable, "-m", "sim.cli", "run", str(scenario), "--target", url, "--summary-json",
           str(tmp_path / "summary.json"), "--ledger-dir", str(tmp_path / "runs"), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=ENV, cwd=tmp_path)
    summary = tmp_path / "summary.json"
    return r.returncode, json.loads(summary.read_text()) if summary.exists() else {}, r.stdout + r.stderr


def _delivered(url: str, run_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/_sim/messaging", params={"from_prefix": f"flowsim-{run_id}-", "limit": 100000})
    return [d for c in r.json()["entities"] for d in c["deliveries"]]


def _records(tmp_path: Path, run_id: str) -> list[dict[str, Any]]:
    return list(read_records(ledger_files(tmp_path / "runs" / run_id)))


def _agree(tmp_path: Path, s: dict[str, Any], deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """simulator = ledger = summary: each reply the simulator delivered is in exactly one customer's record, or
    counted by the receiver as after the customer left; each extra copy is a counted duplicate."""
    records = _records(tmp_path, s["run_id"])
    convs = [r for r in records if r["event"] == "session"]
    receiver = [r for r in records if r["event"] == "receiver"]
    assert len(receiver) == 1, receiver
    counts = Counter(receiver[0]["counts"])
    read = [rep["id"] for c in convs for rep in c["replies"]]
    assert len(read) == len(set(read)), "a reply counted twice"
    delivered = {d["messageId"] for d in deliveries if d["copies"] >= 1}
    assert set(read) <= delivered
    assert len(delivered) == len(read) + counts["after_give_up"]
    assert counts["routed"] == len(read) and counts["duplicate"] == sum(max(0, d["copies"] - 1) for d in deliveries)
    assert not counts["bad_signature"] and not counts["unknown_recipient"] and not counts["malformed"]
    m = s["messaging"]
    assert m["replies"] == len(read) and m["receiver"] == {k: v for k, v in counts.items() if v}
    assert m["conversations"] == len(convs) == s["launched"] == s["scheduled"]
    assert sorted(c["seq"] for c in convs) == list(range(s["scheduled"])) and s["duplicate_launches"] == 0
    return convs


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_shipped_messaging_scenario_simulator_ledger_and_summary_agree(tmp_path: Path, workers: int) -> None:
    import socket

    with socket.socket() as probe:  # a free port for --webhook (the receiver binds it a moment later)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with SimulatorThread(_org()) as sim, httpx.Client(base_url=sim.url) as http:
        code, s, out = _run(SHIPPED, tmp_path, sim.url, "--rate", "4", "--duration", "4s", "--workers", str(workers),
                            "--webhook", f"127.0.0.1:{port}")
        deliveries = _delivered(sim.url, s.get("run_id", "?"))
        posts_to = http.get(f"/api/v2/conversations/messaging/integrations/open/{INTEGRATION}",
                            headers=token(http)).json()["outboundNotificationWebhookUrl"]
        reconciled = subprocess.run([sys.executable, "-m", "sim.cli", "ledger", "summary", s.get("run_id", "?"),
                                     "--ledger-dir", str(tmp_path / "runs"), "--target", sim.url, "--json"],
                                    capture_output=True, text=True, timeout=60, env=ENV)
        if workers == 0 and code == 0:
            _cleanup_leaves_only_strangers(tmp_path, s["run_id"], sim.url, http)
    assert code == 0, out[-3000:]
    assert posts_to == f"http://127.0.0.1:{port}/webhook"  # --webhook: where the receiver listened
    convs = _agree(tmp_path, s, deliveries)
    assert len(convs) == 16 and len({c["worker"] for c in convs}) == max(1, workers)
    assert all(c["expectation_failures"] == [] and c["end"] in ("script_ended", "transferred") for c in convs)
    assert {c["name"] for c in convs} == {f"flowsim-{s['run_id']}-{i}" for i in range(16)}
    assert all(c["tag_status"] == 202 and c["session_id"] for c in convs)  # tags are accepted, applied later
    assert "RESULT     PASS" in out and "webhook    routed:" in out
    assert s["analytics"]["check"]["verdict"].startswith("SEPARATED"), s["analytics"]["check"]
    # `flowsim ledger summary --target` reconciles the run against the simulator's conversations (by from.id)
    rec = json.loads(reconciled.stdout)
    assert reconciled.returncode == 0 and rec["kind"] == "messaging", reconciled.stdout + reconciled.stderr
    assert rec["reconciliation"] == {"target_received": 16, "accepted_not_received": 0, "unanswered_but_ran": 0,
                                     "received_not_in_ledger": 0}


def _cleanup_leaves_only_strangers(tmp_path: Path, run_id: str, url: str, http: httpx.Client) -> None:
    """Identity resolution made one external contact per customer; `flowsim cleanup` lists them (dry run), then
    deletes them with --yes and records it — and leaves alone a contact the search matches that is not the run's."""
    from tests.test_messaging_simulator import _message

    def cleanup(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sim.cli", "cleanup", run_id, "--ledger-dir",
                               str(tmp_path / "runs"), "--target", url, *extra], capture_output=True, text=True,
                              timeout=60, env=ENV)

    def contacts() -> set[str]:
        r = http.get("/api/v2/externalcontacts/contacts", headers=auth,
                     params={"q": f"flowsim-{run_id}-", "pageSize": 500})
        return {i["value"] for c in r.json()["entities"] for i in c["identifiers"]}

    auth = token(http)
    stranger = f"flowsim-{run_id}-9999"  # the run's prefix, but no customer of its ledger
    http.post(f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message", headers=auth,
              json=_message(stranger, "hi"))
    before = contacts()
    dry = cleanup()
    between = contacts()
    done = cleanup("--yes")
    assert dry.returncode == 0 and "16 external contacts are theirs (1 more matched" in dry.stdout, dry.stdout + dry.stderr
    assert "dry run: nothing deleted" in dry.stdout and between == before and len(before) == 17
    assert done.returncode == 0 and "deleted 16, already gone 0, failed 0" in done.stdout, done.stdout + done.stderr
    assert contacts() == {stranger}
    rec = [r for r in _records(tmp_path, run_id) if r["event"] == "cleanup"]
    assert len(rec) == 1 and rec[0]["deleted"] == 16 and len(rec[0]["deleted_ids"]) == 16


@pytest.mark.slow
def test_ctrl_c_mid_conversation_ends_customers_and_receiver_cleanly(tmp_path: Path) -> None:
    """SIGINT while customers wait on replies: each conversation in flight is written (interrupted or ended), the
    receiver's record is in the ledger, nothing is left running, and the figures still agree."""
    import signal
    import time

    cmd = [sys.executable, "-m", "sim.cli", "run", str(SHIPPED), "--rate", "5", "--duration", "60s", "--workers", "2",
           "--summary-json", str(tmp_path / "summary.json"), "--ledger-dir", str(tmp_path / "runs")]
    with SimulatorThread(_org()) as sim:
        proc = subprocess.Popen([*cmd, "--target", sim.url], env=ENV, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # bounded: until some customers are mid-conversation
                files = [f for f in (tmp_path / "runs").rglob("ledger-*.jsonl") if f.parent.name != "local"]
                opened = [r for r in read_records(files) if r["event"] == "session_open"]
                if len(opened) >= 8:
                    break
                time.sleep(0.2)
            os.kill(proc.pid, signal.SIGINT)
            out, _ = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        s = json.loads((tmp_path / "summary.json").read_text())
        deliveries = _delivered(sim.url, s["run_id"])
    assert proc.returncode == 130 and "Traceback" not in out, out[-3000:]
    records = _records(tmp_path, s["run_id"])
    opened = {r["name"] for r in records if r["event"] == "session_open"}
    convs = [r for r in records if r["event"] == "session"]
    assert s["interrupted"] and opened <= {c["name"] for c in convs} and len(convs) == s["launched"] >= 8
    assert "interrupted" in {c["end"] for c in convs}
    read = [rep["id"] for c in convs for rep in c["replies"]]
    assert len(read) == len(set(read)) and set(read) <= {d["messageId"] for d in deliveries if d["copies"]}
    assert [r for r in records if r["event"] == "receiver"]


class _Ingress:
    """What stands in front of the receiver on a real org (a company ingress, a tunnel): it forwards each delivery
    to flowsim's receiver — after answering 503 to everything for its first ``down_s`` seconds (a retry storm)."""

    def __init__(self, to: str, down_s: float) -> None:
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.began: float | None = None
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.began = outer.began or time.monotonic()
                if time.monotonic() - outer.began < down_s:
                    outer.refused += 1
                    status = 503
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower().startswith(("x-", "content-type"))}
                    status = httpx.post(to, content=raw, headers=headers, timeout=5).status_code
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


FAULTY = 'reply_timeout_s = 10 '


@pytest.mark.slow
def test_faults_and_a_retry_storm_behind_an_ingress_count_every_duplicate_and_never_a_reply_twice(
        tmp_path: Path) -> None:
    """The real-org topology under trouble. The integration posts to a public URL (--webhook-url); an ingress
    forwards to the receiver (--webhook) but answers 503 for its first 3 s, so the platform retries (1 s apart, up
    to 5 times); and the platform duplicates 20 %, reorders 20 % and drops 5 % of deliveries. Every duplicate is
    counted and none reaches a customer twice, overtaken replies are seen, a customer whose reply never comes gives
    up after its reply timeout, every conversation ends — and simulator = ledger = summary still."""
    import socket

    scenario = tmp_path / "faulty.toml"
    text = SHIPPED.read_text()
    assert FAULTY in text
    scenario.write_text(text.replace(FAULTY, "reply_timeout_s = 4 ", 1))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ingress = _Ingress(f"http://127.0.0.1:{port}/webhook", down_s=3.0)
    faults = DeliveryFaults(duplicate_rate=0.2, reorder_rate=0.2, drop_rate=0.05)
    try:
        with SimulatorThread(_org(faults, retry_s=1.0)) as sim, httpx.Client(base_url=sim.url) as http:
            http.patch(f"/api/v2/conversations/messaging/integrations/open/{INTEGRATION}", headers=token(http),
                       json={"outboundNotificationWebhookUrl": ingress.url}).raise_for_status()
            code, s, out = _run(scenario, tmp_path, sim.url, "--rate", "5", "--duration", "5s", "--workers", "2",
                                "--webhook", f"127.0.0.1:{port}", "--webhook-url", ingress.url)
            deliveries = _delivered(sim.url, s.get("run_id", "?"))
    finally:
        ingress.close()
    assert code in (0, 1) and "Traceback" not in out, out[-3000:]
    convs = _agree(tmp_path, s, deliveries)
    m = s["messaging"]
    assert m["receiver"]["duplicate"] > 0 and m["out_of_order"] > 0
    retried = [d for d in deliveries if any(a["status"] == 503 for a in d["attempts"])]
    assert ingress.refused > 0 and retried and all(d["outcome"] in ("delivered", "dropped") for d in deliveries)
    unanswered = sum(1 for c in convs for t in c["turns"] if t["status"] == 200 and not t["replies"])
    assert unanswered == m["messages_unanswered"] == sum(1 for c in convs if c["end"] == "no_reply")
    assert all(c["end"] in ("script_ended", "transferred", "no_reply") for c in convs)
