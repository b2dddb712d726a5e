"""Wire models for the OpenAI Images and Models APIs. No torch, no engine imports.

Fields follow the order of OpenAI's reference. Every optional field accepts JSON `null`, which
means "use the default" (the official Python client sends `null` for an explicit `None`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from pixelsmith.imaging import OutputFormat

Quality = Literal["auto", "low", "medium", "high", "standard", "hd"]
Background = Literal["transparent", "opaque", "auto"]
ResponseFormat = Literal["url", "b64_json"]

MAX_SEED = 2**63 - 1


class CreateImageRequest(BaseModel):
    """Body of `POST /v1/images/generations`."""

    # OpenAI answers unknown keys with 400 unknown_parameter; so do we.
    model_config = ConfigDict(extra="forbid")

    prompt: StrictStr = Field(description="A text description of the desired image(s).")
    background: Background | None = Field(
        default=None,
        description="transparent, opaque or auto (default). transparent is not supported yet.",
    )
    model: StrictStr | None = Field(
        default=None,
        description="An OpenAI name (gpt-image-1, gpt-image-1-mini, gpt-image-1.5, dall-e-2, "
        "dall-e-3) or a configured model id. Default: the server's default model with GPT "
        "image rules.",
    )
    moderation: Literal["low", "auto"] | None = Field(
        default=None, description="Content moderation level, low or auto (default)."
    )
    n: StrictInt | None = Field(
        default=None, ge=1, le=10, description="Number of images, 1-10 (dall-e-3: 1). Default 1."
    )
    output_compression: StrictInt | None = Field(
        default=None, ge=0, le=100, description="Quality 0-100 for jpeg and webp. Default 100."
    )
    output_format: OutputFormat | None = Field(
        default=None, description="png (default), jpeg or webp."
    )
    partial_images: StrictInt | None = Field(
        default=None, ge=0, le=3, description="Partial images to stream, 0-3 (with stream=true)."
    )
    quality: Quality | None = Field(
        default=None,
        description="auto (default), low, medium, high; standard or hd for dall-e names. "
        "Maps to the model's inference steps.",
    )
    response_format: ResponseFormat | None = Field(
        default=None,
        description="b64_json (default for GPT image names) or url (default for dall-e names).",
    )
    size: StrictStr | None = Field(
        default=None, description="WIDTHxHEIGHT from the model's sizes, or auto (default)."
    )
    stream: StrictBool | None = Field(
        default=None, description="Stream partial images as server-sent events (not yet supported)."
    )
    style: Literal["vivid", "natural"] | None = Field(
        default=None,
        description="dall-e-3 style: vivid (its default) or natural. Rewrites the prompt and "
        "returns revised_prompt.",
    )
    user: StrictStr | None = Field(
        default=None, description="End-user id, logged for abuse tracking."
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


class CreateImageEditRequest(BaseModel):
    """Fields of `POST /v1/images/edits` other than the files (multipart text fields arrive as
    strings and are converted before validation; see api/transport/bodies.py)."""

    model_config = ConfigDict(extra="forbid")

    prompt: StrictStr = Field(description="A text description of the desired edit.")
    background: Background | None = Field(default=None, description="As for generations.")
    input_fidelity: Literal["high", "low"] | None = Field(
        default=None,
        description="How closely the result keeps the input image: low (default) or high.",
    )
    model: StrictStr | None = Field(default=None, description="As for generations.")
    moderation: Literal["low", "auto"] | None = Field(default=None, description="low or auto.")
    n: StrictInt | None = Field(default=None, ge=1, le=10, description="Number of images, 1-10.")
    output_compression: StrictInt | None = Field(default=None, ge=0, le=100)
    output_format: OutputFormat | None = Field(default=None)
    partial_images: StrictInt | None = Field(default=None, ge=0, le=3)
    quality: Quality | None = Field(default=None)
    response_format: ResponseFormat | None = Field(default=None)
    size: StrictStr | None = Field(
        default=None, description="WIDTHxHEIGHT, or auto: the input's size on the model's grid."
    )
    stream: StrictBool | None = Field(default=None)
    user: StrictStr | None = Field(default=None)

    # --- pixelsmith extensions ---------------------------------------------------------------
    seed: StrictInt | None = Field(default=None, ge=0, le=MAX_SEED)
    negative_prompt: StrictStr | None = Field(default=None)
    num_inference_steps: StrictInt | None = Field(default=None, ge=1)
    guidance_scale: StrictFloat | StrictInt | None = Field(default=None, ge=0.0, le=50.0)


class CreateImageVariationRequest(BaseModel):
    """Fields of `POST /v1/images/variations` other than the image."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(default=None, description="dall-e-2 by default.")
    n: StrictInt | None = Field(default=None, ge=1, le=10)
    response_format: ResponseFormat | None = Field(default=None)
    size: StrictStr | None = Field(default=None)
    user: StrictStr | None = Field(default=None)
    seed: StrictInt | None = Field(default=None, ge=0, le=MAX_SEED)


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
    quality: Literal["low", "medium", "high"] | None = None
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
