"""Wire models for the OpenAI Images and Models APIs. No torch, no engine imports.

Fields follow the order of OpenAI's reference. Every optional field accepts JSON `null`, which
means "use the default" (the official Python client sends `null` for an explicit `None`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from pixelsmith.imaging import OutputFormat

Quality = Literal["low", "medium", "high", "xhigh", "max", "auto", "standard", "hd"]
# The quality a response reports: the tier that was made, never auto.
ResolvedQuality = Literal["low", "medium", "high", "xhigh", "max"]
Background = Literal["transparent", "opaque", "auto"]
ResponseFormat = Literal["url", "b64_json"]

MAX_SEED = 2**63 - 1


# How long an end-user id (`user`, `safety_identifier`) may be: pixelsmith's own cap (OpenAI
# states none); they are identities, never logged raw.
MAX_END_USER_CHARS = 256


class SvgReasoning(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = Field(
        default=None,
        description="How much detail the tracer keeps: none and minimal give a few flat shapes, "
        "max keeps fine detail. Default: medium.",
    )


class SvgOptions(BaseModel):
    """`svg` (with output_format=svg): the model that writes the SVG, and its effort."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(
        default=None,
        description="The SVG author. pixelsmith traces the rendered image with `vtracer`, the "
        "only value it takes. Default: vtracer.",
    )
    reasoning: SvgReasoning | None = Field(default=None, description="The author's effort.")


class ImageRequestFields(BaseModel):
    """The fields generations and edits share, in the order of OpenAI's reference."""

    # OpenAI answers unknown keys with 400 unknown_parameter; so do we.
    model_config = ConfigDict(extra="forbid")

    prompt: StrictStr = Field(description="A text description of the desired image(s).")
    background: Background | None = Field(
        default=None,
        description="transparent, opaque or auto (default). transparent needs png or webp: the "
        "subject is cut out of a plain backdrop (docs/api.md).",
    )
    complexity: Literal["low", "medium", "high"] | None = Field(
        default=None,
        description="Work spent planning the image before it is rendered: low renders "
        "directly; medium and high draft 2 or 4 candidates at low resolution and render the "
        "best. Default: the model's configured default.",
    )
    frame_count: StrictInt | None = Field(
        default=None,
        ge=2,
        le=16,
        description="Frames of a GIF (output_format=gif), 2-16. Default 9.",
    )
    frame_duration_ms: StrictInt | None = Field(
        default=None,
        ge=0,
        description="Delay per GIF frame in milliseconds, rounded to the nearest 10 ms (at "
        "least 10), at most 655350. Default 200.",
    )
    model: StrictStr | None = Field(
        default=None,
        description="An OpenAI model name (gpt-image-2.5-flare, gpt-image-2, gpt-image-1.5, ..., "
        "dall-e-3; /v1/models lists them) or a configured model id. Default: the server's "
        "default model with GPT image rules.",
    )
    moderation: Literal["low", "auto"] | None = Field(
        default=None, description="Content moderation level, low or auto (default)."
    )
    n: StrictInt | None = Field(
        default=None, ge=1, le=10, description="Number of images, 1-10 (dall-e-3 and svg: 1)."
    )
    output_compression: StrictInt | None = Field(
        default=None, ge=0, le=100, description="Quality 0-100 for jpeg and webp. Default 100."
    )
    output_format: OutputFormat | None = Field(
        default=None, description="png (default), jpeg, webp, gif (animated) or svg (traced)."
    )
    partial_images: StrictInt | None = Field(
        default=None, ge=0, le=3, description="Partial images to stream, 0-3 (with stream=true)."
    )
    quality: Quality | None = Field(
        default=None,
        description="auto (default), low, medium, high; xhigh and max for gpt-image-2.5 and "
        "later; standard or hd for the dall-e names. Maps to the model's inference steps.",
    )
    response_format: ResponseFormat | None = Field(
        default=None,
        description="b64_json (the default for GPT image names) or url (the default for the "
        "dall-e names). Refused for gpt-image-2 and later, which always answer base64.",
    )
    safety_identifier: StrictStr | None = Field(
        default=None,
        max_length=MAX_END_USER_CHARS,
        description="A stable id of the end user, echoed in the response. Without API keys "
        "configured, per-key limits count it. Takes precedence over `user`.",
    )
    size: StrictStr | None = Field(
        default=None,
        description="auto (default) or WIDTHxHEIGHT: the model's sizes and what its family "
        "allows; for gpt-image-2 and later any size with sides divisible by 16, an aspect "
        "ratio from 1:3 to 3:1 and at most 3840x2160 pixels, within the model's limits.",
    )
    stream: StrictBool | None = Field(
        default=None, description="Stream partial images as server-sent events."
    )
    svg: SvgOptions | None = Field(default=None, description="With output_format=svg.")
    user: StrictStr | None = Field(
        default=None,
        max_length=MAX_END_USER_CHARS,
        description="Deprecated: use safety_identifier. The end-user id when it is not given.",
    )

    # --- pixelsmith extensions (official clients send these through `extra_body`) -------------
    seed: StrictInt | None = Field(
        default=None,
        ge=0,
        le=MAX_SEED,
        description="pixelsmith extension. Seed of the first image; image i uses seed + i. "
        "Default: random. Each returned image carries its seed.",
    )
    negative_prompt: StrictStr | None = Field(
        default=None,
        description="pixelsmith extension. What to keep out of the image "
        "(needs guidance_scale > 1).",
    )
    num_inference_steps: StrictInt | None = Field(
        default=None,
        ge=1,
        description="pixelsmith extension. Denoising steps; overrides the steps chosen by quality.",
    )
    guidance_scale: StrictFloat | StrictInt | None = Field(
        default=None,
        ge=0.0,
        le=50.0,
        description="pixelsmith extension. Classifier-free guidance scale.",
    )

    @property
    def end_user(self) -> str | None:
        """The effective end-user id: a non-empty `safety_identifier`, else `user`."""
        return self.safety_identifier or self.user or None


