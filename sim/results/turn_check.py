"""Intent and slot checks after a bot conversation run (API reference §12): a script step's ``intent``,
``intent_confidence``, ``slots`` and ``ask_action_result`` are not in the textbots answer; the platform reports them
per turn afterwards (``GET /api/v2/analytics/botflows/{botFlowId}/divisions/reportingturns``). This reads every
reporting turn of the run's bots over its span, joins them to the ledger's sessions (by session id, in turn
order), waits a bounded time with progress for the platform to catch up, and judges each checked step — the
broken checks grouped like the live ones (``sim.load.breaks``), with a transcript.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sim.load.breaks import FailureGroups, broken
from sim.load.client import FlowClient
from sim.load.records import SessionRecord
from sim.results.analytics import answer_of
from sim.results.coverage import coverage

__all__ = ["check_turns", "records_of", "REPORTING_TURNS_PATH", "MAX_PAGES"]

REPORTING_TURNS_PATH = "/api/v2/analytics/botflows/{bot}/divisions/reportingturns"
MAX_PAGES = 400
"""Pages (of 250 turns) read per bot and look at most: 100,000 turns."""


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _read(client: FlowClient, bot: str, interval: str) -> dict[str, list[dict[str, Any]]]:
    """Every reporting turn of ``bot`` in ``interval``, by session id, in the order they happened."""
    by_session: dict[str, list[dict[str, Any]]] = {}
    path: str | None = f"{REPORTING_TURNS_PATH.format(bot=bot)}?interval={interval}&pageSize=250"
    for _ in range(MAX_PAGES):
        if path is None:
            break
        a = client.request("GET", path, "analytics reporting turns", retry_transport=True)
        body = answer_of(a, "the reporting turns query")
        for t in body.get("entities") or ():
            by_session.setdefault(str(t.get("sessionId")), []).append(t)
        path = body.get("nextUri")
    return by_session


def _judge(want: dict[str, Any], rt: dict[str, Any] | None) -> list[dict[str, str]]:
    if rt is None:
        return [broken("reporting turn", "one", "none", "the platform reported no turn here")]
    out = []
    intent = rt.get("intent") or {}
    name, conf = intent.get("name"), intent.get("confidence")
    if want.get("intent") and name != want["intent"]:
        out.append(broken("intent", want["intent"], name, f"intent {name}, expected {want['intent']}"))
    if want.get("intent_confidence") is not None and (conf is None or float(conf) < want["intent_confidence"]):
        out.append(broken("intent_confidence", f">= {want['intent_confidence']}", conf,
                          f"intent confidence {conf}, expected at least {want['intent_confidence']}"))
    slots = {str(s.get("name")): str(s.get("value")) for s in intent.get("slots") or () if isinstance(s, dict)}
    for k, v in (want.get("slots") or {}).items():
        if slots.get(k) != v:
            out.append(broken(f"slot {k}", v, slots.get(k), f"slot {k} = {slots.get(k)!r}, expected {v!r}"))
    got = rt.get("askActionResult")
    if want.get("ask_action_result") and got != want["ask_action_result"]:
        out.append(broken("ask_action_result", want["ask_action_result"], got,
                          f"ask action result {got}, expected {want['ask_action_result']}"))
    return out


def _judged(rec: SessionRecord, rts: list[dict[str, Any]]) -> tuple[SessionRecord, int, int]:
    """The record with only its checked turns stepped, each carrying what broke (and the platform's answer)."""
    turns, checked, failed = [], 0, 0
    complete = len(rts) >= len(rec.turns)
    for k, t in enumerate(rec.turns):
        want = t.get("nlu")
        rt = rts[k] if k < len(rts) else None
        if not want or (rt is None and not complete):  # not checked, or not reported yet (the platform lags)
            turns.append({**t, "step": None, "broken": [], "failed": []})
            continue
        found = _judge(want, rt)
        checked, failed = checked + 1, failed + (1 if found else 0)
        intent = (rt or {}).get("intent") or {}
        said = "" if rt is None else (f"; the platform: intent {intent.get('name')} ({intent.get('confidence')}), "
                                      f"{rt.get('askActionResult')}")
        turns.append({**t, "broken": [{k2: b[k2] for k2 in ("check", "expected", "got")} for b in found],
                      "failed": [b["text"] + said for b in found]})
    return dataclasses.replace(rec, turns=turns), checked, failed


def check_turns(client: FlowClient, records: list[SessionRecord], bots: list[str], *, wait_s: float,
                progress: Callable[[str], None] = lambda _line: None, sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.monotonic) -> dict[str, Any] | None:
    """Judge the checked steps of ``records`` (sessions of ``bots``) against the platform's reporting turns;
    None when no step asks for such a check."""
    mine = [r for r in records if r.session_id and any(t.get("nlu") for t in r.turns)]
    if not mine:
        return None
    first = min(r.sent_at for r in mine) - 60
    last = max(r.ended_at or r.sent_at for r in mine) + 60
    interval = f"{_iso(first)}/{_iso(last)}"
    began = clock()
    while True:
        found: dict[str, list[dict[str, Any]]] = {}
        for bot in bots:
            found.update(_read(client, bot, interval))
        behind = sum(1 for r in mine if len(found.get(str(r.session_id), ())) < len(r.turns))
        waited = clock() - began
        if not behind or waited >= wait_s:
            break
        progress(f"reporting turns: {len(mine) - behind} of {len(mine)} sessions complete so far; waiting "
                 f"({waited:.0f}/{wait_s:.0f} s)")
        sleep(min(5.0, max(0.5, wait_s / 20)))
    groups, checked, failed = FailureGroups(), 0, 0
    for r in mine:
        judged, c, f = _judged(r, found.get(str(r.session_id), []))
        groups.add(judged)
        checked, failed = checked + c, failed + f
    verdict = "FAIL" if failed else "NOT CAUGHT UP" if behind else "PASS"
    sessions = [r for r in records if r.session_id]
    endings = Counter(f"{r.end}:{r.end_reason}" if r.end in ("Exit", "Disconnect") else r.end for r in sessions)
    covered = coverage(_defined(client, bots), [t for r in sessions for t in found.get(str(r.session_id), [])], endings)
    return {"verdict": verdict, "sessions": len(mine), "sessions_behind": behind, "checked": checked,
            "failed": failed, "waited_s": round(clock() - began, 1), "failures": groups.summary(), "coverage": covered}


def _defined(client: FlowClient, bots: list[str]) -> dict[str, list[str]] | None:
    """The bots' intents and their slots, from their NLU domain versions (None: not readable)."""
    out: dict[str, list[str]] = {}
    for bot in bots:
        a = client.get_json(f"/api/v2/flows/{bot}/latestconfiguration", "nlu flow configuration")
        settings = (a.body or {}).get("botFlowSettings") if a.status == 200 and isinstance(a.body, dict) else None
        if not settings:
            return None
        v = client.get_json(f"/api/v2/languageunderstanding/domains/{settings.get('nluDomainId')}/versions/"
                            f"{settings.get('nluDomainVersionId')}", "nlu domain version")
        if v.status != 200 or not isinstance(v.body, dict):
            return None
        for i in v.body.get("intents") or ():
            out[str(i.get("name"))] = [str(s) for s in i.get("entityNameReferences") or ()]
    return out


def records_of(rdir: Path) -> list[SessionRecord]:
    """The run's conversations from its ledger."""
    from sim.load.ledger import ledger_files, read_records
    from sim.load.records import parse

    return [r for r in (parse(d) for d in read_records(ledger_files(rdir)) if d.get("event") == "session")
            if isinstance(r, SessionRecord)]
