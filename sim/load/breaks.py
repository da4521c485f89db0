"""Broken expectations a designer can act on: every conversation's failed checks grouped by (script, step, check),
counted, with what came instead and one short transcript each; and how many conversations
reached each scripted step and broke there (one JUnit test case per step).

Counted from ledger records like every figure (``RunStats`` holds one :class:`FailureGroups`), mergeable across
workers, bounded in memory. A turn in the ledger carries ``step`` (its place in the script, 1-based; None for the
client's own turns) and ``broken`` (each failed check as ``{"check", "expected", "got"}``); a conversation
carries ``script`` (which of the scenario's scripts it followed, 0-based).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = ["FailureGroups", "broken", "MAX_GROUPS", "step_name", "group_rows", "step_cases", "ScriptedFigures"]

MAX_GROUPS = 100
"""Distinct groups kept; more are counted in ``overflow`` (a script that breaks in a hundred ways says enough)."""
_MAX_GOT = 5
_LINE = 160
_LINES = 16
_MAX_US = 3_600_000_000


def broken(check: str, expected: Any, got: Any, text: str) -> dict[str, str]:
    """One failed check: what was checked, what was expected, what came instead, and the sentence for people."""
    return {"check": check, "expected": str(expected)[:_LINE], "got": str(got)[:_LINE], "text": text}


def step_name(script: int, step: int, scripts: int) -> str:
    return f"script {script + 1} step {step}" if scripts > 1 else f"step {step}"


def _transcript(rec: Any, failing: int) -> list[list[str]]:
    """What the customer said and what came back, up to the failing step; the failing step marked."""
    said = {r.get("id"): r.get("text", "") for r in rec.replies or ()}
    lines: list[list[str]] = []
    for t in rec.turns:
        if t.get("text"):
            lines.append(["customer", str(t["text"])[:_LINE]])
        answers = [said.get(i, "") for i in t.get("replies") or ()] if rec.replies is not None else [t.get("prompt")]
        for a in answers:
            if a:
                lines.append(["bot", str(a)[:_LINE]])
        if t.get("step") == failing:
            for text in t.get("failed") or [f"{b.get('check')} expected {b.get('expected')!r}"
                                            for b in t.get("broken") or ()]:
                lines.append(["expected", str(text)[:_LINE]])
            break
    return lines[-_LINES:]


class FailureGroups:
    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Any]] = {}
        self.steps: dict[str, list[Any]] = {}
        """"script:step" → [conversations that reached it, that broke there, what the customer said once]."""
        self.latency: dict[str, HdrHistogram] = {}
        """"script:step" → its turns' latency (a bot's answer; a message's first reply)."""
        self.overflow = 0

    def add(self, rec: Any) -> None:
        """Count one conversation (a ``SessionRecord``)."""
        script = rec.script or 0
        for t in rec.turns:
            step = t.get("step")
            if step is None:
                continue
            key = f"{script}:{step}"
            st = self.steps.setdefault(key, [0, 0, str(t.get("text") or "")[:_LINE]])
            st[0] += 1
            ms = t.get("reply_ms") if rec.replies is not None else t.get("latency_ms")
            if ms is not None and t.get("status") == 200:
                self._hist(key).record_value(min(_MAX_US, max(1, int(ms * 1000))))
            found = t.get("broken") or ()
            st[1] += 1 if found else 0
            for b in found:
                self._group(rec, script, step, t, b)

    def _group(self, rec: Any, script: int, step: int, turn: dict[str, Any], b: dict[str, Any]) -> None:
        # Not by the expected value: a data table's rows expect different texts of one check (the first is shown).
        key = f"{script}:{step}:{b.get('check')}"
        g = self.groups.get(key)
        if g is None:
            if len(self.groups) >= MAX_GROUPS:
                self.overflow += 1
                return
            latency = turn.get("reply_ms") if turn.get("reply_ms") is not None else turn.get("latency_ms")
            g = self.groups[key] = {
                "script": script, "step": step, "check": b.get("check"), "expected": b.get("expected"), "count": 0,
                "got": {}, "sample": {"session": rec.session_id, "name": rec.name, "latency_ms": latency,
                                      "transcript": _transcript(rec, step)}}
        g["count"] += 1
        got = str(b.get("got"))
        if got in g["got"] or len(g["got"]) < _MAX_GOT:
            g["got"][got] = g["got"].get(got, 0) + 1

    def _hist(self, key: str) -> HdrHistogram:
        h = self.latency.get(key)
        if h is None:
            h = self.latency[key] = HdrHistogram(1, _MAX_US, 2)
        return h

    def encode(self) -> dict[str, Any]:
        return {"groups": self.groups, "steps": self.steps, "overflow": self.overflow,
                "latency": {k: h.encode().decode("ascii") for k, h in self.latency.items() if h.get_total_count()}}

    def merge(self, data: dict[str, Any]) -> None:
        for key, g in (data.get("groups") or {}).items():
            mine = self.groups.get(key)
            if mine is None:
                if len(self.groups) >= MAX_GROUPS:
                    self.overflow += g["count"]
                    continue
                self.groups[key] = {**g, "got": dict(g["got"])}
                continue
            mine["count"] += g["count"]
            for got, n in g["got"].items():
                if got in mine["got"] or len(mine["got"]) < _MAX_GOT:
                    mine["got"][got] = mine["got"].get(got, 0) + n
        for key, (reached, failed, said) in (data.get("steps") or {}).items():
            st = self.steps.setdefault(key, [0, 0, said])
            st[0] += reached
            st[1] += failed
        self.overflow += int(data.get("overflow") or 0)
        for key, encoded in (data.get("latency") or {}).items():
            self._hist(key).add(HdrHistogram.decode(encoded.encode("ascii")))

    def _percentiles(self, key: str) -> dict[str, float]:
        h = self.latency.get(key)
        if h is None or not h.get_total_count():
            return {}
        return {f"p{p}_ms": round(h.get_value_at_percentile(p) / 1000, 2) for p in (50, 95, 99)}

    def summary(self) -> dict[str, Any]:
        """For a summary: groups most frequent first (what came instead, most frequent first), steps in order."""
        groups = sorted(self.groups.values(), key=lambda g: (-g["count"], g["script"], g["step"]))
        out = [{**g, "got": [[k, n] for k, n in Counter(g["got"]).most_common()]} for g in groups]
        steps = [{"script": int(k.split(":")[0]), "step": int(k.split(":")[1]), "reached": v[0], "failed": v[1],
                  "said": v[2], **self._percentiles(k)}
                 for k, v in sorted(self.steps.items(), key=lambda kv: tuple(map(int, kv[0].split(":"))))]
        return {"groups": out, "steps": steps, "overflow": self.overflow}


