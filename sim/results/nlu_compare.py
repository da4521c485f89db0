"""``flowsim compare A.json B.json`` for two ``flowsim nlu --json`` files: which utterances changed intent, and
how precision / recall / F1 moved, per intent and macro. Pure: from the two files' data to :class:`NluChanges`.

An utterance is matched by its text and the intent it must be (the same line in two sets is two utterances). Its
detection is what each run wrote (``detected``: the top intent at that run's minimum confidence, or ``(none)``).
B regressed when its macro F1, or any intent's F1, is lower than A's by more than the tolerance; the utterances
that went from right to wrong are listed either way, since a model that is deterministic for one version changes
an answer only when the model (or the utterance set) changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sim.errors import ConfigError

__all__ = ["NluChanges", "nlu_changes", "is_nlu_result"]


def is_nlu_result(data: Any) -> bool:
    return isinstance(data, dict) and data.get("kind") == "nlu"


@dataclass(frozen=True, kw_only=True)
class NluChanges:
    broke: list[dict[str, str]] = field(default_factory=list)
    """Right in A, wrong in B: text, expected, a (what A detected), b."""
    fixed: list[dict[str, str]] = field(default_factory=list)
    moved: list[dict[str, str]] = field(default_factory=list)
    """Wrong in both, as a different intent."""
    only_a: int = 0
    only_b: int = 0
    f1: list[tuple[str, float | None, float | None, bool]] = field(default_factory=list)
    """(intent or "macro", A's F1, B's F1, regressed) for every intent of either run, macro last."""

    @property
    def regressed(self) -> list[str]:
        return [name for name, _a, _b, bad in self.f1 if bad]


def _detections(data: dict[str, Any], source: str) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for d in data.get("detections") or ():
        if not isinstance(d, dict) or not all(isinstance(d.get(k), str) for k in ("text", "expected", "detected")):
            raise ConfigError("a detection without text, expected and detected: not a flowsim nlu --json file",
                              source=source)
        out.setdefault((d["text"], d["expected"]), []).append(d["detected"])
    return out


def _f1(data: dict[str, Any]) -> dict[str, float]:
    return {k: float(v["f1"]) for k, v in (data.get("per_intent") or {}).items()}


def nlu_changes(a: dict[str, Any], b: dict[str, Any], *, f1_abs: float, sources: tuple[str, str] = ("A", "B")) \
        -> NluChanges:
    da, db = _detections(a, sources[0]), _detections(b, sources[1])
    out = NluChanges()
    for key in sorted(da.keys() & db.keys()):
        # The same line twice in one set: compare occurrence by occurrence.
        for got_a, got_b in zip(da[key], db[key]):
            if got_a == got_b:
                continue
            row = {"text": key[0], "expected": key[1], "a": got_a, "b": got_b}
            (out.broke if got_a == key[1] else out.fixed if got_b == key[1] else out.moved).append(row)
    counts_a = Counter({k: len(v) for k, v in da.items()})
    counts_b = Counter({k: len(v) for k, v in db.items()})
    f1a, f1b = _f1(a), _f1(b)
    rows = [(n, f1a.get(n), f1b.get(n)) for n in sorted(f1a.keys() | f1b.keys())]
    rows.append(("macro", (a.get("macro") or {}).get("f1"), (b.get("macro") or {}).get("f1")))
    f1 = [(n, x, y, x is not None and (y is None or y < x - f1_abs)) for n, x, y in rows]
    return NluChanges(broke=out.broke, fixed=out.fixed, moved=out.moved, only_a=sum((counts_a - counts_b).values()),
                      only_b=sum((counts_b - counts_a).values()), f1=f1)
