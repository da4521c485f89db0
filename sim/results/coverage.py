"""Coverage of a bot conversation run (API reference §12): which of the bot's intents and slots (as its NLU domain
version defines them) the run's sessions exercised — by what the platform reported about their turns — and how
they ended (exit reasons). Pure."""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["coverage", "coverage_text"]


def coverage(defined: dict[str, list[str]] | None, turns: list[dict[str, Any]], endings: Counter[str]) -> dict[str, Any]:
    """``defined``: intent → its slots (None: the domain could not be read); ``turns``: the reporting turns of the
    run's sessions; ``endings``: how the sessions ended ("Exit:TriggeredByFlow", ...)."""
    intents: Counter[str] = Counter()
    slots: Counter[str] = Counter()
    results: Counter[str] = Counter()
    for t in turns:
        intent = t.get("intent") or {}
        if intent.get("name"):
            intents[str(intent["name"])] += 1
        for s in intent.get("slots") or ():
            if isinstance(s, dict) and s.get("name"):
                slots[str(s["name"])] += 1
        if t.get("askActionResult"):
            results[str(t["askActionResult"])] += 1
    out: dict[str, Any] = {"intents": dict(intents.most_common()), "slots": dict(slots.most_common()),
                           "ask_action_results": dict(results.most_common()), "endings": dict(endings.most_common())}
    if defined is not None:
        all_slots = sorted({s for v in defined.values() for s in v})
        out["defined_intents"] = sorted(defined)
        out["defined_slots"] = all_slots
        out["uncovered_intents"] = [i for i in sorted(defined) if i not in intents]
        out["uncovered_slots"] = [s for s in all_slots if s not in slots]
    return out


def coverage_text(c: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows for the text summary."""
    if "defined_intents" in c:
        di, ds = c["defined_intents"], c["defined_slots"]
        rows = [("coverage", f"intents {len(di) - len(c['uncovered_intents'])} of {len(di)}"
                             + (f" (not exercised: {', '.join(c['uncovered_intents'])})" if c["uncovered_intents"] else "")
                             + f"; slots {len(ds) - len(c['uncovered_slots'])} of {len(ds)}"
                             + (f" (not filled: {', '.join(c['uncovered_slots'])})" if c["uncovered_slots"] else ""))]
    else:
        rows = [("coverage", "intents exercised: " + (", ".join(f"{k} {v}" for k, v in c["intents"].items()) or "none")
                 + " (the bot's NLU domain could not be read: what it defines is unknown)")]
    rows.append(("", "ended: " + (", ".join(f"{k} {v}" for k, v in c["endings"].items()) or "–") + "; ask action results: "
                 + (", ".join(f"{k} {v}" for k, v in c["ask_action_results"].items()) or "–")))
    return rows
