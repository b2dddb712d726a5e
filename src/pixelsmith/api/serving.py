"""Image generation logic between the wire and the engine. No HTTP framework here: the router
passes in what it knows of the request (its base URL), and the CLI uses the same code."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass

import pybase64

from pixelsmith.api.model_names import QUALITY_TIERS, NameRules, apply_style, rules_for
from pixelsmith.api.protocol import (
    MAX_SEED,
    CreateImageRequest,
    ImageData,
    ImagesResponse,
)
from pixelsmith.api.usage import image_usage
from pixelsmith.engine import Engine, GenerationJob, GenerationOutput, ModelSpec
from pixelsmith.errors import InvalidRequestError, ModerationBlockedError
from pixelsmith.imaging import OutputFormat, encode_image
from pixelsmith.moderation import ModerationLevel, Moderator, Verdict
from pixelsmith.settings import check_size_string
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


@dataclass(frozen=True)
class RenderedImage:
    data: bytes
    seed: int


def _one_of(values: tuple[str, ...] | list[str]) -> str:
    quoted = [f"'{value}'" for value in values]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


class ImageService:
    """Validates generation requests against the model they name, runs them, encodes results."""

    def __init__(self, engine: Engine, store: ImageStore, moderator: Moderator) -> None:
        self.engine = engine
        self.store = store
        self.moderator = moderator

    # --- validation --------------------------------------------------------------------------

    def prepare(self, request: CreateImageRequest) -> PreparedGeneration:
        spec = self.engine.registry.resolve(request.model)
        rules = rules_for(request.model)
        # Named in error messages; without `model`, GPT image rules apply to the default model.
        model_name = request.model or f"{spec.id} (the default model, with gpt-image-1 rules)"

        prompt = request.prompt
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

        size = self._resolve_size(request.size, spec, rules, model_name)
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

        if request.background == "transparent":
            raise InvalidRequestError(
                f"background 'transparent' is not supported by model {model_name} yet; use "
                "'opaque' or 'auto'.",
                param="background",
                code="unsupported_value",
            )
        if request.stream:
            raise InvalidRequestError(
                "stream=true is not supported by this server yet; send stream=false or omit it.",
                param="stream",
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

        style = request.style or rules.default_style
        revised_prompt = apply_style(prompt, style) if style else None

        first_seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
        seeds = tuple((first_seed + index) % (MAX_SEED + 1) for index in range(n))

        return PreparedGeneration(
            spec=spec,
            job=GenerationJob(
                prompt=revised_prompt or prompt,
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
        )

    @staticmethod
    def _resolve_size(
        requested: str | None, spec: ModelSpec, rules: NameRules, model_name: str
    ) -> str:
        allowed = list(rules.sizes) if rules.sizes is not None else [*spec.sizes, "auto"]
        size = requested if requested is not None else rules.default_size
        if size not in allowed:
            try:
                check_size_string(size)
            except ValueError:
                problem = "size must be WIDTHxHEIGHT (e.g. 1024x1024) and one of"
            else:
                problem = "size must be one of"
            raise InvalidRequestError(
                f"{problem} {_one_of(allowed)} for model {model_name}; got '{size}'.",
                param="size",
                code="invalid_value",
            )
        return spec.default_size if size == "auto" else size

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
                legacy=prepared.rules.family in ("dall-e-2", "dall-e-3"),
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
        output = await self.engine.generate(prepared.spec, prepared.job)
        prompt_verdict = prompt_check if isinstance(prompt_check, Verdict) else await prompt_check
        self._blocked(prompt_verdict, prepared, request_id)

        def check_and_encode() -> list[RenderedImage]:
            verdict = self.moderator.check_images(
                output.images, prepared.moderation, prompt_verdict
            )
            self._blocked(verdict, prepared, request_id)
            return [
                RenderedImage(
                    encode_image(image, prepared.output_format, prepared.output_compression), seed
                )
                for image, seed in zip(output.images, output.seeds, strict=True)
            ]

        return await asyncio.to_thread(check_and_encode), output

    async def create_image(
        self, request: CreateImageRequest, *, base_url: str, request_id: str
    ) -> ImagesResponse:
        prepared = self.prepare(request)
        # The term rules gate the queue (well under a millisecond). The model-based prompt
        # checks take milliseconds on a CPU, so they run beside the queue wait and generation;
        # their verdict is awaited before any image is checked or returned.
        rules = self.moderator.check_prompt_rules(prepared.prompt, prepared.moderation)
        self._blocked(rules, prepared, request_id)
        prompt_check = asyncio.ensure_future(
            asyncio.to_thread(self.moderator.check_prompt_models, prepared.prompt, rules)
        )
        # If generation fails first, nobody awaits the check: retrieve its outcome anyway.
        prompt_check.add_done_callback(lambda done: done.cancelled() or done.exception())
        logger.info(
            "generate model=%s size=%s steps=%d n=%d user=%s",
            prepared.spec.id,
            prepared.size,
            prepared.job.num_inference_steps,
            prepared.job.num_images,
            request.user or "-",
        )
        rendered, output = await self.render(prepared, prompt_check, request_id)
        data = await asyncio.to_thread(self._image_data, rendered, prepared, base_url)
        return ImagesResponse(
            created=int(time.time()),
            data=data,
            background="opaque",
            output_format=prepared.output_format,
            quality=prepared.quality_tier,  # type: ignore[arg-type]
            size=prepared.size,
            usage=image_usage(
                prompt_tokens=output.prompt_tokens,
                width=prepared.job.width,
                height=prepared.job.height,
                tier=prepared.quality_tier,
                count=len(rendered),
            ),
        )

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
