"""The ledger: one JSON line per launch attempt, appended and flushed as it happens.

A single process writes ``<ledger_dir>/<run_id>/ledger-<host>-<pid>.jsonl``; a crash or Ctrl-C loses at most
the requests in flight. With workers, the **master** writes the run's one ledger there, from the lines each worker
streams to it as it writes them (``sim.run.stream``), on any number of hosts; each worker keeps its own copy under
``<run_id>/local/`` on its host (``flowsim ledger merge`` folds one in afterwards). Records:

- ``{"event": "launch", ...}``  one per launch attempt (after retries): seq, name, identity id,
  flow id, execution id, HTTP status, error code, intended/sent/answered times, attempts;
- ``{"event": "session", ...}`` one per bot conversation (``kind = "conversation"``): the session start as a
  launch (session id, status, times, attempts), then every turn (what was said, status, latency, next
  action, prompt, broken expectations), how it ended and its output variables;
- ``{"event": "outcome", ...}`` the terminal flow status of a followed execution;
- ``{"event": "missed", ...}``  a launch that could not start on time (no free user); past 50 in one
  second, one record per second carries ``count`` (and ``seq``..``seq_last``) instead;
- ``{"event": "late", ...}``    a launch this process owned but was too late to send (it was paused or
  starved past its due time, or its token came late): never sent, so never sent twice;
- ``{"event": "not_sent", ...}`` a launch that never left: no connection could be made (``reason`` ``refused``)
  or no OAuth token could be had (``no_token``), with the ``cause`` in words;
- ``{"event": "session_open", ...}`` a bot session as soon as it exists (its start's fields): a crash leaves a
  record of every open session; the ``session`` record that closes it follows. An Open Messaging conversation
  (``kind = "messaging"``) is a ``session`` too: its first message is the start, its messages the turns, and
  ``replies`` every reply its customer read;
- ``{"event": "receiver", ...}`` what flowsim's webhook receiver made of the run's deliveries (routed, duplicate,
  after_give_up, bad_signature, ...), written by the process that hosts it at the end;
- ``{"event": "cleanup", ...}`` what ``flowsim cleanup --yes`` deleted (the external contacts the run made).

A launch still in flight when a stop's grace ran out is written as ``launch`` with ``http_status`` 0 and
``error`` ``unanswered_at_stop`` (it may have run); a followed execution as ``outcome`` ``INTERRUPTED``.

No secrets are ever written: records carry ids, statuses and times (and a conversation's test text) only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from sim.load.records import UNIT_EVENTS, LaunchRecord, Record, SessionOpenRecord, SessionRecord, parse
from sim.load.stats import RunStats

__all__ = ["Ledger", "read_records", "summarize", "ledger_files", "run_dir", "replay", "merge"]


def run_dir(ledger_dir: str | Path, run_id: str) -> Path:
    return Path(ledger_dir) / run_id


class Ledger:
    """Append-only JSONL file for this process."""

    def __init__(self, directory: Path, *, outbox: Any = None) -> None:
        """``outbox``: a worker's (``sim.run.stream.Outbox``): every line written is also kept there until it
        is shipped to the master, which writes the run's one ledger."""
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"ledger-{socket.gethostname()}-{os.getpid()}.jsonl"
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the run, closed in close()
        self.lines = 0
        self.dropped = 0
        self.outbox = outbox

    def write(self, record: Record) -> None:
        """Append and flush one record; OSError (disk full, file too large, I/O error) goes to the caller, which
        must stop sending (``sim.run.engine``)."""
        if self._file.closed:  # a request that outlived the stop grace: it is not in the ledger, say how many
            self.dropped += 1
            return
        line = orjson.dumps(record.to_json()) + b"\n"
        self._file.write(line)
        self._file.flush()
        self.lines += 1
        if self.outbox is not None:
            self.outbox.add(line)

    def write_lines(self, lines: list[bytes]) -> None:
        """The master: lines streamed from a worker, as they were written there (each ends in a newline)."""
        if self._file.closed:
            self.dropped += len(lines)
            return
        self._file.write(b"".join(lines))
        self._file.flush()
        self.lines += len(lines)

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:  # the disk is full: what was not written is counted as unrecorded by the engine
                pass


def ledger_files(path: str | Path) -> list[Path]:
    """The ledger files of a run: ``path`` is a run directory or one ledger file."""
    p = Path(path)
    if p.is_file():
        return [p]
    return sorted(p.glob("ledger-*.jsonl"))


def _digest(line: bytes) -> bytes:
    return hashlib.blake2b(line, digest_size=16).digest()


