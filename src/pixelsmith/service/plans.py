"""What a plan is: a request turned into the engine job, with what its answer needs. Made by
planning.py; read by the moderation gate, the output writer and the stream events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from PIL import Image

from pixelsmith.engine import GenerationJob, ModelSpec
from pixelsmith.imaging import OutputFormat
from pixelsmith.moderation import ModerationLevel
from pixelsmith.service.names import NameRules, QualityTier
from pixelsmith.sizes import ImageSize

Operation = Literal["generation", "edit", "variation"]


@dataclass(frozen=True)
class Target:
    """The model a request names, and the rules of the name it used."""

    spec: ModelSpec
    rules: NameRules
    name: str  # as the client sent it, or the default model's id
    described: str  # for messages about the name's rules (the default model says whose)

    @property
    def legacy_family(self) -> str | None:
        """dall-e-2 or dall-e-3 when the client used those names: their errors look older."""
        return self.rules.family if self.rules.family in ("dall-e-2", "dall-e-3") else None


@dataclass(frozen=True)
class OutputOptions:
    format: OutputFormat
    compression: int
    response_format: str
    transparent: bool = False  # background="transparent": outputs are matted to RGBA
    # An edit's input alpha channel, put back on outputs (in formats that keep alpha).
    keep_alpha: Image.Image | None = None

    @property
    def background(self) -> Literal["transparent", "opaque"]:
        return "transparent" if self.transparent or self.keep_alpha is not None else "opaque"


@dataclass(frozen=True)
class ImagePlan:
    """A request ready for the engine: the job, and what its answer needs."""

    operation: Operation
    target: Target
    job: GenerationJob
    prompt: str  # as the client sent it (moderation reads this); job.prompt may be styled
    moderation: ModerationLevel
    size: ImageSize
    quality_tier: QualityTier
    output: OutputOptions
    revised_prompt: str | None  # a style rewrite; a cut prompt is reported by the engine
    inputs: tuple[Image.Image, ...] = ()  # input images: moderated and counted in usage
    stream: bool = False
    user: str | None = None

    @property
    def spec(self) -> ModelSpec:
        return self.target.spec
