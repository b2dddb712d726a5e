"""`POST /v1/moderations`: the same moderator that guards image generation, in OpenAI's shape,
for agents that want to check a prompt before they send it."""

from __future__ import annotations

import secrets

from PIL import Image

from pixelsmith.api.protocol import (
    CreateModerationRequest,
    ModerationImagePart,
    ModerationResponse,
    ModerationResult,
)
from pixelsmith.errors import InvalidRequestError, reject_unpaired_surrogates
from pixelsmith.moderation import Moderator, Verdict
from pixelsmith.service.inputs import MAX_PIXELS, PixelBudget, decode_data_url, read_image

# Every category of OpenAI's omni-moderation model, so clients find all the keys they expect.
OPENAI_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)  # fmt: skip
MODEL_NAME = "pixelsmith-moderation"
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_INPUTS = 32
MAX_TOTAL_CHARACTERS = 64_000
# The pixels one request may decode, all images together; each is shrunk to CHECKED_SIDE once
# decoded (the classifiers look at far fewer pixels), so only one is ever held at full size.
MAX_REQUEST_PIXELS = 2 * MAX_PIXELS
CHECKED_SIDE = 1024
# A flagged subcategory flags its parent too, as OpenAI's results do.
PARENTS = {
    "sexual/minors": "sexual",
    "sexual/real-person": "sexual",  # pixelsmith's own: OpenAI counts it as sexual
    "violence/graphic": "violence",
    "hate/threatening": "hate",
    "harassment/threatening": "harassment",
    "illicit/violent": "illicit",
    "self-harm/intent": "self-harm",
    "self-harm/instructions": "self-harm",
}
# The categories OpenAI scores on images as well as text.
IMAGE_CATEGORIES = {
    "sexual", "violence", "violence/graphic", "self-harm", "self-harm/intent",
    "self-harm/instructions",
}  # fmt: skip


def _check_limits(body: CreateModerationRequest) -> None:
    items = [body.input] if isinstance(body.input, str) else list(body.input)
    if not items:
        raise InvalidRequestError("input must not be empty.", param="input", code="invalid_value")
    if len(items) > MAX_INPUTS:
        raise InvalidRequestError(
            f"input may hold at most {MAX_INPUTS} items; got {len(items)}.",
            param="input",
            code="array_above_max_length",
        )
    texts = [item if isinstance(item, str) else getattr(item, "text", "") for item in items]
    if sum(len(text) for text in texts) > MAX_TOTAL_CHARACTERS:
        raise InvalidRequestError(
            f"input may hold at most {MAX_TOTAL_CHARACTERS} characters in all.",
            param="input",
            code="string_above_max_length",
        )
    for index, text in enumerate(texts):
        reject_unpaired_surrogates(
            text, "input" if isinstance(body.input, str) else f"input[{index}]"
        )


def _decode_image(url: str, index: int, budget: PixelBudget) -> Image.Image:
    param = f"input[{index}].image_url.url"
    # The same checks as uploads: sniffed format, byte and pixel limits (no decompression bombs).
    image = read_image(
        decode_data_url(url, param), param=param, max_bytes=MAX_IMAGE_BYTES, budget=budget
    ).image
    image.thumbnail((CHECKED_SIDE, CHECKED_SIDE))
    return image


def _result(verdict: Verdict, input_types: list[str]) -> ModerationResult:
    flagged = set(verdict.categories)
    scores = {name: float(verdict.scores.get(name, 0.0)) for name in OPENAI_CATEGORIES}
    for child, parent in PARENTS.items():
        if child in flagged:
            flagged.add(parent)
        scores[parent] = max(scores[parent], float(verdict.scores.get(child, 0.0)))
    return ModerationResult(
        flagged=bool(flagged),
        categories={name: name in flagged for name in OPENAI_CATEGORIES},
        category_scores=scores,
        category_applied_input_types={
            name: [kind for kind in input_types if kind == "text" or name in IMAGE_CATEGORIES]
            for name in OPENAI_CATEGORIES
        },
    )


def _results(moderator: Moderator, body: CreateModerationRequest) -> list[ModerationResult]:
    if isinstance(body.input, str):
        return [_result(moderator.check_prompt(body.input, "auto"), ["text"])]
    if all(isinstance(item, str) for item in body.input):
        return [_result(moderator.check_prompt(text, "auto"), ["text"]) for text in body.input]  # type: ignore[arg-type]
    # A list of parts is one input (OpenAI returns one result for it): text and images together,
    # so a minor named in the text counts with a sexual signal in an image.
    texts = [part.text for part in body.input if not isinstance(part, ModerationImagePart)]  # type: ignore[union-attr]
    budget = PixelBudget(MAX_REQUEST_PIXELS)
    images = [
        _decode_image(part.image_url.url, index, budget)
        for index, part in enumerate(body.input)
        if isinstance(part, ModerationImagePart)
    ]
    text_verdict = moderator.check_prompt(" ".join(texts), "auto")
    verdict = text_verdict
    types = ["text"] if texts else []
    if images:
        image_verdict = moderator.check_images(images, "auto", text_verdict)
        for category, score in image_verdict.scores.items():
            verdict.raise_score(category, score, "image")
        types.append("image")
    return [_result(verdict, types)]


def create_moderation(moderator: Moderator, body: CreateModerationRequest) -> ModerationResponse:
    """Classify text, and images given as data: URLs. Blocking: call it off the event loop."""
    _check_limits(body)
    return ModerationResponse(
        id=f"modr-{secrets.token_hex(12)}",
        model=body.model or MODEL_NAME,
        results=_results(moderator, body),
    )
