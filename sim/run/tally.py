"""Counting a finished run: the RunSummary, built once on the master (or single process) from the run's ledger.

The ledger is the authority for what was sent. A single process wrote it itself; with workers, the master wrote
it from the lines each worker streamed (``sim.run.shipping``), on any number of hosts. A worker whose lines did not
all arrive (killed, cut off) may have sent launches that are in no ledger here: how many at most, from its leases,
is stated (``possibly_sent``) — never counted as sent, never silently as not sent.
"""

from __future__ import annotations

from typing import Any

from sim.load.ledger import ledger_files, replay, run_dir
from sim.results.summary import RunSummary, build_summary
from sim.run.coordination import MasterCoordinator
from sim.run.lifecycle import Lifecycle
from sim.run.plan import RunPlan
from sim.run.prepare import analytics_note
from sim.run.shipping import MasterLedger

__all__ = ["tally", "count_run"]


def count_run(plan: RunPlan, t0: float, life: Lifecycle, *, coord: MasterCoordinator | None,
              run_ledger: MasterLedger | None, unrecorded: int, clock_offsets: dict[str, float]) -> RunSummary:
    """The summary of this process's run: a master's (its workers' streams, their shortfall) or a single one's."""
    if coord is not None and run_ledger is not None:
        took_part = sum(1 for w in coord.workers.values() if w.state in ("member", "lost"))
        stream = {**run_ledger.shortfall(coord, plan.schedule.total), "clock_offsets_s": dict(sorted(clock_offsets.items()))}
    else:
        took_part, stream = 1, {}
    return tally(plan, t0, workers=took_part, workers_lost=tuple(coord.lost if coord else ()),
                 aborted=life.aborted, fatal=life.fatal, interrupted=life.verdict_interrupted, unrecorded=unrecorded,
                 stream=stream)


def tally(plan: RunPlan, t0: float, *, workers: int, workers_lost: tuple[str, ...], aborted: str | None, fatal: bool,
          interrupted: bool, unrecorded: int = 0, stream: dict[str, Any] | None = None) -> RunSummary:
    """``unrecorded``: launches sent and never written (the ledger failed), from the processes' live counts;
    ``stream``: what arrived from each worker, and what those whose lines did not all arrive may have sent."""
    rdir = run_dir(plan.ledger_dir, plan.run_id)
    files = ledger_files(rdir) if rdir.exists() else []
    stats, duplicates = replay(files, t0)
    stream = stream or {}
    sc, schedule = plan.scenario, plan.schedule
    return build_summary(
        stats, run_id=plan.run_id, scenario=sc.name, target=plan.target.api_url, thresholds=sc.thresholds,
        scheduled=schedule.total, duration_s=schedule.duration_s, rate_at=schedule.rate_at,
        workers=max(1, workers), workers_lost=workers_lost, ledger_path=str(rdir),
        ledger={"counts_source": "ledger", "files": [str(f) for f in files],
                **{k: v for k, v in stream.items() if k != "possibly_sent"}},
        possibly_sent=int(stream.get("possibly_sent", 0)), duplicates=duplicates,
        aborted=aborted, fatal=fatal, interrupted=interrupted, analytics=analytics_note(plan), live=plan.live,
        poll_interval_s=sc.poll_interval_s if sc.follow else None, load=sc.kind, unrecorded=unrecorded,
        started_at=t0)
