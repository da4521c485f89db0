"""What a capacity search costs: wall time and steps to find a simulated knee at a given precision.

    python bench/bench_capacity.py [--knee 40] [--step-duration 10s] [--precision 0.05] [--smoke]

Starts the simulator with the built-in org whose test workflow has a capacity knee, runs
`flowsim capacity` against it and prints the answer, its error against the knee, the steps and the
time it took. ``--smoke``: a knee at 10/s, a few 2 s steps to a 30 % precision (the test suite runs it so that it cannot rot).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _tools import ROOT

sys.path.insert(0, str(ROOT))
from sim.platform.org import Capacity, default_org  # noqa: E402
from sim.platform.server import SimulatorThread  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--knee", type=float, default=40.0)
    ap.add_argument("--step-duration", default="10s")
    ap.add_argument("--precision", type=float, default=0.05)
    ap.add_argument("--slo-p95-ms", type=float, default=100.0)
    ap.add_argument("--max-error-rate", default="0.01")
    ap.add_argument("--smoke", action="store_true", help="short steps, coarse precision (the test suite runs this)")
    args = ap.parse_args()
    start = "5"
    if args.smoke:  # few, short steps: that it runs, not how well it finds the knee (tests/test_capacity_*)
        # a 20 % error SLO: 15 launches resolve it, so 2 s steps are not lengthened (flowsim capacity would)
        args.knee, args.step_duration, args.precision, start, args.max_error_rate = 10.0, "2s", 0.3, "8", "0.2"
    org = default_org()
    flows = tuple(dataclasses.replace(f, capacity=Capacity(knee_per_s=args.knee)) if i == 0 else f
                  for i, f in enumerate(org.flows))
    org = dataclasses.replace(org, flows=flows,
                              settings=dataclasses.replace(org.settings, rate_limit_per_window=10**9))
    env = {**os.environ, "GENESYS_CLIENT_ID": "flowsim-load-client", "GENESYS_CLIENT_SECRET": "flowsim-local-secret"}
    with tempfile.TemporaryDirectory() as d, SimulatorThread(org) as sim:
        out = Path(d) / "cap.json"
        began = time.monotonic()
        subprocess.run([sys.executable, "-m", "sim.cli", "capacity", str(ROOT / "scenarios" / "ramp.toml"),
                        "--target", sim.url, "--slo-p95-ms", str(args.slo_p95_ms), "--max-error-rate", args.max_error_rate, "--start", start, "--max", "500",
                        "--step-duration", args.step_duration, "--precision", str(args.precision),
                        "--summary-json", str(out), "--ledger-dir", str(Path(d) / "runs")], env=env, check=False)
        wall = time.monotonic() - began
        cap = json.loads(out.read_text())
    found = cap["sustainable_rate_per_s"]
    print(f"\nknee {args.knee}/s, step {args.step_duration}, precision {args.precision:.0%}: found {found}/s "
          f"({100 * (found - args.knee) / args.knee:+.1f}%), first failing {cap['first_failing_rate_per_s']}/s, "
          f"{len(cap['steps'])} steps, {wall:.0f} s wall time")


if __name__ == "__main__":
    main()
