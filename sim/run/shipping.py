"""The ledger stream over Locust's message channel (``sim.run.stream`` is its bookkeeping): a worker ships what
its ledger wrote a few times a second and the rest before its DONE; the master writes every line once to the
run's one ledger and, at the end, states what a worker whose lines did not all arrive may have sent unrecorded.
No locust import: ``send`` is the runner's ``send_message``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.lock

from sim import logs
from sim.load.ledger import Ledger, read_records
from sim.run.coordination import MasterCoordinator
from sim.run.stream import LEDGER, SHIP_EVERY_S, Intake, Outbox, accounted, owned

__all__ = ["Shipper", "MasterLedger", "LOCAL_DIR"]

LOCAL_DIR = "local"
"""Under the run's directory: a worker's own copy of what it wrote (never counted: the master's ledger is)."""

_log = logs.get_logger(component="ledger")


class Shipper:
    """A worker's side: ship the outbox to the master every ``SHIP_EVERY_S`` until stopped."""

    def __init__(self, outbox: Outbox, send: Callable[[str, dict[str, Any]], None], *, worker: str,
                 run_id: str) -> None:
        self.outbox, self._send, self.worker, self.run_id = outbox, send, worker, run_id
        self.broken: str | None = None
        """Why the channel refused a batch (the master is gone): nothing more is shipped."""
        self._one_at_a_time = gevent.lock.Semaphore()
        """The loop and close() both flush: batches must leave in order (the master drops one older than the last)."""
        self._loop = gevent.spawn(self._run)

    def _run(self) -> None:
        while self.broken is None:
            gevent.sleep(SHIP_EVERY_S)
            self.flush()

    def flush(self) -> None:
        with self._one_at_a_time:
            self._flush()

    def _flush(self) -> None:
        while self.broken is None and self.outbox.written > self.outbox.shipped:
            first, lines = self.outbox.take()
            try:
                self._send(LEDGER, {"worker": self.worker, "run_id": self.run_id, "first": first, "lines": lines})
            except Exception as exc:  # the master is gone: the local copy has every line
                self.broken = type(exc).__name__
                _log.warning("ledger.stream_broken", error=self.broken, unshipped=self.outbox.written - first)

    def close(self) -> int:
        """Ship what is left, stop; how many lines were written in all (DONE says so)."""
        self.flush()
        self._loop.kill(block=False)
        return self.outbox.written


class MasterLedger:
    """The master's side: the run's one ledger, written from the workers' streams."""

    def __init__(self, directory: Path, run_id: str) -> None:
        self.ledger = Ledger(directory)
        self.intake = Intake()
        self.run_id = run_id
        self.late_lines = 0
        """Lines that came after the run was counted or its ledger failed (in the worker's local copy: ``flowsim
        ledger merge``)."""
        self.error: str | None = None
        """Why the run's ledger could not be written (the run was stopped then)."""

    def on_batch(self, data: dict[str, Any]) -> str | None:
        """Write a worker's batch; the reason to stop the run when the run's ledger cannot be written (the lines
        not written then count as never arrived: that worker's shortfall covers them)."""
        if data.get("run_id") != self.run_id:
            return None
        if self.ledger.closed or self.error:
            self.late_lines += len(data.get("lines") or ())
            return None
        worker = str(data["worker"])
        lines = self.intake.accept(worker, int(data["first"]), list(data.get("lines") or ()))
        try:
            self.ledger.write_lines(lines)
        except OSError as exc:
            self.intake.streams[worker].received -= len(lines)
            self.error = (f"the run's ledger {self.ledger.path} could not be written ({exc.strerror or exc}): "
                          "flowsim stopped sending; every count of this run is partial")
            return self.error
        return None

    def on_done(self, worker: str, written: int | None) -> None:
        if written is not None:
            self.intake.done(worker, written)

    def close(self) -> None:
        self.ledger.close()

    def shortfall(self, coord: MasterCoordinator, total: int) -> dict[str, Any]:
        """For each worker that held a lease and whose lines did not all arrive: how many launches it may have
        sent that are in no ledger here (the seqs its leases let it handle, less those its records account
        for). ``possibly_sent`` is their sum."""
        took_part = {w: s for w, s in coord.workers.items() if s.until_seq > 0}
        short = [w for w in took_part if not self.intake.complete(w)]
        counted = accounted(read_records([self.ledger.path])) if short else Counter()
        per = {w: max(0, owned(w, coord.epochs, took_part[w].until_seq, total) - counted[w]) for w in short}
        return {"streams": self.intake.describe(), "incomplete_workers": sorted(short),
                "possibly_sent": sum(per.values()), "possibly_sent_by_worker": per}
