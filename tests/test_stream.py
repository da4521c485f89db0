"""The ledger stream (issue #21): workers' lines reach the master's one ledger once each, in order; what a worker
whose lines did not all arrive may have sent is bounded by its leases; a worker's local copy folds in afterwards.
Pure parts with fake data and a fake clock; the run end to end is in tests/test_run_e2e.py."""

from __future__ import annotations

import random
from pathlib import Path

import orjson

from sim.load.ledger import Ledger, ledger_files, merge, read_records, summarize
from sim.load.records import LaunchRecord, SessionOpenRecord, UnsentRecord
from sim.load.schedule import Schedule
from sim.load.scenario import Stage
from sim.run.coordination import Epoch, MasterCoordinator, Partition
from sim.run.shipping import MasterLedger
from sim.run.stream import Intake, Outbox, accounted, owned


def _launch(seq: int, worker: str, run_id: str = "R") -> LaunchRecord:
    return LaunchRecord(run_id=run_id, seq=seq, name=f"t-{run_id}-{seq}", intended_at=100.0 + seq / 10, worker=worker,
                        http_status=200, sent_at=100.0 + seq / 10)


def test_outbox_numbers_its_lines_ships_in_batches_and_says_when_it_is_full() -> None:
    box = Outbox(max_bytes=50)
    for i in range(5):
        box.add(b"x" * 10 + str(i).encode())
    assert box.full and box.written == 5 and box.shipped == 0
    assert box.take(2) == (0, [b"xxxxxxxxxx0", b"xxxxxxxxxx1"])
    assert box.take(10) == (2, [b"xxxxxxxxxx2", b"xxxxxxxxxx3", b"xxxxxxxxxx4"])
    assert not box.full and box.take() == (5, []) and box.written == box.shipped == 5


def test_intake_takes_each_line_once_counts_gaps_and_knows_when_a_worker_is_complete() -> None:
    intake = Intake()
    assert intake.accept("w", 0, [b"a", b"b"]) == [b"a", b"b"]
    assert intake.accept("w", 0, [b"a", b"b"]) == []           # the same batch again
    assert intake.accept("w", 1, [b"b", b"c"]) == [b"c"]       # an overlap
    assert not intake.complete("w")                            # no DONE yet
    intake.done("w", 3)
    assert intake.complete("w")
    intake.done("w", 5)                                        # it wrote more than arrived
    assert not intake.complete("w")
    assert intake.accept("v", 2, [b"z"]) == [b"z"]             # two lines never came
    intake.done("v", 3)
    assert not intake.complete("v") and intake.describe()["v"] == {"received": 3, "written": 3, "gaps": 2,
                                                                   "complete": False}
    assert not intake.complete("never-heard-of")


def test_owned_counts_exactly_what_the_partition_gives_a_worker_below_its_lease() -> None:
    rng = random.Random(7)
    for _ in range(200):
        froms = sorted(rng.sample(range(1, 300), rng.randint(0, 4)))
        names = ["a", "b", "c", "d"]
        epochs = tuple(Epoch(from_seq=f, members=tuple(rng.sample(names, rng.randint(1, 4)))) for f in [0, *froms])
        until, total = rng.randint(0, 400), rng.randint(0, 400)
        for w in names:
            part = Partition(w, epochs)
            brute = sum(1 for s in range(min(until, total)) if part.owner(s) == w)
            assert owned(w, epochs, until, total) == brute, (w, epochs, until, total)


def test_accounted_counts_each_unit_once_and_unsent_aggregates_by_their_count() -> None:
    open_ = SessionOpenRecord(run_id="R", seq=3, name="t-R-3", intended_at=1.0, worker="w", http_status=200,
                              sent_at=1.0).to_json()
    records = [_launch(0, "w").to_json(), _launch(2, "v").to_json(), open_, {**open_, "event": "session"},
               UnsentRecord(event="late", run_id="R", seq=4, intended_at=1.0, worker="w", count=3, seq_last=8).to_json(),
               UnsentRecord(event="missed", run_id="R", seq=10, intended_at=1.0, worker="v").to_json(),
               {"event": "outcome", "seq": 0, "worker": "w"}]
    assert accounted(records) == {"w": 1 + 1 + 3, "v": 2}


