"""The moderator: prompt checks before generation, image checks after, behind one interface."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from PIL import Image

from pixelsmith.moderation.base import (
    DEPICTS_MINOR,
    DEPICTS_REAL_PERSON,
    SEXUAL_SIGNAL,
    SIGNAL_THRESHOLD,
    THRESHOLDS,
    ModerationLevel,
    Stage,
    Verdict,
)
from pixelsmith.moderation.classifiers import ImageClassifier, TextClassifier
from pixelsmith.moderation.rules import TermMatcher, default_matcher

logger = logging.getLogger("pixelsmith.moderation")


class Moderator:
    """Layers, cheapest first: term rules over normalised prompt views, then text classifiers
    (the learned prompt check, transformers models); images go through the image classifiers.

    Two rules combine signals and block at every level: a minor in the prompt plus any sexual
    signal, in the prompt or in an image, is sexual/minors; a real person in the prompt plus
    a sexual signal in the prompt, or nudity in an image, is sexual/real-person."""

    enabled = True

    def __init__(
        self,
        *,
        matcher: TermMatcher | None = None,
        text_classifiers: Sequence[TextClassifier] = (),
        image_classifiers: Sequence[ImageClassifier] = (),
    ) -> None:
        self.matcher = matcher or default_matcher()
        self.text_classifiers = list(text_classifiers)
        self.image_classifiers = list(image_classifiers)

    def describe(self) -> str:
        layers = ["rules"] + [c.name for c in self.text_classifiers]
        images = [c.name for c in self.image_classifiers] or ["none"]
        return f"prompts: {', '.join(layers)}; images: {', '.join(images)}"

    def check_prompt(self, prompt: str, level: ModerationLevel) -> Verdict:
        """Every prompt layer: the rules, then (unless they already block) the models."""
        verdict = self.check_prompt_rules(prompt, level)
        return verdict if verdict.blocked else self.check_prompt_models(prompt, verdict)

    def check_prompt_rules(self, prompt: str, level: ModerationLevel) -> Verdict:
        """The term rules alone: well under a millisecond, so they can gate the queue."""
        verdict = Verdict(stage="input", level=level)
        rules = self.matcher.match(prompt)
        verdict.mentions_minor = rules.mentions_minor
        for term in rules.terms:
            category, _, _ = term.partition(":")
            verdict.raise_score(category, rules.scores[category], f"rule {term}")
        self._apply_minors_rule(verdict, verdict.scores.get("sexual", 0.0), "prompt")
        if verdict.blocked or not self.text_classifiers:
            self._log(verdict)
        return verdict

    def check_prompt_models(self, prompt: str, rules: Verdict) -> Verdict:
        """The model-based prompt layers, on top of the rules' verdict (which is not changed).
        They cost milliseconds on a CPU, so the server runs them beside the generation."""
        verdict = replace(rules, scores=dict(rules.scores), evidence=list(rules.evidence))
        for classifier in self.text_classifiers:
            for category, score in classifier.scores(prompt).items():
                why = f"{classifier.name} {category}={score:.2f}"
                if category in (DEPICTS_MINOR, DEPICTS_REAL_PERSON):
                    if score >= SIGNAL_THRESHOLD:
                        if category == DEPICTS_MINOR:
                            verdict.mentions_minor = True
                        else:
                            verdict.depicts_real_person = True
                        verdict.evidence.append(why)
                    continue
                verdict.raise_score(category, score, why)
        sexual = verdict.scores.get("sexual", 0.0)
        self._apply_minors_rule(verdict, sexual, "prompt")
        if verdict.depicts_real_person and sexual >= SEXUAL_SIGNAL:
            verdict.raise_score("sexual/real-person", 1.0, "real person + sexual signal in prompt")
        self._log(verdict)
        return verdict

    def check_images(
        self,
        images: Sequence[Image.Image],
        level: ModerationLevel,
        prompt: Verdict | None = None,
        stage: Stage = "output",
    ) -> Verdict:
        """One verdict for a set of images: blocked if any image is. Generated images are the
        output stage; the input images of edits and variations are the input stage."""
        verdict = Verdict(stage=stage, level=level)
        verdict.mentions_minor = bool(prompt and prompt.mentions_minor)
        verdict.depicts_real_person = bool(prompt and prompt.depicts_real_person)
        for classifier in self.image_classifiers:
            for index, scores in enumerate(classifier.scores(list(images))):
                for category, score in scores.items():
                    why = f"{classifier.name} image {index} {category}={score:.2f}"
                    verdict.raise_score(category, score, why)
        sexual = verdict.scores.get("sexual", 0.0)
        self._apply_minors_rule(verdict, sexual, "image")
        # Nudity, not a weak signal such as swimwear: a real person at the beach is no harm.
        if verdict.depicts_real_person and sexual >= THRESHOLDS["auto"]:
            verdict.raise_score(
                "sexual/real-person", 1.0, "real person in prompt + nudity in image"
            )
        self._log(verdict)
        return verdict

    @staticmethod
    def _apply_minors_rule(verdict: Verdict, sexual: float, where: str) -> None:
        if verdict.mentions_minor and sexual >= SEXUAL_SIGNAL:
            verdict.raise_score("sexual/minors", 1.0, f"minor in prompt + sexual signal in {where}")

    @staticmethod
    def _log(verdict: Verdict) -> None:
        # Decisions and scores only: never images, and never the prompt text itself.
        if verdict.blocked:
            logger.info(
                "moderation blocked stage=%s level=%s categories=%s scores=%s evidence=%s",
                verdict.stage, verdict.level, verdict.categories, verdict.scores, verdict.evidence,
            )  # fmt: skip
        else:
            logger.debug(
                "moderation passed stage=%s level=%s scores=%s",
                verdict.stage, verdict.level, verdict.scores,
            )  # fmt: skip


class DisabledModerator(Moderator):
    """Moderation turned off by the operator: the term rules are never consulted and there are
    no classifiers, so every check passes."""

    enabled = False

    def describe(self) -> str:
        return "disabled"

    def check_prompt_rules(self, prompt: str, level: ModerationLevel) -> Verdict:
        return Verdict(stage="input", level=level)
