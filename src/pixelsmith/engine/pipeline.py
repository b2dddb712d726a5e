"""A loaded pipeline that runs batches of jobs: one diffusers call per batch, each job with its
own images, previews and cancellation through diffusers' step callbacks."""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from pixelsmith.engine.jobs import (
    GenerationJob,
    GenerationOutput,
    JobCancelled,
    JobKind,
    ModelCapabilities,
    UnsupportedJobError,
)
from pixelsmith.engine.previews import latents_to_images, preview_steps
from pixelsmith.engine.prompts import FittedPrompt, PromptFitter
from pixelsmith.engine.registry import ModelSpec

logger = logging.getLogger(__name__)

EDIT_KINDS: tuple[JobKind, ...] = ("image-to-image", "inpaint")


@dataclass
class LoadedPipeline:
    """A pipeline on its device. Only its worker thread may call `run` and `run_batch`:
    diffusers pipelines keep per-call state on the object (scheduler timesteps, progress bar)
    and are not thread-safe, and neither is their tokenizer."""

    spec: ModelSpec
    pipeline: Any
    device: torch.device
    dtype: torch.dtype
    # A tiny autoencoder for stream previews; None: the linear latent-to-RGB projection.
    preview_decoder: Any = None
    warmup_seconds: float | None = None  # set when the engine warmed the model up
    call_parameters: frozenset[str] = field(init=False)
    capabilities: ModelCapabilities = field(init=False)
    prompts: PromptFitter = field(init=False)
    # Image-to-image and inpainting pipelines made from this one with diffusers' from_pipe:
    # the same modules (weights) under another pipeline class, so memory does not double.
    _derived: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.call_parameters = call_parameters(type(self.pipeline))
        self.prompts = PromptFitter(self.pipeline, self.call_parameters)
        # The edit pipelines are built now (cheap: they share every module), so that what the
        # model can do is known once, before any request asks.
        kinds: list[JobKind] = ["text-to-image"]
        for kind in EDIT_KINDS:
            if self.edits_by_instruction:
                kinds.append(kind)
                continue
            try:
                self.pipeline_for(kind)
            except ValueError:  # diffusers has no such pipeline for this family
                continue
            kinds.append(kind)
        self.capabilities = ModelCapabilities(self.call_parameters, frozenset(kinds))

    @property
    def weight_bytes(self) -> int:
        """Memory the pipeline's weights take (edit pipelines share them)."""
        seen: set[int] = set()
        total = 0
        for component in self.pipeline.components.values():
            if isinstance(component, torch.nn.Module):
                for tensor in (*component.parameters(), *component.buffers()):
                    if tensor.data_ptr() not in seen:
                        seen.add(tensor.data_ptr())
                        total += tensor.numel() * tensor.element_size()
        return total

    @property
    def edits_by_instruction(self) -> bool:
        """Instruction-editing pipelines (FLUX.1 Kontext, Qwen-Image-Edit) take the input image
        as a reference in their own call, with no image-to-image strength."""
        return "image" in self.call_parameters and "strength" not in self.call_parameters

    def pipeline_for(self, kind: JobKind) -> Any:
        """The pipeline that runs `kind`; raises ValueError if diffusers has none for it."""
        if kind == "text-to-image":
            return self.pipeline
        if kind not in self._derived:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

            auto = AutoPipelineForInpainting if kind == "inpaint" else AutoPipelineForImage2Image
            derived = auto.from_pipe(self.pipeline)
            derived.set_progress_bar_config(**getattr(self.pipeline, "_progress_bar_config", {}))
            self._derived[kind] = derived
        return self._derived[kind]

    def batch_key(self, job: GenerationJob) -> Hashable | None:
        """Jobs with equal keys can share one pipeline call; None: this job runs alone.

        Everything that is one value per call must match. Prompts, negative prompts, seeds and
        input images are per image. A negative prompt cannot be mixed with none: some pipelines
        (SDXL) encode "no negative prompt" as zeros, not as the empty string."""
        if job.kind != "text-to-image" and self.edits_by_instruction:
            return None
        return (
            job.kind,
            job.width,
            job.height,
            job.num_inference_steps,
            job.guidance_scale,
            job.strength,
            bool(job.negative_prompt),
            job.partial_images,
        )

    def run(self, job: GenerationJob) -> GenerationOutput:
        return self.run_batch([job])[0]

    def run_batch(self, jobs: list[GenerationJob]) -> list[GenerationOutput]:
        """Run jobs with one batch key in one pipeline call; each gets exactly its own images."""
        started = time.perf_counter()
        first = jobs[0]
        if len(jobs) > 1 and (
            self.batch_key(first) is None
            or any(self.batch_key(job) != self.batch_key(first) for job in jobs)
        ):
            raise ValueError("jobs in one batch must share a batch key (not None)")
        for job in jobs:
            unsupported = self.capabilities.unsupported(job)
            if unsupported is not None:
                raise UnsupportedJobError(unsupported)
        prompts = [self.prompts.fit(job.prompt, job.prompt_suffix) for job in jobs]
        counts = [job.num_images for job in jobs]
        arguments: dict[str, Any] = {
            "prompt": [
                prompt.text + prompt.suffix
                for prompt, job in zip(prompts, jobs, strict=True)
                for _ in job.seeds
            ],
            "num_inference_steps": first.num_inference_steps,
            "guidance_scale": first.guidance_scale,
            "width": first.width,
            "height": first.height,
            # One CPU generator per image: each image depends only on its own seed, on any
            # device, whether it runs alone or in a batch.
            "generator": [
                torch.Generator("cpu").manual_seed(seed) for job in jobs for seed in job.seeds
            ],
            "output_type": "pil",
        }
        if first.negative_prompt:
            arguments["negative_prompt"] = [job.negative_prompt for job in jobs for _ in job.seeds]
        # Kontext-style pipelines otherwise rescale to about one megapixel; the server has
        # already chosen the size.
        if "max_area" in self.call_parameters:
            arguments["max_area"] = first.width * first.height
        if "_auto_resize" in self.call_parameters:
            arguments["_auto_resize"] = False
        if "clean_caption" in self.call_parameters:
            # PixArt's caption cleaning needs beautifulsoup4 and ftfy, and only strips markup.
            arguments["clean_caption"] = False
        if first.kind != "text-to-image" and self.edits_by_instruction:
            return [self._run_instruction_edit(first, prompts[0], arguments, started)]
        if first.kind != "text-to-image":
            arguments["image"] = [job.init_image for job in jobs for _ in job.seeds]
            arguments["strength"] = first.strength
            # diffusers schedules `num_inference_steps` over the full noise range and runs the
            # last int(steps * strength) of them. Scale the schedule so that the job's steps
            # are the steps actually run: a 2-step turbo model still denoises twice, from a
            # noise level set by the strength.
            arguments["num_inference_steps"] = math.ceil(
                first.num_inference_steps / max(first.strength, 1e-3)
            )
        pipeline = self.pipeline_for(first.kind)
        if first.kind == "image-to-image" and "width" not in call_parameters(type(pipeline)):
            # SD and SDXL take the size from the image; FLUX and SD3 take it as arguments.
            del arguments["width"], arguments["height"]
        if first.kind == "inpaint":
            arguments["mask_image"] = [job.mask for job in jobs for _ in job.seeds]
        self._add_step_callback(pipeline, jobs, arguments)
        images = self._call(pipeline, arguments)
        if len(images) != sum(counts):
            raise RuntimeError(f"pipeline returned {len(images)} images for {sum(counts)}")
        seconds = time.perf_counter() - started
        outputs = []
        for job, job_images, prompt in zip(jobs, _split(images, counts), prompts, strict=True):
            if job.kind == "inpaint":
                # Outside the mask the result must be the input, not its trip through the VAE.
                job_images = [Image.composite(i, job.init_image, job.mask) for i in job_images]
            outputs.append(_output(job, job_images, prompt, seconds))
        return outputs

    def _call(self, pipeline: Any, arguments: dict[str, Any]) -> list[Any]:
        try:
            with torch.inference_mode():
                return list(pipeline(**arguments).images)
        except torch.cuda.OutOfMemoryError:
            # Give the failed batch's memory back before its jobs are retried one by one.
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            raise

    def _add_step_callback(
        self, pipeline: Any, jobs: list[GenerationJob], arguments: dict[str, Any]
    ) -> None:
        """Previews and cancellation both hook into diffusers' per-step callback. A batch stops
        early only when every one of its callers has gone."""
        first = jobs[0]
        watching = all(job.cancelled is not None for job in jobs)
        parameters = call_parameters(type(pipeline))
        if not (first.partial_images or watching):
            return
        if "callback_on_step_end" not in parameters and "callback" not in parameters:
            return
        counts = [job.num_images for job in jobs]
        chosen: list[tuple[int, ...]] = []

        def on_step_end(
            pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            if watching and all(job.cancelled.is_set() for job in jobs if job.cancelled):
                raise JobCancelled  # stop now: no more steps, and no VAE decode
            if first.partial_images:
                if not chosen:  # the pipeline knows its step count only once it runs
                    total = getattr(pipe, "num_timesteps", None) or len(pipe.scheduler.timesteps)
                    chosen.append(preview_steps(total, first.partial_images))
                if step in chosen[0]:
                    try:
                        previews = latents_to_images(
                            pipe, tensors["latents"], first.width, first.height,
                            self.preview_decoder,
                        )  # fmt: skip
                    except Exception:  # a preview must never cost the image itself
                        logger.exception("preview failed; the run goes on without previews")
                        chosen[0] = ()
                        return {}
                    index = chosen[0].index(step)
                    for job, images in zip(jobs, _split(previews, counts), strict=True):
                        if job.on_preview is None:
                            continue
                        if job.mask is not None:  # outside the mask, the input, as at the end
                            images = [Image.composite(i, job.init_image, job.mask) for i in images]
                        job.on_preview(index, images)
            return {}

        if "callback_on_step_end" in parameters:
            arguments["callback_on_step_end"] = on_step_end
        else:  # older pipelines (PixArt): callback(step, timestep, latents) every n steps
            arguments["callback_steps"] = 1
            arguments["callback"] = lambda step, timestep, latents: on_step_end(
                pipeline, step, timestep, {"latents": latents}
            )

    def _run_instruction_edit(
        self, job: GenerationJob, prompt: FittedPrompt, arguments: dict[str, Any], started: float
    ) -> GenerationOutput:
        arguments["image"] = job.init_image
        arguments = {k: v for k, v in arguments.items() if k in self.call_parameters}
        self._add_step_callback(self.pipeline, [job], arguments)
        images = self._call(self.pipeline, arguments)
        images = [
            image
            if image.size == (job.width, job.height)
            else image.resize((job.width, job.height))
            for image in images
        ]
        if job.mask is not None:  # the mask still bounds the edit
            images = [Image.composite(image, job.init_image, job.mask) for image in images]
        return _output(job, images, prompt, time.perf_counter() - started)


def _output(
    job: GenerationJob, images: list[Any], prompt: FittedPrompt, seconds: float
) -> GenerationOutput:
    return GenerationOutput(
        images=images,
        seeds=job.seeds,
        prompt_tokens=prompt.tokens,
        seconds=seconds,
        cut_prompt=prompt.text if prompt.text != job.prompt else None,
    )


def _split(items: list[Any], counts: list[int]) -> list[list[Any]]:
    """`items` cut into consecutive runs of `counts` items."""
    runs, start = [], 0
    for count in counts:
        runs.append(items[start : start + count])
        start += count
    return runs


_CALL_PARAMETERS: dict[type, frozenset[str]] = {}


def call_parameters(pipeline_class: type) -> frozenset[str]:
    """What a pipeline class's __call__ accepts; read once per class, not once per run."""
    if pipeline_class not in _CALL_PARAMETERS:
        signature = inspect.signature(pipeline_class.__call__)
        _CALL_PARAMETERS[pipeline_class] = frozenset(signature.parameters)
    return _CALL_PARAMETERS[pipeline_class]
