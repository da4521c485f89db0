"""How long a short run keeps its user waiting: from `flowsim run` starting to its first launch, and from its last
answer to the command returning. Also Locust's own bare start-up beside it, for reference (the reference tool's
floor: `locust --headless` with a trivial user class and nothing to set up).

    python bench/bench_startup.py [--rounds 5] [--workers 0 2] [--smoke]

Each round: `flowsim run scenarios/smoke.toml --rate 5 --duration 4s` with no follow-up polling (the scenario's
follow turned off), against the embedded simulator. first launch = summary.first_send_at − command start;
return = command end − the last launch's answer (from the ledger). Medians over the rounds."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.load.ledger import ledger_files, read_records  # noqa: E402

BARE_LOCUSTFILE = """
from locust import User, task, constant
class Idle(User):
    wait_time = constant(1)
    @task
    def nothing(self):
        pass
"""


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def flowsim_round(workers: int, tmp: Path) -> tuple[float, float]:
    scenario = tmp / "startup.toml"
    scenario.write_text((ROOT / "scenarios" / "smoke.toml").read_text().replace("follow = true", "follow = false"))
    summary = tmp / "s.json"
    start = time.time()
    r = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(scenario), "--rate", "5", "--duration", "4s",
                        "--workers", str(workers), "--summary-json", str(summary), "--ledger-dir", str(tmp / "runs"),
                        "--plain"], capture_output=True, text=True, cwd=tmp, timeout=120,
                       env={k: v for k, v in __import__("os").environ.items() if not k.startswith("GENESYS_")})
    end = time.time()
    if r.returncode != 0:
        raise SystemExit(f"bench: flowsim run failed (exit {r.returncode}):\n{(r.stdout + r.stderr)[-2000:]}")
    s = json.loads(summary.read_text())
    last_answer = max(rec["answered_at"] for rec in read_records(ledger_files(tmp / "runs" / s["run_id"]))
                      if rec["event"] == "launch")
    return _epoch(s["first_send_at"]) - start, end - last_answer


def bare_locust_round(tmp: Path) -> float:
    """Locust alone: command start to its process ending, with a 1 s run time (so start-up = total − 1 s)."""
    f = tmp / "bare.py"
    f.write_text(BARE_LOCUSTFILE)
    start = time.time()
    subprocess.run([sys.executable, "-m", "locust", "-f", str(f), "--headless", "-u", "1", "-r", "1", "-t", "1s",
                    "--only-summary"], capture_output=True, timeout=60, cwd=tmp)
    return time.time() - start - 1.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--smoke", action="store_true", help="one round, no workers (the test suite runs this)")
    a = p.parse_args()
    rounds, workers = (1, [0]) if a.smoke else (a.rounds, a.workers)
    with tempfile.TemporaryDirectory(prefix="flowsim-bench-") as d:
        tmp = Path(d)
        bare = [bare_locust_round(tmp) for _ in range(rounds)]
        print(f"Locust alone, command start to its run: median {statistics.median(bare):.2f} s over {rounds} round(s)")
        for w in workers:
            firsts, returns = zip(*(flowsim_round(w, tmp / f"w{w}-{i}") for i in range(rounds)
                                    if (tmp / f"w{w}-{i}").mkdir() is None))
            print(f"flowsim run, {w} worker(s): first launch {statistics.median(firsts):.2f} s after the command "
                  f"started (range {min(firsts):.2f}-{max(firsts):.2f}); returns {statistics.median(returns):.2f} s "
                  f"after the last answer (range {min(returns):.2f}-{max(returns):.2f}); {rounds} round(s)")


if __name__ == "__main__":
    main()