class CreateImageRequest(ImageRequestFields):
    """Body of `POST /v1/images/generations`."""

    style: Literal["vivid", "natural"] | None = Field(
        default=None,
        description="Legacy, for dall-e-3: vivid (its default) or natural. Rewrites the prompt "
        "and returns revised_prompt. Refused for gpt-image-2 and later.",
    )


class CreateImageEditRequest(ImageRequestFields):
    """Fields of `POST /v1/images/edits` other than the files (`image`, `mask`, `markup`).
    Multipart text fields arrive as strings and are converted before validation; see
    api/transport/bodies.py."""

    prompt: StrictStr = Field(description="A text description of the desired edit.")
    input_fidelity: Literal["high", "low"] | None = Field(
        default=None,
        description="How closely the result keeps the input image: low (default) or high.",
    )
    size: StrictStr | None = Field(
        default=None,
        description="auto (default: the input's size on the model's grid) or WIDTHxHEIGHT, as "
        "for generations.",
    )


class CreateImageVariationRequest(BaseModel):
    """Fields of `POST /v1/images/variations` other than the image."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(default=None, description="dall-e-2 by default.")
    n: StrictInt | None = Field(default=None, ge=1, le=10)
    response_format: ResponseFormat | None = Field(default=None)
    size: StrictStr | None = Field(default=None)
    user: StrictStr | None = Field(default=None, max_length=MAX_END_USER_CHARS)
    seed: StrictInt | None = Field(default=None, ge=0, le=MAX_SEED)

    @property
    def end_user(self) -> str | None:
        return self.user or None


class ImageData(BaseModel):
    b64_json: str | None = Field(default=None, description="Base64 image (no data: prefix).")
    url: str | None = Field(
        default=None, description="Signed URL, valid for 60 minutes by default."
    )
    revised_prompt: str | None = Field(
        default=None, description="The prompt actually used, when the server changed it (style)."
    )
    seed: int | None = Field(default=None, description="pixelsmith extension: this image's seed.")


class InputTokensDetails(BaseModel):
    text_tokens: int
    image_tokens: int


class OutputTokensDetails(BaseModel):
    image_tokens: int
    text_tokens: int


class ImageUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    background: Literal["transparent", "opaque"] | None = None
    output_format: OutputFormat | None = None
    quality: ResolvedQuality | None = None
    safety_identifier: str | None = Field(
        default=None, description="The request's end-user id (safety_identifier, else user)."
    )
    size: str | None = None
    usage: ImageUsage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- Moderations API ------------------------------------------------------------------------


class ModerationImageURL(BaseModel):
    url: StrictStr = Field(description="A data: URL (base64 PNG, JPEG or WebP).")


class ModerationTextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: StrictStr


class ModerationImagePart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["image_url"]
    image_url: ModerationImageURL


class CreateModerationRequest(BaseModel):
    """Body of `POST /v1/moderations`."""

    model_config = ConfigDict(extra="forbid")

    input: StrictStr | list[StrictStr] | list[ModerationTextPart | ModerationImagePart] = Field(
        description="Text, a list of texts, or a list of text and image_url parts."
    )
    model: StrictStr | None = Field(
        default=None, description="Accepted and echoed; pixelsmith has one moderator."
    )


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


class ModerationResponse(BaseModel):
    id: str
    model: str
    results: list[ModerationResult]
