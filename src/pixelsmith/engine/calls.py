"""One diffusers call: its arguments, built from the images it is to make, and the step callback
that sends previews and stops it when nobody wants it any more. Which calls a batch of jobs
takes is pipeline.py's business."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from pixelsmith.engine.jobs import GenerationJob, JobCancelled, JobKind
from pixelsmith.engine.long_prompts import windowed_arguments
from pixelsmith.engine.previews import latents_to_images, preview_steps

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageCall:
    """One image of a call: what may differ from image to image."""

    prompt: str
    seed: int
    negative_prompt: str | None = None
    init_image: Any = None  # PIL.Image.Image at the call's size (edits, refinements)
    mask: Any = None  # PIL.Image.Image (L), 255 where the image is repainted
    latents: Any = None  # torch.Tensor: this image's initial noise; None: drawn from the seed
    references: tuple[Any, ...] = ()  # further input images (one set for the whole call)


@dataclass(frozen=True)
class Call:
    """What the images of one call share."""

    kind: JobKind
    width: int
    height: int
    steps: int
    guidance_scale: float
    strength: float = 1.0
    windows: int = 1  # CLIP windows the prompts are read in (long_prompts.py)
    sequence_length: int | None = None  # T5's max_sequence_length, when longer than default


def call_arguments(
    pipeline: Any, parameters: frozenset[str], call: Call, images: list[ImageCall]
) -> dict[str, Any]:
    """The keyword arguments of `pipeline(...)` for `images`."""
    arguments: dict[str, Any] = {
        "prompt": [image.prompt for image in images],
        "num_inference_steps": call.steps,
        "guidance_scale": call.guidance_scale,
        # One CPU generator per image: each image depends only on its own seed, on any
        # device, whether it runs alone or in a batch.
        "generator": [torch.Generator("cpu").manual_seed(image.seed) for image in images],
        # A [0, 1] tensor on the device, made into images by to_pil (not diffusers' own PIL
        # output, whose float-to-byte conversion runs on the CPU in the worker's thread).
        "output_type": "pt",
    }
    if "width" in parameters:  # SD and SDXL image-to-image take the size from the image
        arguments["width"], arguments["height"] = call.width, call.height
    if images[0].negative_prompt:
        arguments["negative_prompt"] = [image.negative_prompt for image in images]
    if call.windows > 1:  # read in windows: embeddings in place of the texts
        negatives = [image.negative_prompt for image in images]
        guided = call.guidance_scale > 1
        del arguments["prompt"]
        arguments.pop("negative_prompt", None)
        embeddings = windowed_arguments(
            pipeline, [image.prompt for image in images], negatives, call.windows, guided=guided
        )
        arguments.update(embeddings)
    if call.sequence_length is not None:
        arguments["max_sequence_length"] = call.sequence_length
    if images[0].latents is not None:
        arguments["latents"] = torch.stack([image.latents for image in images])
    # Kontext-style pipelines otherwise rescale to about one megapixel; the server has
    # already chosen the size.
    if "max_area" in parameters:
        arguments["max_area"] = call.width * call.height
    if "_auto_resize" in parameters:
        arguments["_auto_resize"] = False
    if "clean_caption" in parameters:
        # PixArt's caption cleaning needs beautifulsoup4 and ftfy, and only strips markup.
        arguments["clean_caption"] = False
    if call.kind != "text-to-image":
        arguments["image"] = [image.init_image for image in images]
        if "strength" in parameters:
            arguments["strength"] = call.strength
            # diffusers schedules `num_inference_steps` over the full noise range and runs
            # the last int(steps * strength) of them. Scale the schedule so that the call's
            # steps are the steps actually run: a 2-step turbo model still denoises twice,
            # from a noise level set by the strength.
            arguments["num_inference_steps"] = math.ceil(call.steps / max(call.strength, 1e-3))
        elif images[0].references and "ip_adapter_image" not in parameters:
            # Pipelines made for several references take them all as `image`.
            arguments["image"] = [images[0].init_image, *images[0].references]
        else:  # instruction editing (Kontext): one reference image in its own call
            arguments["image"] = images[0].init_image
    if images[0].references and "ip_adapter_image" in parameters and "strength" in parameters:
        # One IP-Adapter: its image prompts, every reference a set of image tokens.
        arguments["ip_adapter_image"] = [list(images[0].references)]
    if call.kind == "inpaint" and "mask_image" in parameters:
        arguments["mask_image"] = [image.mask for image in images]
    return {key: value for key, value in arguments.items() if key in parameters}


def make_images(pipeline: Any, arguments: dict[str, Any], device: torch.device) -> list[Any]:
    try:
        with torch.inference_mode():
            return to_pil(pipeline(**arguments).images)
    except torch.cuda.OutOfMemoryError:
        # Give the failed batch's memory back before its jobs are retried one by one.
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise


def to_pil(images: Any) -> list[Image.Image]:
    """A pipeline's images as PIL images. From a tensor (output_type="pt": values in [0, 1],
    on the device) the bytes are made on the device, rounded as diffusers' own PIL output
    rounds them, and a quarter of the data crosses to the CPU: at a GPU's image rate the
    worker's thread spends milliseconds per image less before its next batch."""
    if not isinstance(images, torch.Tensor):
        return list(images)
    pixels = images.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return [Image.fromarray(array) for array in pixels.cpu().numpy()]


