"""From a validated request to a plan: the engine job, with every default resolved and every
rule of the named model checked. One path for generations, edits and variations: they differ
in their source image (none, an edit's input and mask, a variation's input) and in the
defaults of their wire models, not in the steps.

Nothing here loads a model. What a check needs comes from the model's spec (sizes, steps,
limits) or from the capabilities its pipeline showed when it was loaded; for a lazily loaded
model that has not run yet, the engine checks the job itself before running it.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from PIL import Image

from pixelsmith.api.protocol import (
    MAX_SEED,
    CreateImageEditRequest,
    CreateImageRequest,
    CreateImageVariationRequest,
)
from pixelsmith.engine import GenerationJob
from pixelsmith.engine.jobs import Drafting, JobKind
from pixelsmith.errors import InvalidRequestError, ModelNotFoundError, reject_unpaired_surrogates
from pixelsmith.matting import Matting
from pixelsmith.provenance import SourceFile
from pixelsmith.service.backend import PlanningBackend
from pixelsmith.service.formats import check_legacy, check_streaming, output_options
from pixelsmith.service.inputs import (
    MAX_EDIT_PIXELS,
    InputImages,
    PixelBudget,
    read_image,
    read_mask,
)
from pixelsmith.service.names import (
    QUALITY_TIERS,
    QualityTier,
    apply_style,
    rules_for,
    snapshot_base,
)
from pixelsmith.service.plans import (
    AskedFor,
    ImagePlan,
    Operation,
    OutputOptions,
    SourceImage,
    Target,
    one_of,
)
from pixelsmith.service.sizing import plan_size
from pixelsmith.service.sources import (
    check_image_count,
    checked_source,
    edit_source,
    too_many_images,
    with_markup,
    with_source,
)
from pixelsmith.sizes import ImageSize, snap_to_grid

# Drafts per image for each `complexity`.
COMPLEXITY_CANDIDATES = {"low": 1, "medium": 2, "high": 4}
# How far the final render may move from its draft: a draft at a quarter of the pixels
# (complexity) gives the composition; quality=max's second pass refines detail.
DRAFT_REFINE_STRENGTH = 0.7
MAX_REFINE_STRENGTH = 0.4


class RequestPlanner:
    """Turns generation, edit and variation requests into ImagePlans. Blocking (images are
    decoded and resized): call it off the event loop."""

    def __init__(self, backend: PlanningBackend, matting: Matting) -> None:
        self.backend = backend
        self.matting = matting

    # --- the three operations ------------------------------------------------------------

    def generation(self, request: CreateImageRequest) -> ImagePlan:
        return self._plan("generation", AskedFor.of(request), self._target(request.model), None)

    def edit(self, request: CreateImageEditRequest, inputs: InputImages) -> ImagePlan:
        """Image-to-image, or inpainting with a mask, on the first input image; the others
        are references (image prompts), a markup is drawn over the first."""
        target = self._target(request.model)
        check_image_count(
            len(inputs.images), target, self.backend.capabilities(target.spec), inputs.param
        )
        budget = PixelBudget(MAX_EDIT_PIXELS)
        images = [
            read_image(data, param=inputs.param_of(index), budget=budget)
            for index, data in enumerate(inputs.images)
        ]
        first = checked_source(images[0], target, inputs.param_of(0))
        mask = read_mask(inputs.mask, size=first.image.size) if inputs.mask else None
        if inputs.markup is not None:
            first = with_markup(inputs.markup, first, mask, target)
        source = edit_source(first, mask, target, request, marked_up=inputs.markup is not None)
        references = tuple(image.image.convert("RGB") for image in images[1:])
        files = tuple(
            SourceFile(data, image.format)
            for data, image in zip(inputs.images, images, strict=True)
        )
        return self._plan("edit", AskedFor.of(request), target, source, references, files)

    def variation(self, request: CreateImageVariationRequest, image: bytes) -> ImagePlan:
        """Image-to-image with no prompt, at the model's variation strength."""
        uploaded = read_image(image, param="image")
        # OpenAI's variations endpoint belongs to dall-e-2: its rules unless another is named.
        target = self._target(request.model or "dall-e-2")
        source = checked_source(uploaded, target, "image")
        variation = SourceImage(source, "image-to-image", target.spec.variation_strength)
        files = (SourceFile(image, uploaded.format),)
        return self._plan("variation", AskedFor.of(request), target, variation, input_files=files)

    # --- the shared steps ----------------------------------------------------------------

    def _target(self, model: str | None) -> Target:
        try:
            spec = self.backend.registry.resolve(model)
        except ModelNotFoundError:
            # A dated snapshot of a name the server knows is served like that name.
            base = snapshot_base(model) if model else None
            if base is None:
                raise
            spec = self.backend.registry.resolve(base)
        # Without `model`, GPT image rules apply to the default model.
        described = model or f"{spec.id} (the default model, with gpt-image-1 rules)"
        return Target(spec, rules_for(model), model or spec.id, described)

    def _plan(
        self,
        operation: Operation,
        asked: AskedFor,
        target: Target,
        source: SourceImage | None,
        references: tuple[Image.Image, ...] = (),
        input_files: tuple[SourceFile, ...] = (),
    ) -> ImagePlan:
        spec, rules = target.spec, target.rules
        # 1. What the model can do, and the prompt.
        capabilities = self.backend.capabilities(spec)
        if source is not None and capabilities and source.kind not in capabilities.kinds:
            raise unsupported_error("model", operation, target, source.kind)
        prompt = self._checked_prompt(asked, target, needed=operation != "variation")
        # 2. How many images, at which quality and size.
        n = self._count(asked, target)
        tier = self._tier(asked, target)
        auto_size = None
        if source is not None:
            width, height = source.image.image.size
            auto_size = snap_to_grid(width, height, spec.size_rules, spec.max_pixels)
        size, made_at = plan_size(asked.size, target, auto_size)
        # 3. How they are returned.
        output = output_options(asked, target, source)
        check_streaming(asked, target)
        check_legacy(asked, target)
        # 4. How they are made.
        fidelity = asked.input_fidelity
        if fidelity is not None and fidelity not in rules.input_fidelities:
            raise self._fidelity_error(fidelity, target)
        steps = self._steps(asked, target, tier)
        guidance = asked.guidance_scale
        if guidance is None:
            guidance = spec.guidance_scale
        if asked.negative_prompt and capabilities and not capabilities.accepts("negative_prompt"):
            raise unsupported_error("negative_prompt", operation, target)

        # 5. The job.
        style = (asked.style or rules.default_style) if prompt else None
        revised_prompt = apply_style(prompt, style) if style else None
        first_seed = asked.seed if asked.seed is not None else secrets.randbelow(2**32)
        job = GenerationJob(
            prompt=revised_prompt or prompt,
            # The server's own addition: ask for a backdrop the matting can take out.
            prompt_suffix=self.matting.prompt_suffix if output.transparent else "",
            negative_prompt=asked.negative_prompt,
            width=made_at.width,
            height=made_at.height,
            num_inference_steps=steps,
            guidance_scale=guidance,
            seeds=tuple((first_seed + index) % (MAX_SEED + 1) for index in range(n)),
            partial_images=(asked.partial_images or 0) if asked.stream else 0,
            frames=(asked.frame_count or 9) if output.format == "gif" else 0,
            drafting=self._drafting(asked, target, tier, made_at, source, output),
        )
        output = replace(output, size=size)
        inputs: tuple[Image.Image, ...] = ()
        if source is not None:
            job, output = with_source(job, output, source, size)
            job = replace(job, references=references)
            inputs = (source.image.image, *references)
        return ImagePlan(
            operation=operation,
            target=target,
            job=job,
            prompt=prompt,
            moderation=asked.moderation or "auto",
            size=size,
            quality_tier=tier,
            output=output,
            revised_prompt=revised_prompt,
            inputs=inputs,
            input_files=input_files,
            stream=bool(asked.stream),
            end_user=asked.end_user,
        )

    @staticmethod
    def _count(asked: AskedFor, target: Target) -> int:
        n = asked.n if asked.n is not None else 1
        if n > target.rules.max_n:
            raise InvalidRequestError(
                f"n must be at most {target.rules.max_n} for model {target.described}; got {n}.",
                param="n",
                code="integer_above_max_value",
            )
        return n

    @staticmethod
    def _tier(asked: AskedFor, target: Target) -> QualityTier:
        """The step tier of the quality asked for, in the names the model name allows."""
        quality = asked.quality or "auto"
        qualities = target.rules.qualities
        if quality not in qualities:
            raise InvalidRequestError(
                f"quality must be one of {one_of(qualities)} for model {target.described}; "
                f"got '{quality}'.",
                param="quality",
                code="invalid_value",
            )
        return QUALITY_TIERS[quality]

    @staticmethod
    def _steps(asked: AskedFor, target: Target, tier: QualityTier) -> int:
        """The steps of the model's tier, unless the request names them (an extension)."""
        spec = target.spec
        steps = asked.num_inference_steps
        if steps is None:
            return int(getattr(spec.steps, tier))
        if steps > spec.max_inference_steps:
            raise InvalidRequestError(
                f"num_inference_steps must be at most {spec.max_inference_steps} for model "
                f"{target.described}; got {steps}.",
                param="num_inference_steps",
                code="integer_above_max_value",
            )
        return steps

    @staticmethod
    def _drafting(
        asked: AskedFor,
        target: Target,
        tier: QualityTier,
        made_at: ImageSize,
        source: SourceImage | None,
        output: OutputOptions,
    ) -> Drafting | None:
        """The work before the final render: `complexity` drafts candidates and keeps the
        best; quality=max renders a draft and refines it in a second, high-resolution pass."""
        spec = target.spec
        candidates = COMPLEXITY_CANDIDATES[asked.complexity or spec.complexity]
        width, height = made_at.width, made_at.height
        if output.format == "gif":
            return None  # every frame is a render of its own
        if source is not None:  # an edit's composition is its input's: the best of full edits
            return Drafting(candidates, width, height, 0) if candidates > 1 else None
        if tier == "max":
            draft = made_at
            if made_at.pixels > spec.default_size.pixels:  # drafted at the model's own size
                draft = snap_to_grid(width, height, spec.size_rules, spec.default_size.pixels)
            return Drafting(
                candidates, draft.width, draft.height, spec.steps.high, MAX_REFINE_STRENGTH
            )
        if candidates == 1:
            return None
        draft = snap_to_grid(width, height, spec.size_rules, made_at.pixels // 4)
        return Drafting(
            candidates, draft.width, draft.height, spec.steps.low, DRAFT_REFINE_STRENGTH
        )

    @staticmethod
    def _checked_prompt(asked: AskedFor, target: Target, *, needed: bool) -> str:
        prompt = asked.prompt or ""
        reject_unpaired_surrogates(prompt, "prompt")
        if asked.negative_prompt:
            reject_unpaired_surrogates(asked.negative_prompt, "negative_prompt")
        if needed and not prompt.strip():
            raise InvalidRequestError(
                "prompt must not be empty.", param="prompt", code="invalid_value"
            )
        max_chars = min(target.rules.max_prompt_chars, target.spec.max_prompt_chars)
        if len(prompt) > max_chars:
            raise InvalidRequestError(
                f"prompt is too long: {len(prompt)} characters; the maximum for model "
                f"{target.described} is {max_chars}.",
                param="prompt",
                code="string_above_max_length",
            )
        return prompt

    @staticmethod
    def _fidelity_error(fidelity: str, target: Target) -> InvalidRequestError:
        allowed = target.rules.input_fidelities
        if not allowed:
            return InvalidRequestError(
                f"input_fidelity is not supported for model {target.described}; omit it.",
                param="input_fidelity",
                code="unsupported_parameter",
            )
        return InvalidRequestError(
            f"input_fidelity must be {one_of(allowed)} for model {target.described}; "
            f"got '{fidelity}'.",
            param="input_fidelity",
            code="invalid_value",
        )


def unsupported_error(
    param: str,
    operation: Operation,
    target: Target,
    kind: JobKind | None = None,
    images: int = 1,
) -> InvalidRequestError:
    """The 400 for a request the model cannot do (`param` from ModelCapabilities.unsupported),
    at planning time or, for a model loaded on demand, when the engine finds out."""
    if param == "output_format":
        return InvalidRequestError(
            f"output_format 'gif' is not supported by model {target.spec.id}: its pipeline "
            "takes no initial latents.",
            param="output_format",
            code="unsupported_value",
        )
    if param == "image":
        return too_many_images(target, images, 1)
    if param == "negative_prompt":
        return InvalidRequestError(
            f"negative_prompt is not supported by model {target.described}.",
            param="negative_prompt",
            code="unsupported_parameter",
        )
    if operation == "variation":
        message = f"model {target.name} cannot make variations."
    else:
        what = f" ({kind} is not available for it)" if kind else ""
        message = f"model {target.name} cannot edit images{what}."
    return InvalidRequestError(message, param="model", code="unsupported_model")
