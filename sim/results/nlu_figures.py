"""NLU regression figures (API reference §12), pure: from (utterance, expected intent, detected intents with their
probabilities) to a confusion matrix, precision / recall / F1 per intent and macro, a confidence histogram, the
close calls (top two intents within a margin) and the thresholds' verdicts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Detection", "NluFigures", "nlu_figures", "NONE"]

NONE = "(none)"
"""What an utterance is detected as when no intent reaches the minimum confidence."""


@dataclass(frozen=True)
class Detection:
    text: str
    expected: str
    intents: tuple[tuple[str, float], ...]
    """(intent, probability), most likely first."""

    def detected(self, min_confidence: float) -> str:
        return self.intents[0][0] if self.intents and self.intents[0][1] >= min_confidence else NONE

    @property
    def confidence(self) -> float:
        return self.intents[0][1] if self.intents else 0.0


@dataclass(frozen=True, kw_only=True)
class NluFigures:
    labels: tuple[str, ...]
    confusion: dict[str, dict[str, int]]
    """expected → detected → count."""
    per_intent: dict[str, dict[str, float]]
    """intent → precision, recall, f1, support."""
    macro: dict[str, float]
    histogram: dict[str, int]
    close: list[dict[str, Any]] = field(default_factory=list)
    wrong: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "confusion": self.confusion, "per_intent": self.per_intent,
                "macro": self.macro, "histogram": self.histogram, "close": self.close, "wrong": self.wrong}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def nlu_figures(detections: list[Detection], *, min_confidence: float, close_margin: float) -> NluFigures:
    expected = sorted({d.expected for d in detections})
    got = [d.detected(min_confidence) for d in detections]
    labels = tuple(expected + sorted({g for g in got} - set(expected) - {NONE}) + [NONE])
    confusion = {e: dict.fromkeys(labels, 0) for e in expected}
    for d, g in zip(detections, got):
        confusion[d.expected][g] += 1
    per: dict[str, dict[str, float]] = {}
    for intent in expected:
        tp = confusion[intent][intent]
        predicted = sum(confusion[e][intent] for e in expected)
        support = sum(confusion[intent].values())
        p, r = (tp / predicted if predicted else 0.0), (tp / support if support else 0.0)
        per[intent] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(_f1(p, r), 4), "support": support}
    n = max(1, len(per))
    macro = {k: round(sum(v[k] for v in per.values()) / n, 4) for k in ("precision", "recall", "f1")}
    hist = Counter(f"{min(9, int(d.confidence * 10)) / 10:.1f}-{min(10, int(d.confidence * 10) + 1) / 10:.1f}"
                   for d in detections)
    close = [{"text": d.text, "expected": d.expected, "top": list(d.intents[0]), "second": list(d.intents[1])}
             for d in detections if len(d.intents) > 1 and d.intents[1][1] > 0
             and d.intents[0][1] - d.intents[1][1] <= close_margin]
    wrong = [{"text": d.text, "expected": d.expected, "detected": g, "confidence": d.confidence}
             for d, g in zip(detections, got) if g != d.expected]
    return NluFigures(labels=labels, confusion=confusion, per_intent=per, macro=macro, histogram=dict(sorted(hist.items())),
                      close=close, wrong=wrong)
