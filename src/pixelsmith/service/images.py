"""The image operations, one entry each: `generate`, `edit` and `create_variation`. Every caller
(the HTTP routes, the CLI, and later batch jobs, MCP tools and Ray replicas) calls exactly
these. Each takes a validated request and returns the complete `ImagesResponse`, or, when the
request asked for a stream, an `ImageStream` of events.

Each request takes the same path: plan (planning.py), admit (moderation_gate.py), queue on the
backend, then answer (output.py, events.py). Refusals, a full queue included, are raised before
anything is returned, so that a stream starts only once its request has been accepted. (One
exception: the first requests to a model loaded on demand are checked against what it can do
only when it has loaded; a stream learns of a refusal then, as an `error` event.) Cancelling
the awaiting task (a client that hangs up) stops the run after its current step, or before it
starts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from PIL import Image

from pixelsmith import metrics
from pixelsmith.api.protocol import (
    CreateImageEditRequest,
    CreateImageRequest,
    CreateImageVariationRequest,
    ImageData,
    ImagesResponse,
)
from pixelsmith.engine import GenerationOutput, UnsupportedJobError
from pixelsmith.engine.jobs import INTERACTIVE_PRIORITY
from pixelsmith.errors import INTERNAL_ERROR_MESSAGE, APIError, error_body
from pixelsmith.matting import KeyedBackgroundMatting, Matting
from pixelsmith.moderation import Moderator
from pixelsmith.provenance import ContentCredentials
from pixelsmith.service.backend import ImageBackend
from pixelsmith.service.events import StreamEvent, StreamEvents
from pixelsmith.service.inputs import InputImages
from pixelsmith.service.moderation_gate import RequestModeration
from pixelsmith.service.output import OutputWriter, image_origins
from pixelsmith.service.planning import RequestPlanner, unsupported_error
from pixelsmith.service.plans import ImagePlan
from pixelsmith.service.usage import image_usage
from pixelsmith.storage import ImageStore

logger = logging.getLogger(__name__)


@dataclass
class RequestOutcome:
    """What the service tells its caller about a request as it goes, for access logs and
    metrics: the model that serves it, and how many images it has returned."""

    model: str | None = None
    images: int = 0
    replica: str = ""  # the replica that ran it, under Ray


@dataclass(frozen=True)
class RequestContext:
    """What the service knows of its caller."""

    request_id: str  # in logs and in error messages, for the client to quote
    base_url: str = ""  # where image URLs point (response_format="url")
    outcome: RequestOutcome = field(default_factory=RequestOutcome)
    # Queue priority of its jobs (engine/jobs.py): batch lines wait behind interactive work.
    priority: int = INTERACTIVE_PRIORITY
    # Called on the event loop after each denoising step with (steps done, steps in all), for
    # callers that report progress (the MCP tools).
    on_progress: Callable[[int, int], None] | None = None


class ImageService:
    def __init__(
        self,
        backend: ImageBackend,
        store: ImageStore,
        moderator: Moderator,
        matting: Matting | None = None,
        *,
        credentials: ContentCredentials | None = None,
    ) -> None:
        """`credentials` sign every image that leaves, previews included (C2PA; None: the
        images go unsigned)."""
        self.backend = backend
        self.moderator = moderator
        matting = matting or KeyedBackgroundMatting()
        self.planner = RequestPlanner(backend, matting)
        self.writer = OutputWriter(store, matting, credentials)

    async def generate(
        self, request: CreateImageRequest, context: RequestContext
    ) -> ImagesResponse | ImageStream:
        """Images from a prompt (OpenAI `images.generate`)."""
        # Off the event loop, like every plan: edits resize large inputs.
        plan = await asyncio.to_thread(self.planner.generation, request)
        return await self._answer(plan, context)

    async def edit(
        self, request: CreateImageEditRequest, inputs: InputImages, context: RequestContext
    ) -> ImagesResponse | ImageStream:
        """An edit of the input image, the masked area only when there is a mask (OpenAI
        `images.edit`). The inputs are decoded here, once their number has been checked."""
        plan = await asyncio.to_thread(self.planner.edit, request, inputs)
        return await self._answer(plan, context)

    async def create_variation(
        self, request: CreateImageVariationRequest, image: bytes, context: RequestContext
    ) -> ImagesResponse:
        """Variations of one image (OpenAI `images.create_variation`); never streamed."""
        plan = await asyncio.to_thread(self.planner.variation, request, image)
        answer = await self._answer(plan, context)
        assert isinstance(answer, ImagesResponse)  # variations have no `stream`
        return answer

    async def _answer(
        self, plan: ImagePlan, context: RequestContext
    ) -> ImagesResponse | ImageStream:
        context.outcome.model = plan.spec.id
        moderation = RequestModeration(self.moderator, plan, context.request_id)
        await moderation.admit()
        logger.info(
            "%s model=%s size=%s steps=%d n=%d end_user=%s",
            plan.job.kind,
            plan.spec.id,
            plan.size,
            plan.job.num_inference_steps,
            plan.job.num_images,
            _hashed(plan.end_user),
        )
        if plan.stream:
            # Queued now: a full queue is a 429 before any event.
            run = _Run(self.backend, plan, previews=True, context=context)
            await run.queued()
            return ImageStream(self._events(plan, moderation, run, context), run)
        return await self._complete(plan, moderation, context)

    async def _complete(
        self, plan: ImagePlan, moderation: RequestModeration, context: RequestContext
    ) -> ImagesResponse:
        output = await _Run(self.backend, plan, previews=False, context=context).output()
        context.outcome.replica = output.served_by
        await moderation.prompt()
        data = await asyncio.to_thread(self._image_data, output, plan, moderation, context)
        context.outcome.images = len(data)
        return ImagesResponse(
            created=int(time.time()),
            data=data,
            background=plan.output.background,
            output_format=plan.output.format,
            quality=plan.quality_tier,
            safety_identifier=plan.end_user,
            size=str(plan.size),
            usage=image_usage(plan, prompt_tokens=output.prompt_tokens, count=len(data)),
        )

    def _image_data(
        self,
        output: GenerationOutput,
        plan: ImagePlan,
        moderation: RequestModeration,
        context: RequestContext,
    ) -> list[ImageData]:
        encoded = self._checked_and_encoded(
            output.images, plan, moderation, output.frames, seeds=output.seeds
        )
        return self.writer.image_data(
            encoded,
            output.seeds,
            plan.output,
            # A prompt cut at the text encoder's window is reported as what was used.
            revised_prompt=output.cut_prompt or plan.revised_prompt,
            base_url=context.base_url,
        )

    def _checked_and_encoded(
        self,
        images: list[Image.Image],
        plan: ImagePlan,
        moderation: RequestModeration,
        frames: list[list[Image.Image]] | None = None,
        *,
        seeds: Sequence[int | None],
    ) -> list[bytes]:
        """Check every image that will leave (each frame of an animation), then encode and
        sign them (one per seed)."""
        moderation.check_images(
            [frame for animation in frames for frame in animation] if frames else images
        )
        origins = image_origins(plan, seeds)
        return self.writer.encode(images, plan.output, frames, origins)

    async def _events(
        self,
        plan: ImagePlan,
        moderation: RequestModeration,
        run: _Run,
        context: RequestContext,
    ) -> AsyncGenerator[StreamEvent, None]:
        """For each preview step one partial_image per image (image 0 first), then one
        completed per image, in seed order. A failure from here on is an `error` event."""
        events = StreamEvents(plan)
        try:
            async for index, images, step in run.previews():
                # Nothing leaves the server unchecked: the prompt's verdict first, then the
                # preview images themselves, as if they were outputs.
                await moderation.prompt()
                started = time.perf_counter()
                # One preview per image, in seed order; the seeds go unrecorded in the
                # credentials should the engine ever send another number of them.
                seeds = plan.job.seeds
                encoded = await asyncio.to_thread(
                    self._checked_and_encoded,
                    images,
                    plan,
                    moderation,
                    seeds=seeds if len(seeds) == len(images) else [None] * len(images),
                )
                seconds = (time.perf_counter() - started) / max(1, len(encoded))
                for _ in encoded:
                    metrics.PREVIEW_SECONDS.observe(seconds)
                for data in encoded:
                    yield events.partial_image(data, index, step)
            output = await run.output()
            context.outcome.replica = output.served_by
            await moderation.prompt()
            encoded = await asyncio.to_thread(
                self._checked_and_encoded, output.images, plan, moderation, seeds=output.seeds
            )
            usage = image_usage(plan, prompt_tokens=output.prompt_tokens, count=1)
            for data, seed in zip(encoded, output.seeds, strict=True):
                context.outcome.images += 1
                yield events.completed(data, usage, seed)
        except APIError as exc:
            yield exc.to_body()
        except Exception:
            logger.exception("stream of request %s failed", context.request_id)
            yield error_body(
                INTERNAL_ERROR_MESSAGE.format(request_id=context.request_id), type="server_error"
            )
        finally:
            run.stop()


def _hashed(end_user: str | None) -> str:
    """An end-user id as the log shows it: a short hash, so that a client's text (a newline
    that forges a log line, or someone's e-mail address) never reaches the log."""
    return hashlib.sha256(end_user.encode()).hexdigest()[:12] if end_user else "-"


