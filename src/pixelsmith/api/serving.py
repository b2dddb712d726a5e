"""Image generation logic between the wire and the engine. No HTTP framework here: the router
passes in what it knows of the request (its base URL), and the CLI uses the same code."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from typing import Any

import pybase64
from PIL import Image, ImageChops

from pixelsmith.api.model_names import QUALITY_TIERS, NameRules, apply_style, rules_for
from pixelsmith.api.protocol import (
    MAX_SEED,
    CreateImageEditRequest,
    CreateImageRequest,
    CreateImageVariationRequest,
    ImageData,
    ImagesResponse,
)
from pixelsmith.api.uploads import DALL_E_2_MAX_BYTES, UploadedImage
from pixelsmith.api.usage import image_usage, output_tokens_per_image
from pixelsmith.engine import Engine, GenerationJob, GenerationOutput, ModelSpec
from pixelsmith.engine.jobs import JobCancelled, JobKind
from pixelsmith.errors import (
    INTERNAL_ERROR_MESSAGE,
    APIError,
    InvalidRequestError,
    ModerationBlockedError,
    error_body,
    reject_unpaired_surrogates,
)
from pixelsmith.imaging import OutputFormat, encode_image
from pixelsmith.matting import KeyedBackgroundMatting, Matting
from pixelsmith.moderation import ModerationLevel, Moderator, Verdict
from pixelsmith.settings import SIZE_PATTERN, check_size_string
from pixelsmith.storage import ImageStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedGeneration:
    """A validated request with every default resolved, ready for the engine."""

    spec: ModelSpec
    job: GenerationJob
    prompt: str  # as the client sent it; job.prompt may carry a style rewrite
    moderation: ModerationLevel
    rules: NameRules
    size: str
    quality_tier: str
    output_format: OutputFormat
    output_compression: int
    response_format: str
    revised_prompt: str | None
    # An edit's input alpha channel, put back on outputs in formats that keep alpha.
    keep_alpha: Image.Image | None = None
    partial_images: int = 0  # previews per image when streamed
    transparent: bool = False  # background="transparent": outputs are matted to RGBA

    @property
    def background(self) -> str:
        return "transparent" if self.transparent or self.keep_alpha is not None else "opaque"


@dataclass(frozen=True)
class RenderedImage:
    data: bytes
    seed: int


# Image-to-image strength (how far the result may move from the input) by input_fidelity.
EDIT_STRENGTH: dict[tuple[str, str], float] = {
    ("image-to-image", "low"): 0.75,
    ("image-to-image", "high"): 0.5,
    ("inpaint", "low"): 1.0,
    ("inpaint", "high"): 0.85,
}


MAX_SIDE = 4096


def snap_to_grid(size: tuple[int, int], spec: ModelSpec) -> str:
    """An input size as WIDTHxHEIGHT the model can make: no more pixels than the model's largest
    listed size, the input's aspect ratio kept as far as the family allows, and the family's
    multiple and side limits (multiples of 8 within 64-4096 for a model with a fixed list)."""
    width, height = float(size[0]), float(size[1])
    rules = spec.size_rules
    multiple = rules.multiple if rules else 8
    low, high = (rules.min_side, rules.max_side) if rules else (64, MAX_SIDE)
    if rules is not None:  # bring the aspect ratio within the family's limit
        ratio = width / height
        ratio = min(max(ratio, 1 / rules.max_aspect), rules.max_aspect)
        width, height = (width, width / ratio) if ratio >= 1 else (height * ratio, height)
    largest = max(w * h for w, h in (check_size_string(s) for s in spec.sizes))
    scale = min(1.0, (largest / (width * height)) ** 0.5, high / max(width, height))
    scale = max(scale, low / min(width, height))  # a tiny input is enlarged
    snapped = []
    for side in (width, height):
        rounded = int(side * scale) // multiple * multiple
        snapped.append(
            min(high // multiple * multiple, max(-(-low // multiple) * multiple, rounded))
        )
    if rules is not None:  # rounding down may tip a 3:1 input over the limit: widen the short side
        short = 0 if snapped[0] < snapped[1] else 1
        while max(snapped) / snapped[short] > rules.max_aspect:
            snapped[short] += multiple
    return f"{snapped[0]}x{snapped[1]}"


def _resized(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _one_of(values: tuple[str, ...] | list[str]) -> str:
    quoted = [f"'{value}'" for value in values]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


class ImageService:
    """Validates generation requests against the model they name, runs them, encodes results."""

    def __init__(
        self,
        engine: Engine,
        store: ImageStore,
        moderator: Moderator,
        matting: Matting | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.moderator = moderator
        self.matting: Matting = matting or KeyedBackgroundMatting()

    # --- validation --------------------------------------------------------------------------

    def prepare(
        self,
        request: CreateImageRequest | CreateImageEditRequest,
        *,
        auto_size: str | None = None,
    ) -> PreparedGeneration:
        """Validate against the named model and resolve every default. `auto_size` is what
        size=auto means when the request says better than the model (an edit's input size)."""
        spec = self.engine.registry.resolve(request.model)
        rules = rules_for(request.model)
        # Named in error messages; without `model`, GPT image rules apply to the default model.
        model_name = request.model or f"{spec.id} (the default model, with gpt-image-1 rules)"

        prompt = request.prompt
        reject_unpaired_surrogates(prompt, "prompt")
        if request.negative_prompt:
            reject_unpaired_surrogates(request.negative_prompt, "negative_prompt")
        if not prompt.strip():
            raise InvalidRequestError(
                "prompt must not be empty.", param="prompt", code="invalid_value"
            )
        max_chars = min(rules.max_prompt_chars, spec.max_prompt_chars)
        if len(prompt) > max_chars:
            raise InvalidRequestError(
                f"prompt is too long: {len(prompt)} characters; the maximum for model "
                f"{model_name} is {max_chars}.",
                param="prompt",
                code="string_above_max_length",
            )

        n = request.n if request.n is not None else 1
        if n > rules.max_n:
            raise InvalidRequestError(
                f"n must be at most {rules.max_n} for model {model_name}; got {n}.",
                param="n",
                code="integer_above_max_value",
            )

        quality = request.quality or "auto"
        if quality not in rules.qualities:
            raise InvalidRequestError(
                f"quality must be one of {_one_of(rules.qualities)} for model {model_name}; "
                f"got '{quality}'.",
                param="quality",
                code="invalid_value",
            )
        tier = QUALITY_TIERS[quality]

        size = self._resolve_size(request.size, spec, rules, model_name, auto_size)
        width, height = check_size_string(size)

        output_format: OutputFormat = request.output_format or "png"
        compression = request.output_compression if request.output_compression is not None else 100
        if output_format == "png" and compression != 100:
            raise InvalidRequestError(
                "output_compression is only supported with output_format 'jpeg' or 'webp'; "
                f"got output_format 'png' with output_compression {compression}.",
                param="output_compression",
                code="invalid_value",
            )

        transparent = request.background == "transparent"
        if transparent and rules.family in ("dall-e-2", "dall-e-3"):
            raise InvalidRequestError(
                f"background is only supported for GPT image models, not {model_name}.",
                param="background",
                code="unsupported_parameter",
            )
        if transparent and output_format == "jpeg":
            raise InvalidRequestError(
                "background 'transparent' requires output_format 'png' or 'webp'; JPEG has no "
                "alpha channel.",
                param="background",
                code="invalid_value",
            )
        if request.stream and rules.family in ("dall-e-2", "dall-e-3"):
            raise InvalidRequestError(
                f"stream is only supported for GPT image models, not {model_name}.",
                param="stream",
                code="unsupported_parameter",
            )
        if request.stream and request.response_format == "url":
            raise InvalidRequestError(
                "response_format 'url' cannot be streamed: stream events carry b64_json. Omit "
                "response_format or send stream=false.",
                param="response_format",
                code="unsupported_value",
            )

        steps = request.num_inference_steps
        if steps is None:
            steps = getattr(spec.steps, tier)
        elif steps > spec.max_inference_steps:
            raise InvalidRequestError(
                f"num_inference_steps must be at most {spec.max_inference_steps} for model "
                f"{model_name}; got {steps}.",
                param="num_inference_steps",
                code="integer_above_max_value",
            )
        guidance = request.guidance_scale
        if guidance is None:
            guidance = spec.guidance_scale

        if request.negative_prompt and not self.engine.accepts(spec, "negative_prompt"):
            raise InvalidRequestError(
                f"negative_prompt is not supported by model {model_name}.",
                param="negative_prompt",
                code="unsupported_parameter",
            )

        style = getattr(request, "style", None) or rules.default_style
        revised_prompt = apply_style(prompt, style) if style else None

        first_seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
        seeds = tuple((first_seed + index) % (MAX_SEED + 1) for index in range(n))

        # The server's own addition: ask for a backdrop the matting can take out.
        suffix = self.matting.prompt_suffix if transparent else ""
        # A prompt longer than the text encoder reads is cut, and the response says what was
        # used (revised_prompt), rather than letting the encoder drop the end silently.
        wanted = revised_prompt or prompt
        used, used_suffix, _ = self.engine.fit_prompt(spec, wanted, suffix)
        if used != wanted:
            revised_prompt = used
        model_prompt = used + used_suffix
        return PreparedGeneration(
            spec=spec,
            job=GenerationJob(
                prompt=model_prompt,
                negative_prompt=request.negative_prompt,
                width=width,
                height=height,
                num_inference_steps=steps,
                guidance_scale=guidance,
                seeds=seeds,
            ),
            prompt=prompt,
            moderation=request.moderation or "auto",
            rules=rules,
            size=size,
            quality_tier=tier,
            output_format=output_format,
            output_compression=compression,
            response_format=request.response_format or rules.default_response_format,
            revised_prompt=revised_prompt,
            partial_images=request.partial_images or 0,
            transparent=transparent,
        )

    @staticmethod
    def _resolve_size(
        requested: str | None,
        spec: ModelSpec,
        rules: NameRules,
        model_name: str,
        auto_size: str | None = None,
    ) -> str:
        allowed = list(rules.sizes) if rules.sizes is not None else [*spec.sizes, "auto"]
        size = requested if requested is not None else rules.default_size
        # Beyond its list, a model whose family allows it takes any size within its rules
        # (the OpenAI names with fixed lists, dall-e-2 and dall-e-3, keep their lists).
        family_rules = spec.size_rules if rules.sizes is None else None
        if size not in allowed:
            match = SIZE_PATTERN.match(size)
            if match is None:
                problem = "size must be WIDTHxHEIGHT (e.g. 1024x1024) and one of"
            else:
                problem = "size must be one of"
                if family_rules is not None:
                    why = family_rules.problem(int(match.group(1)), int(match.group(2)))
                    if why is None:
                        return size
                    raise InvalidRequestError(
                        f"size '{size}' is not possible for model {model_name}: {why}. Sizes "
                        f"{_one_of(allowed)} always work.",
                        param="size",
                        code="invalid_value",
                    )
            raise InvalidRequestError(
                f"{problem} {_one_of(allowed)} for model {model_name}; got '{size}'.",
                param="size",
                code="invalid_value",
            )
        if size == "auto":
            return auto_size or spec.default_size
        return size

    # --- execution ---------------------------------------------------------------------------

    def _blocked(self, verdict: Verdict, prepared: PreparedGeneration, request_id: str) -> None:
        if verdict.blocked:
            logger.info(
                "request %s blocked by moderation at %s: %s",
                request_id,
                verdict.stage,
                verdict.categories,
            )
            raise ModerationBlockedError(
                stage=verdict.stage,
                categories=verdict.categories,
                request_id=request_id,
                legacy=(
                    prepared.rules.family
                    if prepared.rules.family in ("dall-e-2", "dall-e-3")
                    else None
                ),
            )

    async def moderate_prompt(self, prepared: PreparedGeneration, request_id: str) -> Verdict:
        """Every prompt check, awaited: raise if the safety system blocks the prompt."""
        verdict = await asyncio.to_thread(
            self.moderator.check_prompt, prepared.prompt, prepared.moderation
        )
        self._blocked(verdict, prepared, request_id)
        return verdict

    async def render(
        self,
        prepared: PreparedGeneration,
        prompt_check: Verdict | asyncio.Future[Verdict],
        request_id: str,
    ) -> tuple[list[RenderedImage], GenerationOutput]:
        """Run the job, then check the prompt verdict (it may still have been computing beside
        the generation) and the images, and encode them, all off the event loop."""
        cancelled = threading.Event()
        job = replace(prepared.job, cancelled=cancelled)
        try:
            output = await self.engine.generate(prepared.spec, job)
        except asyncio.CancelledError:
            cancelled.set()  # the caller has gone: stop the run after its current step
            raise
        prompt_verdict = prompt_check if isinstance(prompt_check, Verdict) else await prompt_check
        self._blocked(prompt_verdict, prepared, request_id)

        encoded = await asyncio.to_thread(
            self._check_and_encode, output.images, prepared, prompt_verdict, request_id
        )
        rendered = [
            RenderedImage(data, seed) for data, seed in zip(encoded, output.seeds, strict=True)
        ]
        return rendered, output

    def _check_and_encode(
        self,
        images: list[Image.Image],
        prepared: PreparedGeneration,
        prompt_verdict: Verdict,
        request_id: str,
    ) -> list[bytes]:
        """Check images (outputs, or previews of them) and encode the ones that may leave."""
        # An edit's input may show a child the prompt never names, which the minors rule cannot
        # see; so the outputs of edits and variations are checked at the strict level.
        level: ModerationLevel = (
            "auto" if prepared.job.init_image is not None else prepared.moderation
        )
        verdict = self.moderator.check_images(images, level, prompt_verdict)
        self._blocked(verdict, prepared, request_id)
        if prepared.transparent:
            images = [self.matting.matte(image) for image in images]
        elif prepared.keep_alpha is not None and prepared.output_format != "jpeg":
            images = [image.convert("RGB") for image in images]
            for image in images:
                image.putalpha(prepared.keep_alpha)
        return [
            encode_image(image, prepared.output_format, prepared.output_compression)
            for image in images
        ]

    async def render_in_process(
        self, prepared: PreparedGeneration, input_images: list[Image.Image], *, request_id: str
    ) -> tuple[list[RenderedImage], GenerationOutput]:
        """Every check a request to the server gets, then the images: for the CLI."""
        prompt_check = await self._admit(prepared, input_images, request_id=request_id, user=None)
        return await self.render(prepared, prompt_check, request_id)

    async def create_image(
        self, request: CreateImageRequest, *, base_url: str, request_id: str
    ) -> ImagesResponse:
        # Tokenizing a long prompt takes a few milliseconds: not on the event loop.
        prepared = await asyncio.to_thread(self.prepare, request)
        return await self._run(
            prepared, [], base_url=base_url, request_id=request_id, user=request.user
        )

    async def create_edit(
        self,
        request: CreateImageEditRequest,
        images: list[UploadedImage],
        mask: Image.Image | None,
        *,
        base_url: str,
        request_id: str,
    ) -> ImagesResponse:
        # Resizing a large input takes a while: not on the event loop.
        prepared = await asyncio.to_thread(self.prepare_edit, request, images, mask)
        return await self._run(
            prepared,
            [image.image for image in images],
            base_url=base_url,
            request_id=request_id,
            user=request.user,
        )

    def prepare_edit(
        self,
        request: CreateImageEditRequest,
        images: list[UploadedImage],
        mask: Image.Image | None,
    ) -> PreparedGeneration:
        """Image-to-image, or inpainting with a mask, on the first (only) input image."""
        spec = self.engine.registry.resolve(request.model)
        rules = rules_for(request.model)
        model_name = request.model or spec.id
        source = self._check_inputs(images, rules, model_name, param="image")
        if mask is None and rules.family == "dall-e-2" and source.has_alpha:
            # dall-e-2 edits without a mask use the image's own transparency as the mask.
            mask = source.image.getchannel("A").point(lambda value: 255 if value == 0 else 0)
        kind: JobKind = "inpaint" if mask is not None else "image-to-image"
        if not self.engine.supports(spec, kind):
            raise InvalidRequestError(
                f"model {model_name} cannot edit images ({kind} is not available for it).",
                param="model",
                code="unsupported_model",
            )
        prepared = self.prepare(request, auto_size=snap_to_grid(source.image.size, spec))
        width, height = prepared.job.width, prepared.job.height
        job = replace(
            prepared.job,
            init_image=_resized(source.image.convert("RGB"), width, height),
            mask=mask.resize((width, height), Image.Resampling.NEAREST) if mask else None,
            strength=EDIT_STRENGTH[(kind, request.input_fidelity or "low")],
        )
        alpha = None
        if source.has_alpha and request.background != "opaque":
            alpha = source.image.getchannel("A")
            if mask is not None:
                # Whatever is repainted is opaque, transparent holes included (dall-e-2 edits
                # fill the image's transparent area).
                alpha = ImageChops.lighter(alpha, mask)
            if alpha.getextrema()[0] == 255:
                alpha = None  # an alpha channel with nothing transparent in it
            else:
                alpha = _resized(alpha, width, height)
        if prepared.output_format == "jpeg":
            alpha = None
        return replace(prepared, job=job, keep_alpha=alpha)

    async def create_variation(
        self,
        request: CreateImageVariationRequest,
        image: UploadedImage,
        *,
        base_url: str,
        request_id: str,
    ) -> ImagesResponse:
        """Image-to-image with no prompt, at the model's variation strength; one seed each."""
        # Off the event loop: resizing, and with lazy loading the model's first load.
        prepared = await asyncio.to_thread(self.prepare_variation, request, image)
        return await self._run(
            prepared, [image.image], base_url=base_url, request_id=request_id, user=request.user
        )

    def prepare_variation(
        self, request: CreateImageVariationRequest, image: UploadedImage
    ) -> PreparedGeneration:
        name = request.model or "dall-e-2"
        spec = self.engine.registry.resolve(name)
        rules = rules_for(name)
        source = self._check_inputs([image], rules, name, param="image")
        if not self.engine.supports(spec, "image-to-image"):
            raise InvalidRequestError(
                f"model {name} cannot make variations.", param="model", code="unsupported_model"
            )
        size = self._resolve_size(
            request.size, spec, rules, name, snap_to_grid(source.image.size, spec)
        )
        width, height = check_size_string(size)
        n = request.n if request.n is not None else 1
        if n > rules.max_n:
            raise InvalidRequestError(
                f"n must be at most {rules.max_n} for model {name}; got {n}.",
                param="n",
                code="integer_above_max_value",
            )
        first_seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
        job = GenerationJob(
            prompt="",
            width=width,
            height=height,
            num_inference_steps=spec.steps.medium,
            guidance_scale=spec.guidance_scale,
            seeds=tuple((first_seed + index) % (MAX_SEED + 1) for index in range(n)),
            init_image=_resized(source.image.convert("RGB"), width, height),
            strength=spec.variation_strength,
        )
        prepared = PreparedGeneration(
            spec=spec,
            job=job,
            prompt="",
            moderation="auto",
            rules=rules,
            size=size,
            quality_tier="medium",
            output_format="png",
            output_compression=100,
            response_format=request.response_format or rules.default_response_format,
            revised_prompt=None,
        )
        return prepared

    @staticmethod
    def _check_inputs(
        images: list[UploadedImage], rules: NameRules, model_name: str, *, param: str
    ) -> UploadedImage:
        if not images:
            raise InvalidRequestError(
                f"Missing required parameter: '{param}'.",
                param=param,
                code="missing_required_parameter",
            )
        if len(images) > 1:
            # Text-to-image models edit one picture; instruction-edit models that take several
            # images as references come with their own configuration.
            raise InvalidRequestError(
                f"model {model_name} takes 1 input image; got {len(images)}.",
                param=param,
                code="too_many_images",
            )
        image = images[0]
        if rules.family == "dall-e-2":
            width, height = image.image.size
            if image.format != "png" or width != height or image.size_bytes >= DALL_E_2_MAX_BYTES:
                raise InvalidRequestError(
                    f"Invalid file '{param}': dall-e-2 takes one square PNG under 4 MB; got a "
                    f"{width}x{height} {image.format.upper()} of {image.size_bytes / 1e6:.1f} MB.",
                    param=param,
                    code="invalid_image_format",
                )
        return image

    async def _admit(
        self,
        prepared: PreparedGeneration,
        input_images: list[Image.Image],
        *,
        request_id: str,
        user: str | None,
    ) -> asyncio.Future[Verdict]:
        """Checks that gate the queue; returns the model-based prompt check, still running."""
        # The term rules and the input images gate the queue. The model-based prompt checks
        # take milliseconds on a CPU, so they run beside the queue wait and generation; their
        # verdict is awaited before any image is checked or returned.
        rules = await asyncio.to_thread(
            self.moderator.check_prompt_rules, prepared.prompt, prepared.moderation
        )
        self._blocked(rules, prepared, request_id)
        if input_images:
            inputs = await asyncio.to_thread(
                self.moderator.check_images, input_images, prepared.moderation, rules, "input"
            )
            self._blocked(inputs, prepared, request_id)
        prompt_check = asyncio.ensure_future(
            asyncio.to_thread(self.moderator.check_prompt_models, prepared.prompt, rules)
        )
        # If generation fails first, nobody awaits the check: retrieve its outcome anyway.
        prompt_check.add_done_callback(lambda done: done.cancelled() or done.exception())
        logger.info(
            "%s model=%s size=%s steps=%d n=%d user=%s",
            prepared.job.kind,
            prepared.spec.id,
            prepared.size,
            prepared.job.num_inference_steps,
            prepared.job.num_images,
            user or "-",
        )
        return prompt_check

    async def _run(
        self,
        prepared: PreparedGeneration,
        input_images: list[Image.Image],
        *,
        base_url: str,
        request_id: str,
        user: str | None,
    ) -> ImagesResponse:
        prompt_check = await self._admit(prepared, input_images, request_id=request_id, user=user)
        rendered, output = await self.render(prepared, prompt_check, request_id)
        data = await asyncio.to_thread(self._image_data, rendered, prepared, base_url)
        # Input images count as image tokens, estimated with the low tier of OpenAI's table.
        input_tokens = sum(
            output_tokens_per_image(image.width, image.height, "low") for image in input_images
        )
        return ImagesResponse(
            created=int(time.time()),
            data=data,
            background=prepared.background,  # type: ignore[arg-type]
            output_format=prepared.output_format,
            quality=prepared.quality_tier,  # type: ignore[arg-type]
            size=prepared.size,
            usage=image_usage(
                prompt_tokens=output.prompt_tokens,
                width=prepared.job.width,
                height=prepared.job.height,
                tier=prepared.quality_tier,
                count=len(rendered),
                input_image_tokens=input_tokens,
            ),
        )

    async def open_stream(
        self,
        prepared: PreparedGeneration,
        input_images: list[Image.Image],
        *,
        request_id: str,
        user: str | None,
        event_prefix: str,
        cancelled: threading.Event | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Admit and queue the request (a refusal or a full queue is a plain error response,
        before any event), then return the events: for each preview step, one
        `<prefix>.partial_image` per image (image 0 first), then one `<prefix>.completed` per
        image, in seed order. A failure after that arrives as an `error` event."""
        prompt_check = await self._admit(prepared, input_images, request_id=request_id, user=user)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[int, list[Image.Image]] | None] = asyncio.Queue()
        cancelled = cancelled or threading.Event()

        sent = [-1]

        def on_preview(index: int, images: list[Image.Image]) -> None:  # worker thread
            # A batch that fails is run again job by job, and sends its previews again.
            if index > sent[0]:
                sent[0] = index
                loop.call_soon_threadsafe(events.put_nowait, (index, images))

        job = replace(
            prepared.job,
            partial_images=prepared.partial_images,
            on_preview=on_preview,
            cancelled=cancelled,
        )
        generation = self.engine.enqueue(prepared.spec, job)
        # The end of the run, however it ends, is the last item of the queue. Its outcome is
        # read below, or retrieved here when nobody is left to read it.
        generation.add_done_callback(lambda done: events.put_nowait(None))
        generation.add_done_callback(lambda done: done.cancelled() or done.exception())
        return self._events(
            prepared, input_images, prompt_check, generation, events, cancelled, request_id,
            event_prefix,
        )  # fmt: skip

    async def _events(
        self,
        prepared: PreparedGeneration,
        input_images: list[Image.Image],
        prompt_check: asyncio.Future[Verdict],
        generation: asyncio.Future[GenerationOutput],
        events: asyncio.Queue[tuple[int, list[Image.Image]] | None],
        cancelled: threading.Event,
        request_id: str,
        event_prefix: str,
    ) -> AsyncGenerator[dict[str, Any], None]:
        fields = {
            "created_at": int(time.time()),
            "size": prepared.size,
            "quality": prepared.quality_tier,
            "background": prepared.background,
            "output_format": prepared.output_format,
        }
        try:
            while (preview := await events.get()) is not None:
                index, images = preview
                # Nothing leaves the server unchecked: the prompt's model verdict first, then
                # the preview images themselves, as if they were outputs.
                prompt_verdict = await prompt_check
                self._blocked(prompt_verdict, prepared, request_id)
                encoded = await asyncio.to_thread(
                    self._check_and_encode, images, prepared, prompt_verdict, request_id
                )
                for data in encoded:
                    yield {
                        "type": f"{event_prefix}.partial_image",
                        "b64_json": pybase64.b64encode(data).decode("ascii"),
                        **fields,
                        "partial_image_index": index,
                    }
            output = generation.result()
            prompt_verdict = await prompt_check
            self._blocked(prompt_verdict, prepared, request_id)
            encoded = await asyncio.to_thread(
                self._check_and_encode, output.images, prepared, prompt_verdict, request_id
            )
            input_tokens = sum(
                output_tokens_per_image(image.width, image.height, "low") for image in input_images
            )
            usage = image_usage(
                prompt_tokens=output.prompt_tokens,
                width=prepared.job.width,
                height=prepared.job.height,
                tier=prepared.quality_tier,
                count=1,
                input_image_tokens=input_tokens,
            ).model_dump(exclude={"output_tokens_details"})
            for data, seed in zip(encoded, output.seeds, strict=True):
                yield {
                    "type": f"{event_prefix}.completed",
                    "b64_json": pybase64.b64encode(data).decode("ascii"),
                    **fields,
                    "usage": usage,
                    "seed": seed,  # pixelsmith extension, as in non-streamed responses
                }
        except APIError as exc:
            yield exc.to_body()
        except JobCancelled:
            return  # the client hung up; nobody is listening
        except Exception:
            logger.exception("stream of request %s failed", request_id)
            yield error_body(
                INTERNAL_ERROR_MESSAGE.format(request_id=request_id), type="server_error"
            )
        finally:
            # The client is gone, or the stream is over: stop the run after its current step
            # (or never start it, if it is still queued).
            cancelled.set()
            generation.cancel()

    def _image_data(
        self, rendered: list[RenderedImage], prepared: PreparedGeneration, base_url: str
    ) -> list[ImageData]:
        items = []
        for image in rendered:
            item = ImageData(seed=image.seed, revised_prompt=prepared.revised_prompt)
            if prepared.response_format == "url":
                stored = self.store.save(image.data, prepared.output_format)
                item.url = base_url.rstrip("/") + self.store.signed_path(stored)
            else:
                item.b64_json = pybase64.b64encode(image.data).decode("ascii")
            items.append(item)
        return items
