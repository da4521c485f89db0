"""The full flowsim pipeline (identity + tag + ledger + launch) against Locust's HttpUser and
FastHttpUser, one generator core each, side by side in one run; then flowsim's rate error.

    python bench/bench_harness.py [--rounds 3] [--seconds 15]

Target: nginx pinned to core 1 answering the launch (and the OAuth and flow look-ups preflight makes)
with static JSON, so the generator on core 0 is what is measured. Rounds are interleaved; medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _tools import LAUNCH_BODY, ROOT, STATIC_RESPONSE, free_port, median, require, table

sys.path.insert(0, str(ROOT))
from sim.platform import models  # noqa: E402
from sim.platform.org import default_org  # noqa: E402

SCENARIO = """
[scenario]
name = "bench"
target = "embedded"
max_concurrency = {users}
follow = false
tokens_per_client = 1
[[flows]]
id = "7e57f1e0-0000-4000-8000-000000000001"
[flows.input]
"Flow.customerName" = "{{identity.full_name}}"
"Flow.customerEmail" = "{{identity.email}}"
"Flow.customerPhone" = "{{identity.phone}}"
"Flow.identityId" = "{{identity.id}}"
"Flow.priority" = 3
[[stages]]
duration = "{seconds}s"
rate = {rate}
"""


def start_platform_nginx(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """nginx on core 1 that answers OAuth, the flow look-ups and launches with static JSON."""
    org = default_org()
    flow = org.flows[0]
    # Served as files: their "$schema" keys would read as nginx variables inside a `return` string.
    (tmp / "flow.json").write_text(json.dumps(models.flow_json(flow, org)))
    (tmp / "version.json").write_text(json.dumps(models.version_json(flow, flow.version)))
    token = '{"access_token":"bench-token","token_type":"bearer","expires_in":86400}'
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1; daemon off; error_log {tmp}/nginx-error.log; pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off; client_body_temp_path {tmp}; keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    default_type application/json;
    location = /oauth/token {{ return 200 '{token}'; }}
    location = /api/v2/flows/{flow.id} {{ alias {tmp}/flow.json; }}
    location = /api/v2/flows/{flow.id}/versions/{flow.version} {{ alias {tmp}/version.json; }}
    location / {{ return 200 '{STATIC_RESPONSE}'; }}
  }}
}}
""")
    proc = subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", str(conf), "-p", str(tmp)])
    subprocess.run(["sleep", "0.5"])
    return proc, f"http://127.0.0.1:{port}"


def locust_reference(user: str, url: str, seconds: int, users: int) -> float:
    env = {**os.environ, "BENCH_BODY": LAUNCH_BODY}
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "locust", "-f",
                          str(Path(__file__).parent / "_reference_users.py"), user, "--headless", "-u", str(users),
                          "-r", str(users), "--run-time", f"{seconds}s", "-H", url, "--json", "--skip-log",
                          "--only-summary"], capture_output=True, text=True, env=env, timeout=seconds + 60).stdout
    stats = json.loads(out)
    launch = next(s for s in stats if s["name"] == "launch")
    return float(launch["num_requests"] / (launch["last_request_timestamp"] - launch["start_time"]))