def merge(rdir: Path, sources: list[Path]) -> dict[str, int]:
    """Fold workers' local copies into a run's ledger (``flowsim ledger merge``): every line not already in the
    run's ledger files (byte for byte: a streamed line is the line its worker wrote) is appended, once, to a new
    ``ledger-merged-<n>.jsonl`` there; a line of another run, or not a ledger record, is refused. The counts."""
    have: set[bytes] = set()
    run_ids: set[str] = set()
    for f in ledger_files(rdir):  # one read of the run's ledger: what it has, and whose run it is
        with open(f, "rb") as fh:
            for line in fh:
                have.add(_digest(line.rstrip(b"\n")))
                with contextlib.suppress(orjson.JSONDecodeError):
                    rec = orjson.loads(line)
                    if isinstance(rec, dict) and rec.get("run_id"):
                        run_ids.add(str(rec["run_id"]))
    out = {"added": 0, "already": 0, "other_run": 0, "unreadable": 0}
    new: list[bytes] = []
    for src in sources:
        with open(src, "rb") as fh:
            for line in fh:
                line = line.rstrip(b"\n")
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    out["unreadable"] += 1  # a torn last line (the worker was killed mid-write)
                    continue
                if not isinstance(rec, dict) or "event" not in rec:
                    out["unreadable"] += 1
                elif str(rec.get("run_id")) not in run_ids:
                    out["other_run"] += 1
                elif _digest(line) in have:
                    out["already"] += 1
                else:
                    have.add(_digest(line))
                    new.append(line + b"\n")
    if new:
        n = 1 + sum(1 for _ in rdir.glob("ledger-merged-*.jsonl"))
        tmp = rdir / f".ledger-merged-{n}.tmp"
        tmp.write_bytes(b"".join(new))
        tmp.replace(rdir / f"ledger-merged-{n}.jsonl")
    out["added"] = len(new)
    return out


def read_records(files: list[Path]) -> Iterator[dict[str, Any]]:
    """Every record; a torn last line (crash mid-write) is skipped, not fatal."""
    for f in files:
        with open(f, "rb") as fh:
            for line in fh:
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue


def replay(files: list[Path], t0: float) -> tuple[RunStats, int]:
    """Statistics of a run counted from its ledger files, and how many seqs were launched more than once. A
    ``session_open`` that no ``session`` closed counts as a session started and never seen to end (``lost``)."""
    stats = RunStats()
    seen = bytearray()
    duplicates = 0
    opened: dict[str, SessionOpenRecord] = {}
    for data in read_records(files):
        rec = parse(data)
        if isinstance(rec, SessionOpenRecord):
            opened[rec.name] = rec
            continue
        if isinstance(rec, SessionRecord):
            opened.pop(rec.name, None)
        if isinstance(rec, (LaunchRecord, SessionRecord)):
            byte, bit = divmod(rec.seq, 8)
            if byte >= len(seen):
                seen.extend(bytes(byte + 1 - len(seen) + 1024))
            if seen[byte] >> bit & 1:
                duplicates += 1
            seen[byte] |= 1 << bit
        if rec is not None:
            stats.add(rec, t0)
    for rec in opened.values():
        stats.add(SessionRecord.lost(rec), t0)
    return stats, duplicates


def summarize(files: list[Path]) -> dict[str, Any]:
    """Reconcile a run's ledger: launches, statuses, outcomes, duplicates, launches never resolved."""
    launches: dict[str, dict[str, Any]] = {}
    duplicates = 0
    outcomes: dict[str, str] = {}
    missed = late = 0
    statuses: Counter[str] = Counter()
    run_ids: set[str] = set()
    opened: dict[str, dict[str, Any]] = {}
    kind = "launch"
    for rec in read_records(files):
        run_ids.add(str(rec.get("run_id")))
        ev = rec.get("event")
        if ev == "session_open":
            opened[rec["name"]] = rec
            continue
        if ev == "session":  # an Open Messaging conversation's record carries the replies its customer read
            kind = "messaging" if "replies" in rec else "session"
            opened.pop(rec["name"], None)
        if ev in UNIT_EVENTS:
            if rec["name"] in launches:
                duplicates += 1
            launches[rec["name"]] = rec
            statuses[str(rec.get("http_status"))] += 1
        elif ev == "outcome":
            outcomes[rec["name"]] = rec.get("flow_status", "UNKNOWN")
        elif ev == "missed":
            missed += int(rec.get("count", 1))
        elif ev == "late":
            late += int(rec.get("count", 1))
    if opened:  # started, never closed: the session exists at the target all the same
        kind = kind if kind != "launch" else "session"
        for name, rec in opened.items():
            if name not in launches:
                launches[name] = rec
                statuses[str(rec.get("http_status"))] += 1
    accepted = [n for n, r in launches.items() if r.get("http_status") == 200]
    unanswered = sorted(n for n, r in launches.items() if r.get("http_status") == 0)
    followed = [n for n in accepted if n in outcomes]
    ends = ({"sessions_never_closed": len(opened)} if kind != "launch"  # the process ended before the session
            else {"accepted_without_outcome": len(accepted) - len(followed)})
    return {
        "kind": kind,
        "run_ids": sorted(run_ids),
        "files": [str(f) for f in files],
        "launch_attempts": len(launches) + duplicates,
        "accepted": len(accepted),
        "http_status": dict(sorted(statuses.items())),
        "duplicate_names": duplicates,
        "missed_starts": missed,
        "late_not_sent": late,
        "outcomes": dict(sorted(Counter(outcomes.values()).items())),
        **ends,
        # No HTTP answer (timed out, connection dropped): the platform may have run them all the same.
        "unanswered_may_have_run": len(unanswered),
        "unanswered_names": unanswered,
        "names": sorted(launches),
        "execution_ids": sorted(str(launches[n].get("execution_id") or launches[n].get("session_id"))
                                for n in accepted),
    }
