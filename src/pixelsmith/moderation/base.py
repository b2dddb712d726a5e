"""What every moderation layer produces: category scores in [0, 1], compared with thresholds
that depend on the `moderation` level of the request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ModerationLevel = Literal["auto", "low"]
Stage = Literal["input", "output"]

# The categories pixelsmith decides on (OpenAI moderation names).
CATEGORIES = ("sexual", "sexual/minors", "violence/graphic", "self-harm", "hate", "illicit")

# A category is flagged when its score reaches the threshold of the request's level. `low`
# loosens every threshold except sexual/minors, which blocks the same at every level.
THRESHOLDS: dict[ModerationLevel, float] = {"auto": 0.5, "low": 0.9}
MINORS_THRESHOLD = 0.5
# Any sexual signal at or above this, together with a minor in the prompt, is sexual/minors.
SEXUAL_SIGNAL = 0.3


def threshold(category: str, level: ModerationLevel) -> float:
    return MINORS_THRESHOLD if category == "sexual/minors" else THRESHOLDS[level]


@dataclass
class Verdict:
    """The outcome of one check: scores per category, and what the server log should say."""

    stage: Stage
    level: ModerationLevel
    scores: dict[str, float] = field(default_factory=dict)
    mentions_minor: bool = False
    evidence: list[str] = field(default_factory=list)

    def raise_score(self, category: str, score: float, why: str) -> None:
        if score > self.scores.get(category, 0.0):
            self.scores[category] = round(score, 4)
        if score >= SEXUAL_SIGNAL:
            self.evidence.append(why)

    @property
    def categories(self) -> list[str]:
        """Flagged categories, in a fixed order."""
        return [
            category
            for category in CATEGORIES
            if self.scores.get(category, 0.0) >= threshold(category, self.level)
        ]

    @property
    def blocked(self) -> bool:
        return bool(self.categories)