def flowsim_run(url: str, tmp: Path, *, rate: float, seconds: int, users: int,
                transport: str = "gevent") -> dict[str, float]:
    sc = tmp / f"bench-{rate}.toml"
    sc.write_text(SCENARIO.format(users=users, seconds=seconds, rate=rate))
    summary = tmp / "summary.json"
    env = {**os.environ, "GENESYS_CLIENT_ID": "bench", "GENESYS_CLIENT_SECRET": "bench", "FLOWSIM_LOG_LEVEL": "warning",
           "FLOWSIM_TRANSPORT": transport}
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless",
           "-u", str(users), "-r", str(users), "--run-time", f"{seconds + 20}s", "--only-summary",
           "--flowsim-scenario", str(sc), "--flowsim-target", url, "--flowsim-ledger-dir", str(tmp / "runs"),
           "--flowsim-summary-json", str(summary), "--skip-log",
           # nginx on loopback is no flowsim simulator, so the vendor's rules for a real org apply to it: this
           # benchmark declares its own approval (the guard itself stays as strict as it is).
           "--flowsim-approval", "BENCH-LOOPBACK-NGINX", "--flowsim-outside-window"]
    subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 90, cwd=tmp)
    s = json.loads(summary.read_text())
    return {"achieved": s["achieved_rate_per_s"], "launched": s["launched"], "missed": s["missed_starts"],
            "late_p99_ms": (s["latency_from_intended_ms"]["p99"] or 0.0), "p99_ms": s["latency_ms"]["p99"] or 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--smoke", action="store_true",
                    help="one round of 2 s and one accuracy rate: proves the benchmark runs (the test suite uses it)")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.seconds = 1, 2
    require("nginx", "taskset")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ngx, url = start_platform_nginx(tmp)
        try:
            res: dict[str, list[float]] = {"flowsim": [], "flowsim/httpcore": [], "HttpUser": [], "FastHttpUser": []}
            for i in range(args.rounds):
                # Max rate: ask for more than one core can send; what gets sent is the ceiling. (Far more
                # would measure the cost of counting missed starts instead.)
                for key, transport in (("flowsim", "gevent"), ("flowsim/httpcore", "httpx")):
                    fs = flowsim_run(url, tmp, rate=2500, seconds=args.seconds, users=args.users, transport=transport)
                    res[key].append(fs["launched"] / args.seconds)
                res["HttpUser"].append(locust_reference("HttpLaunch", url, args.seconds, args.users))
                res["FastHttpUser"].append(locust_reference("FastHttpLaunch", url, args.seconds, args.users))
                print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in res.items()), flush=True)
            accuracy = []
            for rate in (100,) if args.smoke else (10, 100, 500):
                r = flowsim_run(url, tmp, rate=rate, seconds=args.seconds, users=args.users)
                accuracy.append([f"{rate}/s", f"{r['achieved']:.2f}", f"{100 * (r['achieved'] - rate) / rate:+.2f}%",
                                 f"{r['launched']:.0f}", f"{r['missed']:.0f}", f"{r['p99_ms']:.2f}",
                                 f"{r['late_p99_ms']:.2f}"])
        finally:
            ngx.terminate()
            ngx.wait()
    fs, fc, hu, fh = (median(res[k]) for k in ("flowsim", "flowsim/httpcore", "HttpUser", "FastHttpUser"))

    def ratio(a: str, b: str) -> float:
        # Median of per-round ratios: the rounds share the machine's noise, medians of levels do not.
        return median([x / y for x, y in zip(res[a], res[b])])

    print()
    print(f"launches/s on one core, medians of {args.rounds} interleaved rounds of {args.seconds} s, {args.users} users")
    print(table([["generator", "launches/s", "vs HttpUser", "vs FastHttpUser"],
                 ["flowsim (identity+tag+ledger+launch)", f"{fs:,.0f}", f"{ratio('flowsim', 'HttpUser'):.2f}",
                  f"{ratio('flowsim', 'FastHttpUser'):.2f}"],
                 ["flowsim, httpx's default transport", f"{fc:,.0f}", f"{ratio('flowsim/httpcore', 'HttpUser'):.2f}",
                  f"{ratio('flowsim/httpcore', 'FastHttpUser'):.2f}"],
                 ["Locust HttpUser (same body)", f"{hu:,.0f}", "1.00", f"{ratio('HttpUser', 'FastHttpUser'):.2f}"],
                 ["Locust FastHttpUser (same body)", f"{fh:,.0f}", f"{ratio('FastHttpUser', 'HttpUser'):.2f}", "1.00"]]))
    print("ratios are medians of per-round ratios; launches/s are medians of levels")
    print()
    print(f"flowsim rate accuracy, {args.seconds} s per rate")
    print(table([["target", "achieved/s", "error", "launched", "missed", "p99 ms", "p99 from intended ms"],
                 *accuracy]))


if __name__ == "__main__":
    main()
