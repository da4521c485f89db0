"""Simulator launch throughput and latency on one core, side by side with a static nginx (the ceiling), and the
most one flowsim harness process launches on one core, measured in the same run (the simulator must outrun it).

    python bench/bench_simulator.py [--rounds 3] [--seconds 10] [--smoke]

Server (simulator or nginx) on core 0, load generator on core 1. Closed-loop maximum rate with
wrk (1 thread, 50 connections), then open-loop latency at 1,000 launches/s, evenly spaced (bench/_openloop.py).
The harness figure: flowsim (one Locust process on core 0) asked for more than it can send, against a static
nginx on core 1 (bench_harness.py's stand-in). Rounds are interleaved; medians are printed, with ratios.
``--smoke``: one short round (the test suite runs it so that the benchmark cannot rot).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _tools import (get_token, open_loop, median, require, start_nginx, start_simulator, table,
                    unlimited_org, wrk)
from bench_harness import flowsim_run, start_platform_nginx

HARNESS_ASK_PER_S = 5000
"""What the harness is asked for when its ceiling is measured: more than one process can send."""


def harness_ceiling(tmp: Path, seconds: int) -> float:
    """Launches/s one flowsim process (core 0) achieves when asked for more than it can send (nginx on core 1)."""
    own = tmp / "harness"  # its own nginx's files, apart from the static nginx's
    own.mkdir(exist_ok=True)
    ngx, url = start_platform_nginx(own)
    try:
        return flowsim_run(url, own, rate=HARNESS_ASK_PER_S, seconds=seconds, users=200)["achieved"]
    finally:
        ngx.terminate()
        ngx.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="one round of 2 s (the test suite runs this)")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.seconds = 1, 2
    require("wrk", "nginx", "taskset")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sim, sim_url = start_simulator(0, unlimited_org(tmp))
        ngx, ngx_url = start_nginx(0, tmp)
        try:
            token = get_token(sim_url)
            max_sim, max_ngx, lat_sim, lat_ngx, harness = [], [], [], [], []
            for i in range(args.rounds):
                harness.append(harness_ceiling(tmp, args.seconds))
                max_sim.append(wrk(sim_url, token, core=1, seconds=args.seconds))
                max_ngx.append(wrk(ngx_url, token, core=1, seconds=args.seconds))
                lat_sim.append(open_loop(sim_url, token, core=1, rate_per_s=1000, seconds=args.seconds))
                lat_ngx.append(open_loop(ngx_url, token, core=1, rate_per_s=1000, seconds=args.seconds))
                print(f"round {i + 1}: simulator {max_sim[-1]:,.0f}/s, nginx {max_ngx[-1]:,.0f}/s, "
                      f"one flowsim process {harness[-1]:,.0f}/s; "
                      f"p99 at 1000/s: simulator {lat_sim[-1]['p99_ms']:.2f} ms, nginx {lat_ngx[-1]['p99_ms']:.2f} ms",
                      flush=True)
        finally:
            sim.terminate()
            ngx.terminate()
            sim.wait()
            ngx.wait()

    def m(rows: list[dict[str, float]], key: str) -> float:
        return median([r[key] for r in rows])

    s, n = median(max_sim), median(max_ngx)
    print()
    print(f"medians of {args.rounds} interleaved rounds, {args.seconds} s each; server on core 0, load on core 1")
    print(table([
        ["", "simulator", "nginx (static)", "simulator/nginx"],
        ["max launches/s (wrk -c50)", f"{s:,.0f}", f"{n:,.0f}", f"{s / n:.2f}"],
        ["at 1000/s: achieved/s", f"{m(lat_sim, 'rate_per_s'):,.0f}", f"{m(lat_ngx, 'rate_per_s'):,.0f}", ""],
        ["at 1000/s: p50 ms", f"{m(lat_sim, 'p50_ms'):.2f}", f"{m(lat_ngx, 'p50_ms'):.2f}", ""],
        ["at 1000/s: p95 ms", f"{m(lat_sim, 'p95_ms'):.2f}", f"{m(lat_ngx, 'p95_ms'):.2f}", ""],
        ["at 1000/s: p99 ms", f"{m(lat_sim, 'p99_ms'):.2f}", f"{m(lat_ngx, 'p99_ms'):.2f}", ""],
        ["at 1000/s: max ms", f"{m(lat_sim, 'max_ms'):.2f}", f"{m(lat_ngx, 'max_ms'):.2f}", ""],
        ["at 1000/s: non-200", f"{m(lat_sim, 'non_200'):.0f}", "", ""],
    ]))
    h = median(harness)
    print(f"simulator max / one flowsim harness process ({h:,.0f}/s, measured above against a static nginx): "
          f"{s / h:.1f}x (target >= 2x)")
    print(f"simulator p99 at 1000/s: {m(lat_sim, 'p99_ms'):.2f} ms (target < 5 ms)")


if __name__ == "__main__":
    main()
