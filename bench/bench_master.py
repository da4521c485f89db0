"""How far one master goes (issue #21): the master's CPU for the run's ledger stream and the coordination, with W
simulated workers sharing a total rate R, beside the least any master must pay for the same stream (the
reference): a plain Locust master merging the same workers' Locust stats reports (Locust's own listeners), plus
decoding the same ledger batches and appending their bytes to one file, flushed per batch. flowsim's master does
that and also writes each line once (de-duplicated, numbered), merges each worker's live flowsim stats (every 3 s:
HDR histograms and the per-second series) and runs the coordination: the ratio is its cost over that minimum.

    python bench/bench_master.py [--rate 2000] [--workers 1 8 32] [--seconds 20] [--smoke]

One process, no network, no Locust runner: the master's message handlers as its message greenlet runs them, on
Locust's own wire encoding (``locust.rpc.protocol.Message``). Time is simulated (a run of ``--seconds`` is played
as fast as the CPU goes) and CPU is measured with ``time.process_time``, so the figures are CPU per second of run:
a share of one core. Each worker ships a batch every 0.2 s (as ``sim.run.shipping`` does), acknowledges every grant
and is renewed every 0.5 s (``sim.run.coordination``). ``--smoke``: 3 s at 500/s with 1 and 4 workers (the suite
runs it so that the benchmark cannot rot; its figures mean little).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson
from locust.event import Events
from locust.rpc.protocol import Message
from locust.stats import RequestStats, setup_distributed_stats_event_listeners

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._tools import table  # noqa: E402
from sim.load.records import LaunchRecord  # noqa: E402
from sim.load.scenario import Stage  # noqa: E402
from sim.load.schedule import Schedule  # noqa: E402
from sim.load.stats import RunStats  # noqa: E402
from sim.run.coordination import MasterCoordinator, Partition  # noqa: E402
from sim.run.shipping import MasterLedger  # noqa: E402
from sim.run.stream import LEDGER, SHIP_EVERY_S  # noqa: E402

TICK_S = 0.1
"""The master's coordination tick (``sim.run.watch``)."""
REPORT_S = 3.0
"""Locust's worker report interval: each carries the worker's live stats since the last (``RunStats.drain``)."""


def _batches(rate: float, seconds: float, workers: list[str], coord: MasterCoordinator) -> list[tuple[float, bytes]]:
    """Every worker's messages over the run, as they would arrive: (simulated time, the message on the wire) —
    its ledger batches, and every ``REPORT_S`` its live stats (the master merges them for progress)."""
    part = {w: Partition(w, tuple(coord.epochs)) for w in workers}
    live = {w: RunStats() for w in workers}
    locust_stats = {w: RequestStats() for w in workers}
    events = {w: Events() for w in workers}
    for w in workers:
        setup_distributed_stats_event_listeners(events[w], locust_stats[w])
    next_report = REPORT_S
    pending: dict[str, list[bytes]] = {w: [] for w in workers}
    sent = {w: 0 for w in workers}
    out: list[tuple[float, bytes]] = []
    total, t0 = int(rate * seconds), coord.t0 or 0.0
    seq, t = 0, 0.0
    while t < seconds + SHIP_EVERY_S:
        t += SHIP_EVERY_S
        while seq < total and seq / rate <= t:
            w = next(x for x in workers if part[x].owner(seq) == x)
            rec = LaunchRecord(run_id="20261130120000-abcd", seq=seq, name=f"flowsim-20261130120000-abcd-{seq}",
                               flow_id="7e57f1e0-0000-4000-8000-000000000001", identity_id=f"id-{seq:08d}",
                               intended_at=t0 + seq / rate, worker=w, http_status=200, attempts=1,
                               attempt_statuses=[200], attempt_ms=[12.3], sent_at=t0 + seq / rate + 0.001,
                               answered_at=t0 + seq / rate + 0.013, latency_ms=12.3,
                               execution_id=f"{seq:08d}-0000-4000-8000-000000000000")
            pending[w].append(orjson.dumps(rec.to_json()) + b"\n")
            live[w].add(rec, t0)
            locust_stats[w].log_request("POST", "/api/v2/flows/executions", 12.3, 120)
            seq += 1
        for w in workers:
            if pending[w]:
                data = {"worker": w, "run_id": "R", "first": sent[w], "lines": pending[w]}
                out.append((t, Message(LEDGER, data, w).serialize()))
                sent[w] += len(pending[w])
                pending[w] = []
        if t >= next_report:
            next_report += REPORT_S
            for w in workers:
                data = {"flowsim": live[w].drain(), "flowsim_busy": 3}
                events[w].report_to_master.fire(client_id=w, data=data)  # Locust's own stats, as a worker adds them
                out.append((t, Message("stats", data, w).serialize()))
    return out


