"""A loaded pipeline that runs batches of jobs: one diffusers call per batch, each job with its
own images, previews and cancellation through diffusers' step callbacks."""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image

from pixelsmith.engine.animation import latent_shape, noise_walk
from pixelsmith.engine.calls import (
    Call,
    ImageCall,
    call_arguments,
    make_images,
    split,
    watch_steps,
)
from pixelsmith.engine.drafts import candidate_seed, draft_score
from pixelsmith.engine.gpu_memory import ActivationMemory
from pixelsmith.engine.image_prompts import MAX_REFERENCES, MULTI_REFERENCE_PIPELINES, ImagePrompts
from pixelsmith.engine.jobs import (
    GenerationJob,
    GenerationOutput,
    JobKind,
    ModelCapabilities,
    UnsupportedJobError,
)
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
    # The IP-Adapter that turns an edit's further images into image prompts; None: none.
    image_prompts: ImagePrompts | None = None
    # Most images in one diffusers call: calls of drafts and frames are split to fit.
    max_call_images: int = 4
    warmup_seconds: float | None = None  # set when the engine warmed the model up
    # What one image's call takes of the GPU's memory, per pixel (measured at warm-up on a
    # GPU; None elsewhere): how large a batch may be at each size.
    activation_memory: ActivationMemory | None = None
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
        native = type(self.pipeline).__name__ in MULTI_REFERENCE_PIPELINES
        references = MAX_REFERENCES if native or self.image_prompts is not None else 0
        self.capabilities = ModelCapabilities(self.call_parameters, frozenset(kinds), references)

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
        (SDXL) encode "no negative prompt" as zeros, not as the empty string. Jobs with
        reference images run alone: their references are one argument of the call."""
        if (job.kind != "text-to-image" and self.edits_by_instruction) or job.references:
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
            job.frames,
            job.drafting,
        )

    def run(self, job: GenerationJob) -> GenerationOutput:
        return self.run_batch([job])[0]

    def run_batch(self, jobs: list[GenerationJob]) -> list[GenerationOutput]:
        """Run jobs with one batch key together; each gets exactly its own images."""
        started = time.perf_counter()
        self._check(jobs)
        first = jobs[0]
        prompts = [
            self.prompts.fit(job.prompt, job.prompt_suffix, job.negative_prompt) for job in jobs
        ]
        images = [
            ImageCall(
                prompt.text + prompt.suffix,
                seed,
                job.negative_prompt,
                job.init_image,
                job.mask,
                references=job.references,
            )
            for job, prompt in zip(jobs, prompts, strict=True)
            for seed in job.seeds
        ]
        animations: list[list[list[Any]]] | None = None
        shape = prompts[0].shape
        if first.frames:
            animations = [
                self._animate(job, images, prompt)
                for (job, images), prompt in zip(_by_job(jobs, images), prompts, strict=True)
            ]
            per_job = [[frames[0] for frames in animation] for animation in animations]
        elif first.kind != "text-to-image" and self.edits_by_instruction:
            per_job = [self._instruction_edit(first, images, prompts[0])]
        elif any(prompt.shape != shape for prompt in prompts):
            # Prompts read in different windows cannot share a call: one call per job.
            per_job = [self.run_batch([job])[0].images for job in jobs]
        else:
            call = replace(_call_of(first), windows=shape[0], sequence_length=shape[1])
            counts = [job.num_images for job in jobs]
            if first.drafting is not None:
                per_job = split(self._drafted(jobs, call, images), counts)
            else:
                per_job = split(self._render(jobs, call, images, previews=True), counts)
        seconds = time.perf_counter() - started
        outputs = []
        for index, (job, job_images, prompt) in enumerate(zip(jobs, per_job, prompts, strict=True)):
            if job.mask is not None:
                # Outside the mask the result must be the input, not its trip through the VAE.
                job_images = [Image.composite(i, job.init_image, job.mask) for i in job_images]
            output = GenerationOutput(
                images=job_images,
                seeds=job.seeds,
                prompt_tokens=prompt.tokens,
                seconds=seconds,
                cut_prompt=prompt.text if prompt.text != job.prompt else None,
                frames=animations[index] if animations is not None else None,
            )
            outputs.append(output)
        return outputs

    def _check(self, jobs: list[GenerationJob]) -> None:
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

    def _render(
        self,
        jobs: list[GenerationJob],
        call: Call,
        images: list[ImageCall],
        *,
        previews: bool,
        pipeline: Any = None,
    ) -> list[Any]:
        """One diffusers call that makes `images`, watched for the jobs' cancellation and, with
        `previews`, sending their previews (the call then makes exactly the jobs' images). The
        pipeline is the one for the call's kind unless given."""
        if not previews and len(images) > self.max_call_images:
            # Drafts and frames, many more than a batch: in calls of at most a batch each.
            size = self.max_call_images
            parts = [images[start : start + size] for start in range(0, len(images), size)]
            made: list[Any] = []
            for part in parts:
                made += self._render(jobs, call, part, previews=False, pipeline=pipeline)
            return made
        pipeline = pipeline or self.pipeline_for(call.kind)
        parameters = call_parameters(type(pipeline))
        arguments = call_arguments(pipeline, parameters, call, images)
        watch_steps(pipeline, parameters, arguments, jobs, previews=previews,
                    preview_decoder=self.preview_decoder)  # fmt: skip
        image_prompts = self.image_prompts if "ip_adapter_image" in arguments else None
        with image_prompts.enabled() if image_prompts else contextlib.nullcontext():
            made = make_images(pipeline, arguments, self.device)
        if len(made) != len(images):
            raise RuntimeError(f"pipeline returned {len(made)} images for {len(images)}")
        return made

    def _drafted(
        self, jobs: list[GenerationJob], final: Call, images: list[ImageCall]
    ) -> list[Any]:
        """Drafts first, the best of each image's candidates kept, then (text-to-image, on a
        model that can run image-to-image) the kept drafts rendered again at full size."""
        first = jobs[0]
        drafting = first.drafting
        assert drafting is not None
        refine = (
            drafting.refine_strength is not None
            and first.kind == "text-to-image"
            and "image-to-image" in self.capabilities.kinds
        )
        drafts = replace(final, width=drafting.width, height=drafting.height, steps=drafting.steps)
        candidates = [
            replace(image, seed=candidate_seed(image.seed, index))
            for image in images
            for index in range(drafting.candidates)
        ]
        made = self._render(jobs, drafts if refine else final, candidates, previews=False)
        best = [
            max(group, key=draft_score)
            for group in split(made, [drafting.candidates] * len(images))
        ]
        if not refine:
            return best
        assert drafting.refine_strength is not None
        size = (first.width, first.height)
        refinements = [
            replace(image, init_image=draft.resize(size, Image.Resampling.LANCZOS))
            for image, draft in zip(images, best, strict=True)
        ]
        second = replace(final, kind="image-to-image", strength=drafting.refine_strength)
        return self._render(jobs, second, refinements, previews=True)

    def _instruction_edit(
        self, job: GenerationJob, images: list[ImageCall], prompt: FittedPrompt
    ) -> list[Any]:
        """Instruction-editing pipelines take the input as a reference; they may answer at
        their own size."""
        call = replace(
            _call_of(job), windows=prompt.windows, sequence_length=prompt.sequence_length
        )
        made = self._render([job], call, images, previews=True, pipeline=self.pipeline)
        size = (job.width, job.height)
        return [image if image.size == size else image.resize(size) for image in made]

    def _animate(
        self, job: GenerationJob, images: list[ImageCall], prompt: FittedPrompt
    ) -> list[list[Any]]:
        """Each image's frames in one call, each from a point of its seed's noise walk."""
        if job.kind != "text-to-image" or "latents" not in self.call_parameters:
            raise UnsupportedJobError("output_format")
        shape = latent_shape(self.pipeline, job.width, job.height)
        device = getattr(self.pipeline, "_execution_device", self.device)
        animations = []
        for image in images:
            walk = noise_walk(image.seed, job.frames, shape).to(device=device, dtype=self.dtype)
            frames = [replace(image, latents=latents) for latents in walk]
            call = replace(
                _call_of(job), windows=prompt.windows, sequence_length=prompt.sequence_length
            )
            animations.append(self._render([job], call, frames, previews=False))
        return animations


def _call_of(job: GenerationJob) -> Call:
    return Call(
        kind=job.kind,
        width=job.width,
        height=job.height,
        steps=job.num_inference_steps,
        guidance_scale=job.guidance_scale,
        strength=job.strength,
    )


def _by_job(
    jobs: list[GenerationJob], images: list[ImageCall]
) -> list[tuple[GenerationJob, list[ImageCall]]]:
    return list(zip(jobs, split(images, [job.num_images for job in jobs]), strict=True))


_CALL_PARAMETERS: dict[type, frozenset[str]] = {}


def call_parameters(pipeline_class: type) -> frozenset[str]:
    """What a pipeline class's __call__ accepts; read once per class, not once per run."""
    if pipeline_class not in _CALL_PARAMETERS:
        signature = inspect.signature(pipeline_class.__call__)
        _CALL_PARAMETERS[pipeline_class] = frozenset(signature.parameters)
    return _CALL_PARAMETERS[pipeline_class]
