"""The loops that watch a running run in the master (or single process), as greenlets: the progress line (or,
under ``flowsim run`` on a terminal, the live view's figures file), the abort guard, and the master's
coordination loop (invitations, lost workers, re-splits, renewals, the end). Both read the run's
snapshot, whose :class:`~sim.load.figures.Figures` every view shares."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import gevent

from sim.load.thresholds import MIN_LIVE_LAUNCHES, Thresholds, judge
from sim.run.metrics import Snapshot
from sim.run.terminal import figures, write_figures

if TYPE_CHECKING:
    from sim.run.fleet import ProcessRun

__all__ = ["progress", "guard", "progress_fields", "coordinate", "STATE_MISSING"]

STATE_MISSING = "missing"  # locust.runners.STATE_MISSING: a worker that stopped sending heartbeats


def progress_fields(snap: Snapshot, *, elapsed_s: float, target_rate_per_s: float) -> dict[str, Any]:
    """The plain progress line's figures (every 5 s without the live view): the snapshot's Figures."""
    f = snap.figures
    return {"elapsed_s": round(elapsed_s, 1), "target_rate_per_s": round(target_rate_per_s, 2),
            "achieved_rate_per_s": round(f.achieved_rate_per_s, 2), "launched": f.launched,
            "failed_after_retries": f.failed, "first_attempt_failed": f.first_attempt_failed,
            "missed": f.missed_starts, "r429": f.rate_limited_responses,
            "p95_attempt_ms": f.attempt_latency_ms.p95, "p95_end_to_end_ms": f.latency_ms.p95}


def progress(run: ProcessRun, live_file: str = "") -> None:
    """A line every 5 s: target vs achieved rate, in flight, errors, p95. With ``live_file`` (the parent
    draws the live terminal view), the view's figures there every second instead."""
    while not run.complete and run.plan is not None and run.t0 is not None:
        gevent.sleep(1.0 if live_file else 5.0)
        snap = run.snapshot()
        if snap is None or run.complete:
            continue
        elapsed = time.time() - run.t0
        if elapsed < 0:
            continue
        if live_file:
            workers = len(run.coord.members) if run.coord is not None else 0
            write_figures(live_file, figures(snap, elapsed_s=elapsed, duration_s=run.plan.schedule.duration_s,
                                             scheduled=run.plan.schedule.total, workers=workers))
            continue
        run.log.info("run.progress", **progress_fields(
            snap, elapsed_s=elapsed, target_rate_per_s=run.plan.schedule.rate_at(max(0.0, elapsed - 2.5))))

def guard(run: ProcessRun, limit: float | None, th: Thresholds) -> None:
    """Stop the run when failures and 429s flood (``limit``), or when a threshold named in
    ``abort_on_fail`` fails on the figures so far: never keep hammering a target past its knee."""
    while not run.complete and run.t0 is not None:
        gevent.sleep(1.0)
        stats = run.stats()
        if stats is None:
            continue
        reason = stats.flood(int(time.time() - run.t0) - 1, 3, limit) if limit else None
        if reason is None and th.abort_on_fail and stats.counters["launched"] >= MIN_LIVE_LAUNCHES:
            snap = run.snapshot()
            observed = snap.figures.observed() if snap is not None else {}
            failing = [r for r in judge(observed, th, th.abort_on_fail)
                       if not r.passed and r.observed is not None]
            if failing:
                r = failing[0]
                reason = (f"threshold {r.name} failed live (abort_on_fail): observed {r.observed}, limit "
                          f"{r.limit} — {r.describes}")
        if reason:
            run.abort(reason)
            return


def coordinate(run: ProcessRun) -> None:
    """The master's loop: invitations, Locust's missing workers, re-splits and renewals, the end."""
    coord = run.coord
    assert coord is not None
    while not run.complete:
        gevent.sleep(0.25)
        now = time.time()
        for wid, node in list(run.runner.clients.items()):
            if node.state == STATE_MISSING:
                coord.missing(wid)
        # A newcomer is invited once Locust has given it users: before that, every launch would be missed.
        run.send(coord.connected(now, run.live_workers(with_users=True)))
        before = coord.members
        run.send(coord.tick(now))
        run.went()  # every worker ready (or waited long enough): t0 went out with that tick
        if coord.members != before:
            run.log.warning("workers.changed", members=len(coord.members), lost=coord.lost,
                            from_seq=coord.epochs[-1].from_seq)
        run.check_finished(now)
