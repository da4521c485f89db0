"""What the simulated bots understand (API reference §12): an intent recognised from its example utterances by word
overlap (deterministic, like a keyword model), with that overlap as its confidence, and slot values picked out of
a sentence. The dialog (``sim.platform.bots``) and the reporting turns it leaves use it. Pure.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.platform.bots import BotDefinition, Intent

__all__ = ["match_intent", "score_intent", "scores", "extract", "words", "quality", "MIN_CONFIDENCE"]

MIN_CONFIDENCE = 0.5
"""An intent is recognised when its best example shares at least this share of its words with the input."""

_WORD = re.compile(r"[a-z0-9']+")
_STOP = frozenset("a an the i my me to is it of for please can you do would like want".split())


def words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _STOP)


def score_intent(bot: BotDefinition, text: str) -> tuple[Intent | None, float]:
    """The intent whose example utterance shares the largest share of its words with ``text`` (ties go to the
    first defined), and that share: its confidence. (None, 0.0) for a bot without intents or a text without words."""
    said = words(text)
    best, score = None, 0.0
    for intent in bot.intents:
        for u in intent.utterances:
            ex = words(u)
            s = len(ex & said) / len(ex) if ex else 0.0
            if s > score:
                best, score = intent, s
    return best, round(score, 4)


def scores(bot: BotDefinition, text: str) -> list[tuple[Intent, float]]:
    """Every intent with its best example's overlap with ``text``, most likely first (what a detect call answers)."""
    said = words(text)
    out = []
    for intent in bot.intents:
        best = max((len(ex & said) / len(ex) for ex in map(words, intent.utterances) if ex), default=0.0)
        out.append((intent, round(best, 4)))
    return sorted(out, key=lambda p: -p[1])


def quality(bot: BotDefinition) -> tuple[dict[str, dict[str, int]], dict[str, float]]:
    """The model judged on its own training utterances, each held out in turn (leave one out, as a vendor's quality
    report cross-validates): expected intent → detected intent (or ``""``: none reached the minimum) → count, and
    the macro precision, recall and F1 of that matrix."""
    names = [i.name for i in bot.intents]
    matrix = {n: dict.fromkeys([*names, ""], 0) for n in names}
    for k, intent in enumerate(bot.intents):
        for j in range(len(intent.utterances)):
            rest = intent.utterances[:j] + intent.utterances[j + 1:]
            others = tuple(dataclasses.replace(i, utterances=rest) if i is intent else i for i in bot.intents)
            top, score = score_intent(dataclasses.replace(bot, intents=others), intent.utterances[j])
            matrix[names[k]][top.name if top is not None and score >= MIN_CONFIDENCE else ""] += 1
    per = []
    for n in names:
        predicted = sum(row[n] for row in matrix.values())
        p = matrix[n][n] / predicted if predicted else 0.0
        r = matrix[n][n] / sum(matrix[n].values()) if sum(matrix[n].values()) else 0.0
        per.append((p, r, 2 * p * r / (p + r) if p + r else 0.0))
    k = max(1, len(per))
    return matrix, {m: round(sum(x[i] for x in per) / k, 4) for i, m in enumerate(("precision", "recall", "f1_score"))}


def match_intent(bot: BotDefinition, text: str) -> Intent | None:
    """The recognised intent (confidence at least :data:`MIN_CONFIDENCE`), or None."""
    best, score = score_intent(bot, text)
    return best if score >= MIN_CONFIDENCE else None


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")
_NUMBER = re.compile(r"\b\d+\b")
_NAME = re.compile(r"(?:my name is|i am|i'm|this is|it's|it is|name's)\s+([A-Za-z][\w'-]*(?:\s+[A-Za-z][\w'-]*){0,3})", re.I)
_YES = frozenset("yes yeah yep yup correct right sure ok okay affirmative".split())
_NO = frozenset("no nope nah wrong incorrect negative".split())


def extract(slot_type: str, text: str, *, strict: bool = False) -> str | None:
    """The value of a slot of ``slot_type`` in ``text`` (None: not there). ``strict``: only a value the text
    clearly states (for slots picked out of the sentence that named the intent)."""
    text = text.strip()
    if slot_type == "email":
        m = _EMAIL.search(text)
        return m.group(0) if m else None
    if slot_type == "phone":
        m = _PHONE.search(text)
        return re.sub(r"[^\d+]", "", m.group(0)) if m else None
    if slot_type == "number":
        m = _NUMBER.search(text)
        return m.group(0) if m else None
    if slot_type == "name":
        m = _NAME.search(text)
        if m:
            return m.group(1).strip()
        words = text.split()
        return None if strict else text if 0 < len(words) <= 4 and all(w.replace("-", "").replace("'", "").isalpha() for w in words) else None
    if slot_type == "yesno" and not strict:
        said = set(_WORD.findall(text.lower()))
        return "yes" if said & _YES and not said & _NO else "no" if said & _NO else None
    return None if strict else text or None
