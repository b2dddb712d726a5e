"""What a plan is: a request turned into the engine job, with what its answer needs. Made by
planning.py (with sizing.py and formats.py, from what the request asked for and its source
image); read by the moderation gate, the output writer and the stream events."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from PIL import Image

from pixelsmith.api.protocol import SvgOptions
from pixelsmith.engine import GenerationJob, ModelSpec
from pixelsmith.engine.jobs import JobKind
from pixelsmith.imaging import OutputFormat
from pixelsmith.moderation import ModerationLevel
from pixelsmith.provenance import SourceFile
from pixelsmith.service.inputs import UploadedImage
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
        return self.rules.family if self.rules.legacy else None


@dataclass(frozen=True)
class OutputOptions:
    format: OutputFormat
    compression: int
    response_format: str
    transparent: bool = False  # background="transparent": outputs are matted to RGBA
    # An edit's input alpha channel, put back on outputs (in formats that keep alpha).
    keep_alpha: Image.Image | None = None
    # The size to answer with; images made on the model's grid at another size are cut to it.
    size: ImageSize | None = None
    # An inpainting's input and mask at that size, to keep outside the mask once cut.
    kept: tuple[Image.Image, Image.Image] | None = None
    frame_duration_ms: int = 200  # GIF
    svg_effort: str = "medium"  # SVG: how much detail the tracer keeps

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
    # The same images as the client sent them, the edited one first: the ingredients of the
    # outputs' content credentials (an input's own credentials are kept in them).
    input_files: tuple[SourceFile, ...] = ()
    stream: bool = False
    end_user: str | None = None  # safety_identifier, else user: echoed, never logged raw

    @property
    def spec(self) -> ModelSpec:
        return self.target.spec


@dataclass(frozen=True)
class AskedFor:
    """What a request asked for, in the fields all operations share (None: the default). A
    variation's wire model lacks most of them, so it gets every default."""

    prompt: str | None = None
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    output_format: OutputFormat | None = None
    output_compression: int | None = None
    background: str | None = None
    response_format: str | None = None
    moderation: ModerationLevel | None = None
    stream: bool | None = None
    partial_images: int | None = None
    style: str | None = None
    input_fidelity: str | None = None
    complexity: str | None = None
    frame_count: int | None = None
    frame_duration_ms: int | None = None
    svg: SvgOptions | None = None
    end_user: str | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None

    @classmethod
    def of(cls, request: Any) -> AskedFor:
        return cls(**{field.name: getattr(request, field.name, None) for field in fields(cls)})


@dataclass(frozen=True)
class SourceImage:
    """The input image of an edit or a variation, and how the job treats it."""

    image: UploadedImage
    kind: JobKind
    strength: float
    mask: Image.Image | None = None
    keeps_alpha: bool = False  # the input's transparency carries over (edits)


def one_of(values: tuple[str, ...] | list[str]) -> str:
    quoted = [f"'{value}'" for value in values]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]