class ImageStream:
    """The events of one streamed request, in order. `aclose()` stops the run (after its
    current step, or before it starts), whether or not any event was read."""

    def __init__(self, events: AsyncGenerator[StreamEvent, None], run: _Run) -> None:
        self._events = events
        self._run = run

    def __aiter__(self) -> ImageStream:
        return self

    async def __anext__(self) -> StreamEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        self._run.stop()
        await self._events.aclose()


class Preview(NamedTuple):
    """Images of a run in progress: the preview index, one image per seed, and the denoising
    step (done, of all) they show, when the engine said."""

    preview_index: int
    images: list[Image.Image]
    step: tuple[int, int] | None


class _Run:
    """One job on the backend's queue: its output to come, its previews as they arrive, and a
    switch that stops it."""

    def __init__(
        self,
        backend: ImageBackend,
        plan: ImagePlan,
        *,
        previews: bool,
        context: RequestContext,
    ) -> None:
        self._plan = plan
        self._backend = backend
        self._cancelled = threading.Event()
        self._previews: asyncio.Queue[Preview | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        sent = -1
        # The step the run is at: the engine reports a step before the preview made after it.
        latest_step: tuple[int, int] | None = None

        def on_preview(index: int, images: list[Image.Image]) -> None:  # worker thread
            nonlocal sent
            # A batch that fails is run again job by job, and sends its previews again.
            if index > sent:
                sent = index
                preview = Preview(index, images, latest_step)
                loop.call_soon_threadsafe(self._previews.put_nowait, preview)

        report = context.on_progress

        def on_step(done: int, total: int) -> None:  # worker thread
            nonlocal latest_step
            latest_step = (done, total)
            if report is not None:
                loop.call_soon_threadsafe(report, done, total)

        job = replace(
            plan.job,
            cancelled=self._cancelled,
            on_preview=on_preview if previews else None,
            on_step=on_step if previews or report is not None else None,
            priority=context.priority,
        )
        self._output = backend.enqueue(plan.spec, job)
        # The end of the run, however it ends, is the last item of the previews' queue. Its
        # outcome is read by output(), or retrieved here when nobody is left to read it.
        self._output.add_done_callback(lambda done: self._previews.put_nowait(None))
        self._output.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def queued(self) -> None:
        """Once the job has its place in a queue; RateLimitError and the like if not."""
        try:
            await self._backend.queued(self._output)
        except BaseException:
            self.stop()
            raise

    async def previews(self) -> AsyncIterator[Preview]:
        """Previews until the run ends."""
        while (preview := await self._previews.get()) is not None:
            yield preview

    async def output(self) -> GenerationOutput:
        """The run's output. A model that turns out unable to run the job (one loaded on
        demand, whose capabilities were not known when the request was planned) answers as
        planning would have."""
        try:
            return await self._output
        except asyncio.CancelledError:
            self.stop()  # the caller has gone: stop the run after its current step
            raise
        except UnsupportedJobError as exc:
            plan = self._plan
            images = 1 + len(plan.job.references)
            raise unsupported_error(
                exc.param, plan.operation, plan.target, plan.job.kind, images
            ) from None

    def stop(self) -> None:
        self._cancelled.set()
        self._output.cancel()
