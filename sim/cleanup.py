"""``flowsim cleanup RUN``: what an Open Messaging run left on the platform that flowsim can remove — the external
contacts identity resolution made from its customers' ``from.id`` (API reference §11: they persist 60 days or
more). A dry run by default (what would go); ``--yes`` deletes them, and what was deleted goes into the run's
ledger (a ``cleanup`` record). Only contacts whose identifier is exactly one of the run's customer ids in its
ledger are touched — never one a search merely matched. Never imports locust."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from sim.errors import ConfigError, PlatformError

__all__ = ["cleanup", "CONTACTS_PATH"]

CONTACTS_PATH = "/api/v2/externalcontacts/contacts"
_PAGE = 200
_MAX_PAGES = 500
"""A search that pages past this many pages (100,000 contacts) is no run's: flowsim stops and says so."""


def _customers(rdir: Path) -> set[str]:
    from sim.load.ledger import ledger_files, read_records

    return {str(r["name"]) for r in read_records(ledger_files(rdir))
            if r.get("event") in ("session", "session_open") and r.get("name")}


def _find(client: Any, prefix: str, customers: set[str]) -> tuple[list[str], int]:
    """The run's contacts (by exact identifier), and how many others the search matched."""
    mine, others = [], 0
    for page in range(1, _MAX_PAGES + 1):
        a = client.request("GET", f"{CONTACTS_PATH}?q={prefix}&pageSize={_PAGE}&pageNumber={page}",
                           "cleanup contacts search", retry_transport=True)
        if a.status != 200 or not isinstance(a.body, dict):
            raise PlatformError.from_body(a.status, a.body) if a.status else ConfigError(
                f"the contacts search got no answer: {a.cause or a.error}", field="--target")
        for c in a.body.get("entities") or ():
            values = {str(i.get("value")) for i in c.get("identifiers") or () if isinstance(i, dict)}
            if values & customers:
                mine.append(str(c["id"]))
            else:
                others += 1
        if page >= int(a.body.get("pageCount") or 1):
            return mine, others
    raise ConfigError(f"the contacts search for {prefix!r} pages past {_MAX_PAGES * _PAGE:,} contacts: not one "
                      "run's; nothing deleted", field="RUN")


def _record(rdir: Path, data: dict[str, Any]) -> None:
    path = rdir / f"ledger-{socket.gethostname()}-{os.getpid()}-cleanup.jsonl"
    with open(path, "ab") as f:
        f.write(orjson.dumps({"event": "cleanup", **data}) + b"\n")


def cleanup(args: argparse.Namespace) -> int:
    from sim.checks import load_run
    from sim.run.prepare import client_for

    plan, rdir, target = load_run(args.run, args.ledger_dir, args.target)
    if plan.scenario.messaging is None:
        raise ConfigError(f"run {plan.run_id} is a {plan.scenario.kind} run: it made no external contacts, nothing "
                          "to clean up", field="RUN")
    customers = _customers(rdir)
    prefix = f"{plan.scenario.tag_prefix}-{plan.run_id}-"
    client = client_for(plan.scenario, target)
    try:
        try:
            mine, others = _find(client, prefix, customers)
        except PlatformError as exc:
            if exc.status == 403:
                raise ConfigError(f"the OAuth client's role needs externalContacts:contact:view ({exc.code})",
                                  field="credentials") from None
            raise
        print(f"run {plan.run_id}: {len(customers)} customers in its ledger; {len(mine)} external contacts are "
              f"theirs" + (f" ({others} more matched the search and are not this run's: left alone)" if others else ""))
        if not args.yes:
            print("dry run: nothing deleted; run again with --yes to delete them")
            return 0
        deleted, gone, failed = [], 0, []
        for contact in mine:
            a = client.request("DELETE", f"{CONTACTS_PATH}/{contact}", "cleanup contact", retry_transport=True)
            if a.status in (200, 204):
                deleted.append(contact)
            elif a.status == 404:
                gone += 1
            else:
                failed.append(f"{contact}: HTTP {a.status} {a.error or ''}".strip())
    finally:
        client.close()
        client.tokens.close()
    _record(rdir, {"run_id": plan.run_id, "at": round(time.time(), 6), "target": target.api_url,
                   "contacts_found": len(mine), "deleted": len(deleted), "already_gone": gone,
                   "failed": len(failed), "deleted_ids": deleted})
    print(f"deleted {len(deleted)}, already gone {gone}, failed {len(failed)} (recorded in the run's ledger)")
    for line in failed[:10]:
        print(f"  {line}", file=sys.stderr)
    return 1 if failed else 0
