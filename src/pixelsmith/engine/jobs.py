"""What the engine is asked to do, what it gives back, and what a model can do. Plain data: no
HTTP, no torch."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

JobKind = Literal["text-to-image", "image-to-image", "inpaint"]


@dataclass(frozen=True)
class Drafting:
    """Work before the final render: `candidates` drafts per image at width x height in
    `steps`, of which the best (drafts.py) is kept. With `refine_strength`, the kept draft is
    then rendered again at the job's size and steps by image-to-image, moving that far from
    it (a second, high-resolution pass), where the model can run image-to-image; otherwise the
    drafts are made at the job's own size and steps and the best is the image."""

    candidates: int
    width: int
    height: int
    steps: int
    refine_strength: float | None = None


INTERACTIVE_PRIORITY = 0
BATCH_PRIORITY = 1


@dataclass(frozen=True)
class GenerationJob:
    """One pipeline call: `len(seeds)` images of one prompt, one seed per image.

    With `init_image` it is image-to-image; with `mask` as well, inpainting. Both images are
    already at width x height; the mask is mode "L", 255 where the image is to be repainted.
    """

    prompt: str
    width: int
    height: int
    num_inference_steps: int
    guidance_scale: float
    seeds: tuple[int, ...]
    # The server's own addition to the prompt (a backdrop that matting can remove). It gets at
    # most half of the text encoder's window: the client's prompt comes first.
    prompt_suffix: str = ""
    negative_prompt: str | None = None
    init_image: Any = None  # PIL.Image.Image (RGB)
    mask: Any = None  # PIL.Image.Image (L)
    # An edit's further input images (RGB): references the model reads beside init_image.
    references: tuple[Any, ...] = ()
    # How far from the input image the result may go, 0-1 (image-to-image and inpaint).
    strength: float = 1.0
    # Frames of an animation (GIF) per image; 0: a still image.
    frames: int = 0
    drafting: Drafting | None = None
    # Streaming: previews of the images in progress, spread over the steps, handed to
    # `on_preview(preview_index, images)` from the worker thread.
    partial_images: int = 0
    on_preview: Callable[[int, list[Any]], None] | None = field(
        default=None, compare=False, repr=False
    )
    # Progress: `on_step(steps_done, total_steps)` after each denoising step, from the worker
    # thread (the same diffusers callback as previews).
    on_step: Callable[[int, int], None] | None = field(default=None, compare=False, repr=False)
    # Set when nobody wants the result any more: the run stops after the current step.
    cancelled: threading.Event | None = field(default=None, compare=False, repr=False)
    # Queue order: a waiting job runs before every waiting job of a higher number. 0:
    # interactive requests; BATCH_PRIORITY: lines of batch jobs, which only fill idle time.
    priority: int = 0

    @property
    def num_images(self) -> int:
        return len(self.seeds)

    @property
    def kind(self) -> JobKind:
        if self.init_image is None:
            return "text-to-image"
        return "inpaint" if self.mask is not None else "image-to-image"


@dataclass
class GenerationOutput:
    images: list[Any]  # PIL.Image.Image, one per seed, in seed order
    seeds: tuple[int, ...]
    prompt_tokens: int  # what the text encoder read, the server's suffix included
    seconds: float = field(default=0.0)
    # The start of a prompt too long for the text encoder: what it read. None: all of it.
    cut_prompt: str | None = None
    # An animation's frames, per image (`images` holds the first of each).
    frames: list[list[Any]] | None = None
    # Which replica ran it, when replicas run elsewhere (pixelsmith.ray); "" in process.
    served_by: str = ""


@dataclass(frozen=True)
class ModelCapabilities:
    """What a loaded model can do, read from its pipeline once at load."""

    call_parameters: frozenset[str]
    kinds: frozenset[JobKind]
    references: int = 0  # input images an edit may have beyond the first

    def accepts(self, argument: str) -> bool:
        return argument in self.call_parameters

    def unsupported(self, job: GenerationJob) -> str | None:
        """The request parameter of `job` that the model cannot honour, or None: `model` when
        it cannot run the job's kind at all, `image` when it takes fewer input images."""
        if job.kind not in self.kinds:
            return "model"
        if len(job.references) > self.references:
            return "image"
        if job.negative_prompt and not self.accepts("negative_prompt"):
            return "negative_prompt"
        return None


class JobCancelled(Exception):
    """Raised inside a pipeline run whose caller has gone, to stop it between two steps."""


class UnsupportedJobError(Exception):
    """The model cannot run the job as asked (`param` says what). Requests are checked before
    they are queued; this catches the ones for a lazily loaded model whose capabilities were
    not known yet."""

    def __init__(self, param: str) -> None:
        super().__init__(param)
        self.param = param