def test_a_silent_workers_unrecorded_launches_are_bounded_by_its_leases(tmp_path: Path) -> None:
    """Two workers share 10/s; w2 goes silent at 3 s after streaming its records up to seq 19 (its last 3 launches
    never arrived): w1 takes the rest. The bound is w2's leased seqs its arrived records do not account for; w1,
    complete, has none. A record that comes after the run was counted is not written, only counted."""
    t0 = 1000.0
    coord = MasterCoordinator(Schedule((Stage(duration_s=10, rate_per_s=10),)), {}, start_delay_s=0.0)
    coord.start(t0, ["w1", "w2"])
    for step in range(1, 80):  # every 0.1 s, both ack until w2 falls silent at 3 s
        now = t0 + step / 10
        coord.ack(now, "w1")
        if now < t0 + 3:
            coord.ack(now, "w2")
        coord.tick(now)
    assert coord.lost == ["w2"]
    ml = MasterLedger(tmp_path / "R", "R")
    lines = {w: [orjson.dumps(_launch(s, w).to_json()) + b"\n" for s in range(100) if Partition(w, tuple(
        coord.epochs)).owner(s) == w and s < coord.workers[w].until_seq] for w in ("w1", "w2")}
    arrived = [x for x in lines["w2"] if orjson.loads(x)["seq"] <= 19]
    ml.on_batch({"worker": "w2", "run_id": "R", "first": 0, "lines": arrived[:4]})
    ml.on_batch({"worker": "w2", "run_id": "R", "first": 2, "lines": arrived[2:]})  # re-sent overlap
    ml.on_batch({"worker": "w1", "run_id": "R", "first": 0, "lines": lines["w1"]})
    ml.on_batch({"worker": "x", "run_id": "other", "first": 0, "lines": [b"{}\n"]})  # another run's: ignored
    ml.on_done("w1", len(lines["w1"]))
    ml.close()
    got = ml.shortfall(coord, total=100)
    bound = owned("w2", coord.epochs, coord.workers["w2"].until_seq, 100) - len(arrived)
    assert got["incomplete_workers"] == ["w2"] and got["possibly_sent"] == bound == got["possibly_sent_by_worker"]["w2"]
    assert 3 <= bound <= 3 + 2 * 10 // 2 + 1  # its 3 unsent-to-us launches, plus at most its lease (2 s, half of 10/s)
    seqs = [r["seq"] for r in read_records(ledger_files(tmp_path / "R"))]
    assert len(seqs) == len(set(seqs)) == len(lines["w1"]) + len(arrived)
    ml.on_batch({"worker": "w2", "run_id": "R", "first": len(arrived), "lines": lines["w2"][len(arrived):]})
    assert ml.late_lines == len(lines["w2"]) - len(arrived)


def test_merge_folds_a_local_copy_in_once_and_refuses_other_runs_and_torn_lines(tmp_path: Path) -> None:
    rdir = tmp_path / "R"
    streamed = Ledger(rdir)
    local = Ledger(rdir / "local")
    for s in range(6):
        local.write(_launch(s, "w"))
        if s < 4:  # the last two never reached the master
            streamed.write(_launch(s, "w"))
    streamed.close()
    local.close()
    with open(local.path, "ab") as fh:
        fh.write(orjson.dumps(_launch(9, "w", run_id="OTHER").to_json()) + b"\n" + b'{"event": "launch", "se')
    assert merge(rdir, [local.path]) == {"added": 2, "already": 4, "other_run": 1, "unreadable": 1}
    assert merge(rdir, [local.path])["added"] == 0  # twice changes nothing
    s = summarize(ledger_files(rdir))
    assert s["launch_attempts"] == 6 and s["duplicate_names"] == 0 and len(ledger_files(rdir)) == 2
