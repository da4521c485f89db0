"""Counting a finished run: the RunSummary, built once on the master (or single process) from the ledgers.

The ledger is the authority for what was sent: when every ledger a worker announced is on this
machine, the statistics are replayed from them; only when some are out of reach (workers on other
machines) do the workers' live reports stand in, and the summary says which (``ledger.counts_source``).
"""

from __future__ import annotations

from sim.load.ledger import ledger_files, replay, run_dir
from sim.load.stats import RunStats
from sim.results.summary import RunSummary, build_summary
from sim.run.plan import RunPlan
from sim.run.prepare import analytics_note

__all__ = ["tally"]


def tally(plan: RunPlan, t0: float, *, expected_ledgers: set[str], live: RunStats, workers: int,
          workers_lost: tuple[str, ...], aborted: str | None, fatal: bool, interrupted: bool,
          unrecorded: int = 0) -> RunSummary:
    """``unrecorded``: launches sent and never written (the ledger failed), from the processes' live counts."""
    rdir = run_dir(plan.ledger_dir, plan.run_id)
    files = ledger_files(rdir) if rdir.exists() else []
    if expected_ledgers <= {f.name for f in files}:
        stats, duplicates = replay(files, t0)
        source = "ledger"
    else:  # workers on other machines keep their ledgers: their reports are all the master has
        stats, duplicates = live, 0
        source = "worker_reports"
    sc, schedule = plan.scenario, plan.schedule
    return build_summary(
        stats, run_id=plan.run_id, scenario=sc.name, target=plan.target.api_url, thresholds=sc.thresholds,
        scheduled=schedule.total, duration_s=schedule.duration_s, rate_at=schedule.rate_at,
        workers=max(1, workers), workers_lost=workers_lost, ledger_path=str(rdir),
        ledger={"counts_source": source, "files": [str(f) for f in files]}, duplicates=duplicates,
        aborted=aborted, fatal=fatal, interrupted=interrupted, analytics=analytics_note(plan), live=plan.live,
        poll_interval_s=sc.poll_interval_s if sc.follow else None, load=sc.kind, unrecorded=unrecorded,
        started_at=t0)
