"""Bot conversations: sessions/s and turns/s one flowsim process sustains on one core, beside Locust's own
users running the same conversation by hand (HttpUser, FastHttpUser) and flowsim's workflow launches/s —
side by side in one run, rounds interleaved, medians.

    python bench/bench_conversations.py [--rounds 3] [--seconds 15] [--smoke]

Target: the simulator on core 1 with the per-token rate limit lifted and the test bot's turn latency ~0,
so the generator on core 0 is what is measured (its CPU is printed: a simulator near 100 % would be the
limit instead). Each conversation is 5 turns after the session start (NoOp, NoOp, three lines), no think
time: flowsim's script checks every answer; the reference users do not.
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

from _tools import ROOT, get_token, median, require, start_simulator, table, unlimited_org
from bench_harness import SCENARIO as WORKFLOW  # the same workflow launch bench_harness measures

TEST_BOT = "b07f1e00-0000-4000-8000-000000000010"
CONVERSATION = """
[scenario]
name = "bench-conversation"
kind = "conversation"
max_concurrency = {users}
tokens_per_client = 1
think_time_s = 0
[[flows]]
id = "%s"
[[flows.turns]]
say = "where is my order {{run.seq}}"
expect = {{ next_action = "WaitForInput" }}
[[flows.turns]]
say = "my name is {{identity.full_name}}"
[[flows.turns]]
say = "yes"
expect = {{ next_action = "Exit", exit_reason = "TriggeredByFlow" }}
[[stages]]
duration = "{seconds}s"
rate = {rate}
""" % TEST_BOT
def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_org(tmp: Path) -> Path:
    org = unlimited_org(tmp)
    org.write_text(org.read_text().replace("turn_latency_ms = { median = 25, p99 = 150 }",
                                           "turn_latency_ms = { median = 0.001, p99 = 0.002 }"))
    return org


def flowsim(url: str, tmp: Path, template: str, *, rate: float, seconds: int, users: int) -> dict:  # type: ignore[type-arg]
    sc = tmp / "bench.toml"
    sc.write_text(template.format(users=users, seconds=seconds, rate=rate))
    summary = tmp / "summary.json"
    summary.unlink(missing_ok=True)
    env = {**os.environ, "FLOWSIM_LOG_LEVEL": "warning", "GENESYS_CLIENT_ID": "flowsim-load-client",
           "GENESYS_CLIENT_SECRET": "flowsim-local-secret"}
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless",
           "--only-summary", "--flowsim-scenario", str(sc), "--flowsim-target", url, "--flowsim-ledger-dir",
           str(tmp / "runs"), "--flowsim-summary-json", str(summary), "--skip-log"]
    subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 120, cwd=tmp)
    return dict(json.loads(summary.read_text()))


def reference(user: str, url: str, token: str, seconds: int, users: int) -> tuple[float, float]:
    """Sessions/s and turns/s of a Locust reference user."""
    env = {**os.environ, "BENCH_BODY": "{}", "BENCH_TOKEN": token, "BENCH_BOT": TEST_BOT}
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "locust", "-f",
                          str(Path(__file__).parent / "_reference_users.py"), user, "--headless", "-u", str(users),
                          "-r", str(users), "--run-time", f"{seconds}s", "-H", url, "--json", "--skip-log",
                          "--only-summary"], capture_output=True, text=True, env=env, timeout=seconds + 60).stdout
    stats = {s["name"]: s for s in json.loads(out)}
    start, turn = stats.get("bot session start"), stats.get("bot turn")
    if start is None or turn is None:  # a round too short, or a machine too busy, for one conversation to start
        print(f"{user}: no {'turn' if start else 'session start'} answered within {seconds} s: its rates are "
              "counted as 0/s and its ratios left out", flush=True)
        return 0.0, 0.0
    span = turn["last_request_timestamp"] - start["start_time"]
    return start["num_requests"] / span, turn["num_requests"] / span


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--smoke", action="store_true", help="one round of 2 s (the test suite runs this)")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.seconds = 1, 2
    require("taskset")
    keys = ("flowsim sessions", "flowsim turns", "HttpUser sessions", "HttpUser turns", "FastHttpUser sessions",
            "FastHttpUser turns", "flowsim launches")
    res: dict[str, list[float]] = {k: [] for k in keys}
    sim_cpu: dict[str, list[float]] = {"flowsim": [], "HttpUser": [], "FastHttpUser": [], "flowsim launches": []}
    checks = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sim, url = start_simulator(1, bench_org(tmp))
        try:
            token = get_token(url)
            def busy(name: str, before: float, began: float) -> None:
                sim_cpu[name].append((cpu_s(sim.pid) - before) / (time.monotonic() - began))

            for i in range(args.rounds):
                # Ask for more than one core can start: what gets through is the ceiling. (The simulator's CPU
                # share is over the whole command, start-up included: a lower bound of its load while busy.)
                before, began = cpu_s(sim.pid), time.monotonic()
                s = flowsim(url, tmp, CONVERSATION, rate=600, seconds=args.seconds, users=args.users)
                busy("flowsim", before, began)
                cv = s["conversations"]
                res["flowsim sessions"].append(cv["sessions"] / args.seconds)
                res["flowsim turns"].append(cv["turns"] / args.seconds)
                checks.append((cv["sessions"], cv["endings"], cv["sessions_failing_expectations"]))
                for user in ("HttpUser", "FastHttpUser"):
                    before, began = cpu_s(sim.pid), time.monotonic()
                    sps, tps = reference(user.replace("User", "Conversation"), url, token, args.seconds, args.users)
                    busy(user, before, began)
                    res[f"{user} sessions"].append(sps)
                    res[f"{user} turns"].append(tps)
                before, began = cpu_s(sim.pid), time.monotonic()
                w = flowsim(url, tmp, WORKFLOW, rate=2500, seconds=args.seconds, users=args.users)
                busy("flowsim launches", before, began)
                res["flowsim launches"].append(w["launched"] / args.seconds)
                print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in res.items()), flush=True)
        finally:
            sim.terminate()
            sim.wait()

    def ratio(a: str, b: str) -> str:
        pairs = [x / y for x, y in zip(res[a], res[b]) if y]
        return f"{median(pairs):.2f}" if pairs else "–"

    print()
    print(f"one generator core, medians of {args.rounds} interleaved rounds of {args.seconds} s, {args.users} users; "
          "a conversation = session start + 5 turns")
    print(table([["generator", "sessions/s", "turns/s", "requests/s", "sessions vs HttpUser",
                  "sessions vs FastHttpUser"],
                 *[[name, f"{median(res[f'{name} sessions']):,.0f}", f"{median(res[f'{name} turns']):,.0f}",
                    f"{median([a + b for a, b in zip(res[f'{name} sessions'], res[f'{name} turns'])]):,.0f}",
                    ratio(f"{name} sessions", "HttpUser sessions"), ratio(f"{name} sessions", "FastHttpUser sessions")]
                   for name in ("flowsim", "HttpUser", "FastHttpUser")],
                 ["flowsim workflow launches", "", "", f"{median(res['flowsim launches']):,.0f}", "", ""]]))
    print("simulator CPU (core 1) over each command, medians: "
          + ", ".join(f"{k} {median(v):.0%}" for k, v in sim_cpu.items()))
    print("flowsim's conversations per round (sessions, endings, sessions that broke an expectation):")
    for c in checks:
        print(f"  {c}")


if __name__ == "__main__":
    main()
