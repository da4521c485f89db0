"""Open Messaging: conversations/s and replies/s one core of flowsim sustains — its customers' messages out, the
platform's signed replies in through its webhook receiver — beside a hand-written Locust user doing the same
exchange (FastHttpUser posting, a gevent receiver checking each signature and routing by channel.to.id), side by
side in one run, rounds interleaved, medians.

    python bench/bench_messaging.py [--rounds 3] [--seconds 15] [--rate 15] [--smoke]

On a two-core machine the simulator (core 1) cannot outrun a generator (core 0): every webhook delivery costs it
more than the generator's receipt does, so a generator driven flat out measures the simulator. Both generators are
therefore offered the same rate the simulator keeps up with (``--rate`` conversations/s), and what each sustains on
a whole core is projected from its own CPU time: achieved rate / (CPU seconds / wall seconds). Figures a
generator did not achieve (replies lost, conversations late) are printed beside. A conversation is "hi" (three
replies) and asking for an agent (two replies). flowsim waits ``settle_s`` (200 ms) after a message's last reply
and checks every reply; the hand-written user knows how many replies come.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _tools import ROOT, free_port, get_token, median, require, start_simulator, table, unlimited_org
from bench_conversations import cpu_s

INTEGRATION = "0be11a5e-0000-4000-8000-000000000030"
SECRET = "flowsim-local-webhook-secret"
FLOW = "3e55a9e0-0000-4000-8000-000000000020"
SCENARIO = """
[scenario]
name = "bench-messaging"
kind = "messaging"
max_concurrency = {users}
tokens_per_client = 1
think_time_s = 0
tag_prefix = "bench"
[messaging]
integration = "%s"
reply_timeout_s = 10
settle_s = 0.2
transferred_when = "connecting you to an agent"
tag_conversations = false
[[flows]]
id = "%s"
[[flows.messages]]
say = "hi"
expect = {{ contains = "what can I help you with" }}
[[flows.messages]]
say = "I want to talk to an agent"
expect = {{ ends = "transferred" }}
[[stages]]
duration = "{seconds}s"
rate = {rate}
""" % (INTEGRATION, FLOW)


def bench_org(tmp: Path) -> Path:
    org = unlimited_org(tmp)
    org.write_text(org.read_text().replace("reply_latency_ms = { median = 150, p99 = 900 }",
                                           "reply_latency_ms = { median = 0.001, p99 = 0.002 }"))
    return org


def _run(cmd: list[str], env: dict[str, str], cwd: Path, seconds: int) -> tuple[str, float]:
    """stdout, and the share of a core the generator used over the middle of its run (from 3 s after it started,
    start-up done, for ``seconds`` - 2 s)."""
    began = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    try:
        time.sleep(3.0)
        first = cpu_s(proc.pid)
        time.sleep(max(0.5, seconds - 2.0))
        share = (cpu_s(proc.pid) - first) / max(0.5, seconds - 2.0)
        out, _ = proc.communicate(timeout=seconds + 120 - (time.monotonic() - began))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out, share


def flowsim(url: str, tmp: Path, *, rate: float, seconds: int, users: int) -> tuple[dict, float]:  # type: ignore[type-arg]
    sc = tmp / "bench.toml"
    sc.write_text(SCENARIO.format(users=users, seconds=seconds, rate=rate))
    summary = tmp / "summary.json"
    summary.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESYS_")}
    env["FLOWSIM_LOG_LEVEL"] = "warning"
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless",
           "--only-summary", "--flowsim-scenario", str(sc), "--flowsim-target", url, "--flowsim-ledger-dir",
           str(tmp / "runs"), "--flowsim-summary-json", str(summary), "--skip-log"]
    _out, share = _run(cmd, env, tmp, seconds)
    return dict(json.loads(summary.read_text())), share


def reference(url: str, token: str, *, rate: float, seconds: int, users: int) -> tuple[float, float, int, float]:
    """Conversations/s (completed: replies / 5), replies/s, replies that never came, and the core share of the
    hand-written user."""
    port = free_port()
    httpx.patch(f"{url}/api/v2/conversations/messaging/integrations/open/{INTEGRATION}",
                headers={"Authorization": f"Bearer {token}"},
                json={"outboundNotificationWebhookUrl": f"http://127.0.0.1:{port}/webhook"}).raise_for_status()
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_WEBHOOK_PORT": str(port), "BENCH_SECRET": SECRET,
           "BENCH_INTEGRATION": INTEGRATION, "BENCH_RATE_PER_USER": str(rate / users)}
    out, share = _run(["taskset", "-c", "0", sys.executable, "-m", "locust", "-f",
                       str(Path(__file__).parent / "_reference_users.py"), "FastHttpMessaging", "--headless",
                       "-u", str(users), "-r", str(users), "--run-time", f"{seconds}s", "-H", url, "--json",
                       "--skip-log", "--only-summary"], env, Path(__file__).parent, seconds)
    stats = {s["name"]: s for s in json.loads(out)}
    sent, reply = stats.get("open message"), stats.get("reply")
    if sent is None or reply is None:
        print(f"FastHttpMessaging: no {'reply' if sent else 'message'} within {seconds} s: counted as 0/s", flush=True)
        return 0.0, 0.0, 0, share
    # Locust stops its users at --run-time, mid-conversation: completed conversations are counted by their replies.
    span = max(reply["last_request_timestamp"], sent["last_request_timestamp"]) - sent["start_time"]
    replies = reply["num_requests"] - reply["num_failures"]
    return replies / 5 / span, replies / span, reply["num_failures"], share


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--rate", type=float, default=15.0, help="conversations/s offered to both (default 15)")
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--smoke", action="store_true", help="one round of 4 s at 10/s (the test suite runs this)")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.seconds, args.rate = 1, 4, 10.0
    require("taskset")
    names = ("flowsim", "FastHttpUser")
    res: dict[str, dict[str, list[float]]] = {n: {"conv": [], "replies": [], "share": []} for n in names}
    sim_cpu: dict[str, list[float]] = {n: [] for n in names}
    checks = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        org = bench_org(tmp)
        for i in range(args.rounds):
            # A fresh simulator for each command: one generator's leftover deliveries (retried to a receiver that
            # has gone) never load the simulator the next one measures against.
            sim, url = start_simulator(1, org)
            try:
                before, began = cpu_s(sim.pid), time.monotonic()
                s, share = flowsim(url, tmp, rate=args.rate, seconds=args.seconds, users=args.users)
                sim_cpu["flowsim"].append((cpu_s(sim.pid) - before) / (time.monotonic() - began))
                m = s["messaging"]
                for k, v in (("conv", m["conversations"] / args.seconds), ("replies", m["replies"] / args.seconds),
                             ("share", share)):
                    res["flowsim"][k].append(v)
                checks.append((m["conversations"], m["endings"], m["conversations_failing_expectations"],
                               m["receiver"]))
            finally:
                sim.terminate()
                sim.wait()
            sim, url = start_simulator(1, org)
            try:
                before, began = cpu_s(sim.pid), time.monotonic()
                cps, rps, missing, share = reference(url, get_token(url), rate=args.rate, seconds=args.seconds,
                                                     users=args.users)
                sim_cpu["FastHttpUser"].append((cpu_s(sim.pid) - before) / (time.monotonic() - began))
                for k, v in (("conv", cps), ("replies", rps), ("share", share)):
                    res["FastHttpUser"][k].append(v)
                if missing:
                    print(f"FastHttpUser: {missing} replies never came within 10 s", flush=True)
            finally:
                sim.terminate()
                sim.wait()
            print(f"round {i + 1}: " + ", ".join(f"{n} {r['conv'][-1]:,.1f} conv/s {r['replies'][-1]:,.1f} "
                                                 f"replies/s at {r['share'][-1]:.0%} of a core"
                                                 for n, r in res.items()), flush=True)

    def per_core(n: str, k: str) -> list[float]:
        return [v / sh for v, sh in zip(res[n][k], res[n]["share"]) if sh > 0]

    fl, ref = per_core("flowsim", "replies"), per_core("FastHttpUser", "replies")
    ratio = f"{median([a / b for a, b in zip(fl, ref) if b]):.2f}" if fl and ref else "–"
    print()
    print(f"one generator core, medians of {args.rounds} interleaved rounds of {args.seconds} s at {args.rate:g} "
          f"conversations/s offered, {args.users} users; a conversation = 2 messages, 5 signed replies")
    print(table([["generator", "conversations/s", "replies/s", "core used", "conversations/s per core",
                  "replies/s per core", "replies per core vs FastHttpUser"],
                 *[[n, f"{median(res[n]['conv']):,.1f}", f"{median(res[n]['replies']):,.1f}",
                    f"{median(res[n]['share']):.0%}", f"{median(per_core(n, 'conv')):,.0f}" if per_core(n, "conv") else "–",
                    f"{median(per_core(n, 'replies')):,.0f}" if per_core(n, "replies") else "–",
                    ratio if n == "flowsim" else "1.00"] for n in names]]))
    print("simulator CPU (core 1) over each command, medians: "
          + ", ".join(f"{k} {median(v):.0%}" for k, v in sim_cpu.items()))
    print("flowsim's conversations per round (conversations, endings, broke an expectation, receiver):")
    for c in checks:
        print(f"  {c}")


if __name__ == "__main__":
    main()
