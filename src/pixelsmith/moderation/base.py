"""What every moderation layer produces: category scores in [0, 1], compared with thresholds
that depend on the `moderation` level of the request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ModerationLevel = Literal["auto", "low"]
Stage = Literal["input", "output"]

# The categories pixelsmith decides on (OpenAI moderation names, and sexual/real-person:
# nudity or sexual content of a real, identifiable person, which OpenAI's API counts as
# sexual).
CATEGORIES = (
    "sexual",
    "sexual/minors",
    "sexual/real-person",
    "violence/graphic",
    "self-harm",
    "hate",
    "illicit",
)

# A category is flagged when its score reaches the threshold of the request's level. `low`
# loosens every threshold except those of sexual content involving minors or real people,
# which block the same at every level.
THRESHOLDS: dict[ModerationLevel, float] = {"auto": 0.5, "low": 0.9}
MINORS_THRESHOLD = 0.5
EVERY_LEVEL = frozenset({"sexual/minors", "sexual/real-person"})
# Any sexual signal at or above this, together with a minor in the prompt, is sexual/minors;
# together with a real person, sexual/real-person.
SEXUAL_SIGNAL = 0.3
# Signals a text classifier may report beside category scores: who the prompt depicts. At 0.5
# or more they set Verdict.mentions_minor / depicts_real_person; they block nothing alone.
DEPICTS_MINOR = "depicts:minor"
DEPICTS_REAL_PERSON = "depicts:real-person"
SIGNAL_THRESHOLD = 0.5


def threshold(category: str, level: ModerationLevel) -> float:
    return MINORS_THRESHOLD if category in EVERY_LEVEL else THRESHOLDS[level]


@dataclass
class Verdict:
    """The outcome of one check: scores per category, and what the server log should say."""

    stage: Stage
    level: ModerationLevel
    scores: dict[str, float] = field(default_factory=dict)
    mentions_minor: bool = False
    depicts_real_person: bool = False
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
