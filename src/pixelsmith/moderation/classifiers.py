"""Model-based classifiers behind two small interfaces. Each returns category scores in [0, 1].

Built-in: NudeNet for images (its wheel ships an ONNX detector; AGPL-3.0, optional extra),
the learned multilingual prompt check (learned.py), and any transformers text or
image classification model from a local path (or a hub id where a hub is reachable).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)


class TextClassifier(Protocol):
    name: str

    def scores(self, text: str) -> dict[str, float]: ...


class ImageClassifier(Protocol):
    name: str

    def scores(self, images: list[Image.Image]) -> list[dict[str, float]]: ...


# Labels used by common moderation models, mapped to our categories. Other labels ("normal",
# "safe", "neutral", "drawings", "OK") carry no risk and are ignored.
LABEL_CATEGORIES = {
    "nsfw": "sexual", "porn": "sexual", "hentai": "sexual",
    "explicit": "sexual", "sexual": "sexual", "sexual_explicit": "sexual", "s": "sexual",
    "sexual/minors": "sexual/minors", "s3": "sexual/minors",
    "gore": "violence/graphic", "violence/graphic": "violence/graphic", "v2": "violence/graphic",
    # Violence that is not graphic is scored (POST /v1/moderations shows it) but never blocks.
    "violence": "violence", "violent": "violence", "v": "violence",
    "self-harm": "self-harm", "self_harm": "self-harm", "sh": "self-harm",
    "hate": "hate", "hateful": "hate", "identity_hate": "hate", "h": "hate", "h2": "hate",
    "illicit": "illicit", "drugs": "illicit", "weapons": "illicit",
}  # fmt: skip


# Labels that lean towards a category without being it: "sexy" (swimwear, lingerie) counts as
# a weak sexual signal, enough for the minors rule but not to block on its own.
WEAK_LABELS = {"sexy": ("sexual", 0.45)}


def label_scores(predictions: list[dict[str, Any]]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for prediction in predictions:
        label = str(prediction["label"]).lower()
        score = float(prediction["score"])
        category = LABEL_CATEGORIES.get(label)
        if label in WEAK_LABELS:
            category, ceiling = WEAK_LABELS[label]
            score = min(score, ceiling)
        if category is not None:
            scores[category] = max(scores.get(category, 0.0), score)
    return scores


class NudeNetClassifier:
    """NudeNet's YOLOv8 detector (320n, bundled in the wheel) on onnxruntime: ~20 ms an image."""

    name = "nudenet"
    # Detections that are sexual on their own, and how a detector score becomes our score.
    EXPLICIT = {"FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_EXPOSED"}
    PARTIAL = {"FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED"}
    # Not sexual alone, but a signal when the prompt mentions a minor.
    SUGGESTIVE = {"FEMALE_BREAST_COVERED", "FEMALE_GENITALIA_COVERED", "BUTTOCKS_COVERED"}

    def __init__(self) -> None:
        from nudenet import NudeDetector

        self._detector = NudeDetector()

    def scores(self, images: list[Image.Image]) -> list[dict[str, float]]:
        return [self._score(image) for image in images]

    def _score(self, image: Image.Image) -> dict[str, float]:
        # NudeNet converts its input with cv2's RGBA->BGR, so hand it RGBA pixels.
        detections = self._detector.detect(np.asarray(image.convert("RGBA")))
        sexual = 0.0
        for detection in detections:
            label, confidence = detection["class"], float(detection["score"])
            if label in self.EXPLICIT:
                sexual = max(sexual, 1.0 if confidence >= 0.45 else confidence)
            elif label in self.PARTIAL:
                # 0.4 -> 0.5 (blocked at auto), 0.72 -> 0.9 (blocked at low)
                sexual = max(sexual, min(1.0, 0.5 + (confidence - 0.4) * 1.25))
            elif label in self.SUGGESTIVE:
                sexual = max(sexual, min(0.45, confidence * 0.6))
        return {"sexual": sexual} if sexual else {}


class _TransformersClassifier:
    """A transformers classification pipeline on the CPU, named after its model."""

    task: ClassVar[Literal["image-classification", "text-classification"]]

    def __init__(self, model: str) -> None:
        from transformers import pipeline

        self.name = model
        self._pipeline: Any = pipeline(self.task, model=model, device=-1)


class TransformersImageClassifier(_TransformersClassifier):
    """Any transformers image-classification model (e.g. Falconsai/nsfw_image_detection)."""

    task = "image-classification"

    def scores(self, images: list[Image.Image]) -> list[dict[str, float]]:
        outputs = self._pipeline([image.convert("RGB") for image in images], top_k=None)
        return [label_scores(predictions) for predictions in outputs]


class TransformersTextClassifier(_TransformersClassifier):
    """Any transformers text-classification model (e.g. KoalaAI/Text-Moderation)."""

    task = "text-classification"

    def scores(self, text: str) -> dict[str, float]:
        predictions = self._pipeline(text, top_k=None, truncation=True)
        return label_scores(predictions)