def _label(failures: dict[str, Any], script: int, step: int) -> str:
    scripts = 1 + max((s["script"] for s in failures.get("steps") or ()), default=0)
    return step_name(script, step, scripts)


def _got(g: dict[str, Any]) -> str:
    first, n = g["got"][0] if g["got"] else ("?", 0)
    more = g["count"] - n
    return f"got {first[:80]!r} ({n})" + (f" and {more} other answer(s)" if more > 0 else "")


def group_rows(failures: dict[str, Any], limit: int = 3) -> list[tuple[str, str]]:
    """The most frequent groups for the text summary: one line each, then its transcript on one line."""
    rows = []
    groups = failures.get("groups") or []
    for g in groups[:limit]:
        rows.append(("broke", f"{_label(failures, g['script'], g['step'])}: {g['check']} expected "
                              f"{g['expected'][:60]!r} in {g['count']} conversation(s); {_got(g)}"))
        lines = g["sample"]["transcript"]
        rows.append(("", " │ ".join(f"{who}: {text[:70]}" for who, text in lines[-6:])
                     + f"  (conversation {g['sample']['session'] or g['sample']['name']})"))
    if len(groups) > limit:
        rows.append(("broke", f"{len(groups) - limit} more group(s) in the report"
                              + (f"; {failures['overflow']} beyond the first {MAX_GROUPS}" if failures.get("overflow")
                                 else "")))
    return rows


def step_cases(failures: dict[str, Any]) -> list[tuple[str, str | None]]:
    """One JUnit test case per scripted step reached: its name, and why it failed (None: passed)."""
    by_step: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for g in failures.get("groups") or ():
        by_step.setdefault((g["script"], g["step"]), []).append(g)
    cases = []
    for st in failures.get("steps") or ():
        name = f"{_label(failures, st['script'], st['step'])}: {st['said'][:60]!r}"
        groups = by_step.get((st["script"], st["step"]), [])
        why = "; ".join(f"{g['check']} expected {g['expected'][:60]!r}: {g['count']} conversation(s), {_got(g)}"
                        for g in groups)
        cases.append((name, f"{st['failed']} of {st['reached']} conversations broke here: {why}" if st["failed"]
                      else None))
    return cases


class ScriptedFigures:
    """What a conversational section (``Conversations``, ``Chats``) answers from its ``failures``
    (:meth:`FailureGroups.summary`): the groups, one JUnit case per step, the steps."""

    failures: dict[str, Any]

    def failure_groups(self) -> list[dict[str, Any]]:
        return list(self.failures.get("groups") or [])

    def step_cases(self) -> list[tuple[str, str | None]]:
        return step_cases(self.failures)

    def steps(self) -> list[dict[str, Any]]:
        """Each scripted step: reached, broke, its turns' latency percentiles."""
        return list(self.failures.get("steps") or [])
