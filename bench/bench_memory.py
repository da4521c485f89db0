"""Memory over a long run: RSS growth of one Locust process running flowsim at a fixed rate, beside
Locust's own FastHttpUser at the same rate (the reference), and of the simulator serving them.

    python bench/bench_memory.py [--seconds 600] [--rate 200] [--smoke]

Samples RSS every 5 s, drops the first 60 s (imports, pools, caches warming), fits a line through the
rest and prints the growth per hour of run and per million launches, and flowsim / reference as a ratio.
The simulator's growth is its execution store filling up to its bounds (200,000 executions or 256 MiB
of bodies by default), not a leak: it stops there. ``--smoke``: 6 s at 50/s, sampled every second after 2 s
(the test suite runs it so that the benchmark cannot rot; its figures mean little).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._tools import LAUNCH_BODY, ROOT, get_token, start_simulator, table, unlimited_org  # noqa: E402

WARMUP_S = 60.0
SAMPLE_S = 5.0


def slope_per_s(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, bytes) samples, bytes per second."""
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mb = sum(b for _, b in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    return sum((t - mt) * (b - mb) for t, b in samples) / den if den else 0.0


def watch(proc: subprocess.Popen[bytes], sim_pid: int, seconds: float, *, warmup_s: float = WARMUP_S,
          every_s: float = SAMPLE_S) -> tuple[list[tuple[float, float]], ...]:
    me, sim = psutil.Process(proc.pid), psutil.Process(sim_pid)
    start = time.monotonic()
    gen: list[tuple[float, float]] = []
    srv: list[tuple[float, float]] = []
    while proc.poll() is None and time.monotonic() - start < seconds + 120:
        t = time.monotonic() - start
        try:
            if t >= warmup_s:
                gen.append((t, float(me.memory_info().rss)))
                srv.append((t, float(sim.memory_info().rss)))
        except psutil.NoSuchProcess:
            break
        time.sleep(every_s)
    proc.wait(timeout=120)
    return gen, srv


def run_flowsim(url: str, tmp: Path, rate: float, seconds: int) -> subprocess.Popen[bytes]:
    sc = tmp / "mem.toml"
    sc.write_text((ROOT / "scenarios" / "smoke.toml").read_text()
                  .replace("follow = true", "follow = false").replace('max_concurrency = "auto"', "max_concurrency = 100")
                  .replace('tokens_per_client = "auto"', "tokens_per_client = 4")
                  .replace('duration = "30s"\nrate = 2', f'duration = "{seconds}s"\nrate = {rate}'))
    env = {**os.environ, "GENESYS_CLIENT_ID": "flowsim-load-client", "GENESYS_CLIENT_SECRET": "flowsim-local-secret",
           "FLOWSIM_LOG_LEVEL": "warning"}
    return subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"),
                             "--headless", "-u", "100", "-r", "100", "--run-time", f"{seconds + 60}s", "--only-summary",
                             "--flowsim-scenario", str(sc), "--flowsim-target", url,
                             "--flowsim-ledger-dir", str(tmp / "runs")], env=env, cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_reference(url: str, tmp: Path, rate: float, seconds: int) -> subprocess.Popen[bytes]:
    users = 100
    # A real token: the reference's launches are accepted and stored like flowsim's, not answered 401.
    env = {**os.environ, "BENCH_BODY": LAUNCH_BODY, "BENCH_RATE_PER_USER": str(rate / users),
           "BENCH_TOKEN": get_token(url)}
    return subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "locust", "-f",
                             str(ROOT / "bench" / "_reference_users.py"), "PacedFastHttpLaunch", "--headless",
                             "-u", str(users), "-r", str(users), "--run-time", f"{seconds}s", "--only-summary",
                             "-H", url], env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--smoke", action="store_true", help="one short run (the test suite runs this)")
    args = ap.parse_args()
    warmup_s, every_s = (2.0, 1.0) if args.smoke else (WARMUP_S, SAMPLE_S)
    if args.smoke:
        args.seconds, args.rate = 6, 50.0
    rows = [["process", "RSS after warm-up MB", "RSS at end MB", "growth MB/hour", "MB per 1M launches"]]
    growth: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sim, url = start_simulator(1, unlimited_org(tmp))
        get_token(url)
        try:
            for name, start in (("flowsim (Locust process)", run_flowsim), ("Locust FastHttpUser", run_reference)):
                gen, srv = watch(start(url, tmp, args.rate, args.seconds), sim.pid, args.seconds, warmup_s=warmup_s,
                                 every_s=every_s)
                for label, samples in ((name, gen), (f"simulator, during {name.split(' ')[0]}", srv)):
                    per_h = slope_per_s(samples) * 3600 / 1e6
                    growth[label] = per_h
                    rows.append([label, f"{samples[0][1] / 1e6:.1f}", f"{samples[-1][1] / 1e6:.1f}", f"{per_h:.1f}",
                                 f"{per_h / (args.rate * 3600) * 1e6:.1f}"])
        finally:
            sim.terminate()
    print(f"{args.seconds} s at {args.rate:g} launches/s, RSS every {every_s:g} s after {warmup_s:.0f} s of warm-up "
          f"(growth = least-squares slope, extrapolated)")
    print(table(rows))
    ref = growth["Locust FastHttpUser"]
    print(f"flowsim growth / FastHttpUser growth: {growth['flowsim (Locust process)'] / ref:.2f}" if ref > 0 else
          "reference did not grow")


if __name__ == "__main__":
    main()