def _locust_master() -> Events:
    """A Locust master's stats: its own listeners merge each worker's report (``locust.stats``)."""
    events = Events()
    setup_distributed_stats_event_listeners(events, RequestStats())
    return events


def run(rate: float, seconds: float, n_workers: int, directory: Path) -> tuple[float, float, int]:
    """CPU seconds of the master (stream + coordination) and of the reference, for one simulated run."""
    workers = [f"w{i}" for i in range(n_workers)]
    coord = MasterCoordinator(Schedule((Stage(duration_s=seconds, rate_per_s=rate),)), {}, start_delay_s=0.0)
    coord.start(1_000.0, workers)
    batches = _batches(rate, seconds, workers, coord)
    lines = sum(len(Message.unserialize(b).data.get("lines") or ()) for _t, b in batches)

    ledger = MasterLedger(directory / f"flowsim-{n_workers}", "R")
    merged = RunStats()
    flowsim_locust = _locust_master()
    began = time.process_time()
    i, t = 0, 0.0
    while t <= seconds + SHIP_EVERY_S:
        t += TICK_S
        now = 1_000.0 + t
        for w in workers:  # each worker acknowledges what it was sent (a grant, every renewal)
            coord.ack(now, w)
        for send in coord.tick(now):
            Message(send.kind, send.data, "master").serialize()
        while i < len(batches) and batches[i][0] <= t:
            msg = Message.unserialize(batches[i][1])
            if msg.type == LEDGER:
                ledger.on_batch(msg.data)
            else:
                flowsim_locust.worker_report.fire(client_id=msg.node_id, data=msg.data)
                merged.merge(msg.data["flowsim"])
            i += 1
    for w in workers:
        ledger.on_done(w, None)
    ledger.close()
    flowsim_cpu = time.process_time() - began

    path = directory / f"reference-{n_workers}.jsonl"
    plain_locust = _locust_master()
    began = time.process_time()
    with open(path, "ab") as fh:
        for _t, b in batches:
            msg = Message.unserialize(b)
            if msg.type == LEDGER:
                fh.write(b"".join(msg.data["lines"]))
                fh.flush()
            else:
                plain_locust.worker_report.fire(client_id=msg.node_id, data=msg.data)
    reference_cpu = time.process_time() - began
    return flowsim_cpu, reference_cpu, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=2000.0, help="total launches a second across the workers")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=20.0, help="simulated run length")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.rate, a.workers, a.seconds = 500.0, [1, 4], 3.0
    rows = [["workers", "launches", "flowsim master CPU %", "plain Locust master + append CPU %", "ratio",
             "master CPU % per 1,000 launches/s"]]
    results = []
    with tempfile.TemporaryDirectory() as d:
        for n in a.workers:
            f, r, lines = run(a.rate, a.seconds, n, Path(d))
            share, ref = f / a.seconds, r / a.seconds
            results.append((n, share))
            rows.append([n, lines, f"{share:.1%}", f"{ref:.1%}", f"{f / r:.2f}" if r else "-",
                         f"{share / (a.rate / 1000):.1%}"])
    print(f"master at {a.rate:g} launches/s for {a.seconds:g} s of run (a share of one core; reference: a plain "
          "Locust master merging the same stats reports, and a bare append of the same ledger lines)")
    print(table(rows))
    if len(results) > 1:
        (n1, s1), (n2, s2) = results[0], results[-1]
        per_worker = (s2 - s1) / (n2 - n1)
        base = s1 / (a.rate / 1000)
        print(f"per worker: {per_worker:.2%} of a core (coordination, batches); per 1,000 launches/s: {base:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
