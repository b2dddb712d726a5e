"""The service's entries (generate, edit, create_variation) on a fake backend: no pipeline, no
HTTP. Fast checks of what each entry hands the engine and what it answers; the end-to-end
tests drive the same entries through the official clients on real tiny pipelines."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pixelsmith.api.protocol import (
    CreateImageEditRequest,
    CreateImageRequest,
    CreateImageVariationRequest,
    ImagesResponse,
)
from pixelsmith.engine import (
    GenerationJob,
    GenerationOutput,
    ModelCapabilities,
    ModelRegistry,
    ModelSpec,
    UnsupportedJobError,
)
from pixelsmith.errors import InvalidRequestError, ModerationBlockedError, RateLimitError
from pixelsmith.moderation import Moderator
from pixelsmith.service import ImageService, ImageStream, InputImages, RequestContext
from pixelsmith.service.names import OPENAI_MODEL_NAMES
from pixelsmith.settings import ModelConfig
from pixelsmith.storage import LocalImageStore

CONTEXT = RequestContext(request_id="req_test", base_url="http://images.test")
EVERYTHING = ModelCapabilities(
    call_parameters=frozenset({"prompt", "negative_prompt"}),
    kinds=frozenset({"text-to-image", "image-to-image", "inpaint"}),
)


def colour(seed: int) -> tuple[int, int, int]:
    return (seed * 40 % 256, 255 - seed * 40 % 256, 128)


class FakeBackend:
    """Stands in for the engine: the tiny model's real spec and name rules, and jobs that
    "run" by painting each image one flat colour from its seed. Previews are sent from
    another thread, as the worker sends them."""

    def __init__(
        self,
        capabilities: ModelCapabilities | None = EVERYTHING,
        config: ModelConfig | None = None,
        echo: bool = False,
    ) -> None:
        self.registry = ModelRegistry(
            [config or ModelConfig(source="tiny")], default_aliases=OPENAI_MODEL_NAMES
        )
        self.echo = echo  # answer each job with its own input image, as a no-op model would
        self.known = capabilities
        self.jobs: list[GenerationJob] = []
        self.outputs: list[asyncio.Future[GenerationOutput]] = []
        self.release = asyncio.Event()
        self.release.set()  # cleared by a test that wants jobs held in the queue
        self.failure: Exception | None = None
        self.full = False

    def capabilities(self, spec: ModelSpec) -> ModelCapabilities | None:
        return self.known

    def enqueue(self, spec: ModelSpec, job: GenerationJob) -> asyncio.Future[GenerationOutput]:
        if self.full:
            raise RateLimitError("The server is busy.", retry_after_seconds=1)
        self.jobs.append(job)
        future: asyncio.Future[GenerationOutput] = asyncio.get_running_loop().create_future()
        self.outputs.append(future)
        asyncio.ensure_future(self._run(job, future))
        return future

    async def queued(self, output: asyncio.Future[GenerationOutput]) -> None:
        pass  # enqueue raised already when the queue was full

    async def _run(self, job: GenerationJob, future: asyncio.Future[GenerationOutput]) -> None:
        await self.release.wait()
        if future.done():  # cancelled while queued: never runs
            return
        size = (job.width, job.height)
        for index in range(job.partial_images):
            previews = [Image.new("RGB", size, (index, index, index)) for _ in job.seeds]
            assert job.on_preview is not None
            await asyncio.to_thread(job.on_preview, index, previews)
        if self.failure is not None:
            future.set_exception(self.failure)
            return
        images = [
            job.init_image.copy() if self.echo else Image.new("RGB", size, colour(seed))
            for seed in job.seeds
        ]
        future.set_result(
            GenerationOutput(images=images, seeds=job.seeds, prompt_tokens=len(job.prompt) + 2)
        )


def make_service(tmp_path: Path, backend: FakeBackend | None = None) -> ImageService:
    store = LocalImageStore(tmp_path, ttl_seconds=60, signing_key=b"k" * 32)
    return ImageService(backend or FakeBackend(), store, Moderator())


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def decoded(b64_json: str | None) -> Image.Image:
    assert b64_json is not None
    return Image.open(io.BytesIO(base64.b64decode(b64_json)))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_generate_queues_the_planned_job_and_answers_its_images_in_seed_order(tmp_path: Path):
    backend = FakeBackend()
    service = make_service(tmp_path, backend)
    request = CreateImageRequest(prompt="a cat", n=3, size="128x64", quality="high", seed=7)
    response = run(service.generate(request, CONTEXT))
    assert isinstance(response, ImagesResponse)
    (job,) = backend.jobs
    assert (job.prompt, job.width, job.height, job.seeds) == ("a cat", 128, 64, (7, 8, 9))
    assert job.num_inference_steps == 4  # quality=high: the tiny preset's high tier
    assert job.partial_images == 0 and job.cancelled is not None
    assert [item.seed for item in response.data] == [7, 8, 9]
    for item in response.data:
        image = decoded(item.b64_json)
        assert image.size == (128, 64) and image.getpixel((5, 5)) == colour(item.seed or 0)
    assert (response.size, response.quality, response.output_format) == ("128x64", "high", "png")
    assert response.usage is not None and response.usage.input_tokens == len("a cat") + 2


def test_generate_streams_checked_previews_then_the_images(tmp_path: Path):
    backend = FakeBackend()
    service = make_service(tmp_path, backend)
    request = CreateImageRequest(
        prompt="a cat", n=2, size="64x64", stream=True, partial_images=2, seed=1
    )

    async def scenario() -> list[dict[str, Any]]:
        stream = await service.generate(request, CONTEXT)
        assert isinstance(stream, ImageStream)
        return [event async for event in stream]

    events = run(scenario())
    types = [event["type"] for event in events]
    assert types == ["image_generation.partial_image"] * 4 + ["image_generation.completed"] * 2
    assert [event["partial_image_index"] for event in events[:4]] == [0, 0, 1, 1]
    assert [event["seed"] for event in events[4:]] == [1, 2]
    assert backend.jobs[0].partial_images == 2
    for event in events:
        assert (event["size"], event["background"], event["output_format"]) == (
            "64x64",
            "opaque",
            "png",
        )
    assert decoded(events[4]["b64_json"]).getpixel((0, 0)) == colour(1)
    assert "output_tokens_details" not in events[4]["usage"]


def test_refusals_come_before_anything_is_queued_or_streamed(tmp_path: Path):
    backend = FakeBackend(ModelCapabilities(frozenset({"prompt"}), frozenset({"text-to-image"})))
    service = make_service(tmp_path, backend)
    with pytest.raises(ModerationBlockedError):
        run(service.generate(CreateImageRequest(prompt="a nude woman on a bed"), CONTEXT))
    with pytest.raises(InvalidRequestError) as error:
        run(service.generate(CreateImageRequest(prompt="a cat", negative_prompt="fog"), CONTEXT))
    assert error.value.param == "negative_prompt"
    with pytest.raises(InvalidRequestError) as error:
        edit = CreateImageEditRequest(prompt="a cat")
        run(service.edit(edit, InputImages([png(Image.new("RGB", (64, 64)))]), CONTEXT))
    assert error.value.param == "model" and "cannot edit images" in error.value.message
    assert backend.jobs == []
    backend.full = True  # a full queue is an error, not a stream that starts with one
    with pytest.raises(RateLimitError):
        run(service.generate(CreateImageRequest(prompt="a cat", stream=True), CONTEXT))


def test_what_a_lazily_loaded_model_cannot_do_is_answered_as_planning_would(tmp_path: Path):
    backend = FakeBackend(capabilities=None)  # not loaded yet: the engine finds out
    backend.failure = UnsupportedJobError("negative_prompt")
    service = make_service(tmp_path, backend)
    with pytest.raises(InvalidRequestError) as error:
        run(service.generate(CreateImageRequest(prompt="a cat", negative_prompt="fog"), CONTEXT))
    assert error.value.param == "negative_prompt" and error.value.status_code == 400

    async def streamed() -> list[dict[str, Any]]:
        request = CreateImageRequest(prompt="a cat", negative_prompt="fog", stream=True)
        stream = await service.generate(request, CONTEXT)
        assert isinstance(stream, ImageStream)
        return [event async for event in stream]

    (event,) = run(streamed())
    assert event["error"]["param"] == "negative_prompt"


def test_edits_check_the_image_count_before_decoding_and_plan_the_source(tmp_path: Path):
    backend = FakeBackend()
    service = make_service(tmp_path, backend)
    edit = CreateImageEditRequest(prompt="a red roof", seed=3, input_fidelity="high")
    with pytest.raises(InvalidRequestError) as error:  # not images: never decoded
        run(service.edit(edit, InputImages([b"junk", b"junk"], param="images"), CONTEXT))
    assert error.value.param == "images" and "takes 1 input image; got 2" in error.value.message
    with pytest.raises(InvalidRequestError) as error:
        run(service.edit(edit, InputImages([b"junk"], param="images"), CONTEXT))
    assert error.value.param == "images[0]"

    source = Image.new("RGBA", (200, 100), (10, 20, 30, 255))
    source.paste((10, 20, 30, 0), (0, 0, 100, 100))  # the left half transparent
    mask = Image.new("RGBA", (200, 100), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (150, 0, 200, 100))  # repaint the right quarter
    response = run(service.edit(edit, InputImages([png(source)], mask=png(mask)), CONTEXT))
    (job,) = backend.jobs
    assert job.kind == "inpaint" and job.strength == 0.85  # inpainting at high fidelity
    assert (job.width, job.height) == (200, 96)  # size=auto: the input on the model's grid
    assert job.init_image.size == (200, 96) and job.mask.size == (200, 96)
    assert response.size == "200x96" and response.background == "transparent"
    alpha = np.asarray(decoded(response.data[0].b64_json))[..., 3]
    assert alpha[50, 20] == 0 and alpha[50, 180] == 255  # the input's hole stays; repaint opaque
    assert response.usage is not None and response.usage.input_tokens_details.image_tokens > 0


def test_variations_use_the_same_steps_with_dall_e_2_defaults(tmp_path: Path):
    backend = FakeBackend()
    service = make_service(tmp_path, backend)
    image = png(Image.new("RGB", (256, 256), (200, 10, 10)))
    response = run(
        service.create_variation(CreateImageVariationRequest(n=2, seed=5), image, CONTEXT)
    )
    (job,) = backend.jobs
    spec = backend.registry.default
    assert (job.prompt, job.kind, job.strength) == ("", "image-to-image", spec.variation_strength)
    assert job.seeds == (5, 6) and job.num_inference_steps == spec.steps.medium
    assert response.size == "1024x1024"  # dall-e-2's default size
    # dall-e-2 answers with URLs by default, under the caller's base URL.
    assert all(item.url and item.url.startswith("http://images.test/v1/images/files/")
               for item in response.data)  # fmt: skip
    with pytest.raises(InvalidRequestError) as error:  # dall-e-2 takes square PNGs only
        wide = png(Image.new("RGB", (256, 128)))
        run(service.create_variation(CreateImageVariationRequest(), wide, CONTEXT))
    assert error.value.code == "invalid_image_format"


def test_a_caller_that_goes_away_stops_its_run(tmp_path: Path):
    backend = FakeBackend()
    backend.release.clear()  # every job waits in the queue
    service = make_service(tmp_path, backend)

    async def scenario() -> None:
        waiting = asyncio.ensure_future(
            service.generate(CreateImageRequest(prompt="a cat"), CONTEXT)
        )
        while not backend.jobs:
            await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert backend.outputs[0].cancelled() and backend.jobs[0].cancelled.is_set()

        stream = await service.generate(CreateImageRequest(prompt="a cat", stream=True), CONTEXT)
        assert isinstance(stream, ImageStream)
        await stream.aclose()  # before reading a single event
        assert backend.outputs[1].cancelled() and backend.jobs[1].cancelled.is_set()

    run(scenario())


def test_a_markup_is_drawn_over_the_first_image_before_it_is_redrawn(tmp_path: Path):
    backend = FakeBackend()
    service = make_service(tmp_path, backend)
    source = png(Image.new("RGB", (64, 64), (128, 128, 128)))
    markup = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    markup.paste((255, 0, 0, 255), (8, 8, 56, 24))
    edit = CreateImageEditRequest(prompt="a red banner", model="gpt-image-2.5-flare")
    run(service.edit(edit, InputImages([source], markup=png(markup)), CONTEXT))
    (job,) = backend.jobs
    assert job.kind == "image-to-image" and job.strength == 0.6  # kept closer than a plain edit
    assert job.init_image.getpixel((30, 15)) == (255, 0, 0)  # the stroke, drawn in
    assert job.init_image.getpixel((30, 40)) == (128, 128, 128)  # the image beside it


def test_an_edit_made_off_its_models_grid_comes_back_exactly_at_its_own_area(tmp_path: Path):
    # A 64-pixel grid: 336x208 is made at 384x256 and cut back.
    backend = FakeBackend(config=ModelConfig(source="tiny", size_multiple=64), echo=True)
    service = make_service(tmp_path, backend)
    source = Image.linear_gradient("L").resize((336, 208)).convert("RGB")
    edit = CreateImageEditRequest(prompt="x", model="gpt-image-2", size="336x208")
    response = run(service.edit(edit, InputImages([png(source)]), CONTEXT))
    (job,) = backend.jobs
    assert (job.width, job.height) == (384, 256)
    answered = np.asarray(decoded(response.data[0].b64_json).convert("RGB"), np.int16)
    # A model that changed nothing gives back the input itself: not zoomed, not shifted.
    assert np.abs(answered - np.asarray(source, np.int16)).max() <= 1