def watch_steps(
    pipeline: Any,
    parameters: frozenset[str],
    arguments: dict[str, Any],
    jobs: list[GenerationJob],
    *,
    previews: bool,
    preview_decoder: Any = None,
) -> None:
    """Previews and cancellation both hook into diffusers' per-step callback. A batch stops
    early only when every one of its callers has gone. With `previews`, the call makes the
    jobs' own images, `num_images` each, in order."""
    first = jobs[0]
    watching = all(job.cancelled is not None for job in jobs)
    previews = previews and first.partial_images > 0
    stepping = [job.on_step for job in jobs if job.on_step is not None]
    if not (previews or watching or stepping):
        return
    if "callback_on_step_end" not in parameters and "callback" not in parameters:
        return
    counts = [job.num_images for job in jobs]
    chosen: list[tuple[int, ...]] = []

    def total_steps(pipe: Any) -> int:  # known only once the pipeline runs
        return int(getattr(pipe, "num_timesteps", None) or len(pipe.scheduler.timesteps))

    def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if watching and all(job.cancelled.is_set() for job in jobs if job.cancelled):
            raise JobCancelled  # stop now: no more steps, and no VAE decode
        if stepping:
            total = total_steps(pipe)
            for report in stepping:
                report(min(step + 1, total), total)
        if previews:
            if not chosen:
                chosen.append(preview_steps(total_steps(pipe), first.partial_images))
            if step in chosen[0]:
                try:
                    images = latents_to_images(
                        pipe, tensors["latents"], first.width, first.height, preview_decoder
                    )
                except Exception:  # a preview must never cost the image itself
                    logger.exception("preview failed; the run goes on without previews")
                    chosen[0] = ()
                    return {}
                _send_previews(jobs, counts, chosen[0].index(step), images)
        return {}

    if "callback_on_step_end" in parameters:
        arguments["callback_on_step_end"] = on_step_end
    else:  # older pipelines (PixArt): callback(step, timestep, latents) every n steps
        arguments["callback_steps"] = 1
        arguments["callback"] = lambda step, timestep, latents: on_step_end(
            pipeline, step, timestep, {"latents": latents}
        )


def _send_previews(
    jobs: list[GenerationJob], counts: list[int], index: int, previews: list[Any]
) -> None:
    for job, images in zip(jobs, split(previews, counts), strict=True):
        if job.on_preview is None:
            continue
        if job.mask is not None:  # outside the mask, the input, as at the end
            images = [Image.composite(i, job.init_image, job.mask) for i in images]
        job.on_preview(index, images)


def split(items: list[Any], counts: list[int]) -> list[list[Any]]:
    """`items` cut into consecutive runs of `counts` items."""
    runs, start = [], 0
    for count in counts:
        runs.append(items[start : start + count])
        start += count
    return runs
