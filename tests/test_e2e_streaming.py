"""Streaming partial images: the official client, the raw SSE bytes, errors and disconnects."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import threading
import time
from pathlib import Path

import httpx
import openai
import orjson
import pytest
import torch
from conftest import RunningServer, make_settings, same_pixels
from moderation_models import save_image_classifier
from PIL import Image

from pixelsmith.app import create_app
from pixelsmith.builders import build_engine
from pixelsmith.engine import GenerationJob
from pixelsmith.engine.jobs import JobCancelled
from pixelsmith.engine.previews import preview_steps


def size_of(b64: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(b64))).size


def test_generation_stream_through_the_official_client(client):
    events = list(
        client.images.generate(
            model="gpt-image-1", prompt="a lighthouse", stream=True, partial_images=2, n=2,
            size="128x128", quality="high", extra_body={"seed": 4},
        )
    )  # fmt: skip
    types = [event.type for event in events]
    # For each preview step one partial per image, then one completed per image.
    assert types == ["image_generation.partial_image"] * 4 + ["image_generation.completed"] * 2
    assert [event.partial_image_index for event in events[:4]] == [0, 0, 1, 1]
    # pixelsmith extension: the step each preview shows, of the run's steps (4 for "high").
    shown = [step + 1 for step in preview_steps(4, 2) for _ in range(2)]
    assert [(event.step, event.num_inference_steps) for event in events[:4]] == [
        (step, 4) for step in shown
    ]
    for event in events:
        assert size_of(event.b64_json) == (128, 128)
        assert event.size == "128x128" and event.quality == "high"
        assert event.output_format == "png" and event.background == "opaque"
        assert event.created_at > 0
    for event in events[4:]:
        usage = event.usage
        assert usage.input_tokens == usage.input_tokens_details.text_tokens > 0
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    # The stream's final images are the same pixels the non-streamed call gives.
    plain = client.images.generate(
        model="gpt-image-1", prompt="a lighthouse", n=2, size="128x128", quality="high",
        extra_body={"seed": 4},
    )  # fmt: skip
    assert all(
        same_pixels(e.b64_json, d.b64_json) for e, d in zip(events[4:], plain.data, strict=True)
    )
    # Previews are the image in progress, not the final image.
    assert not same_pixels(events[2].b64_json, events[4].b64_json)


def test_fewer_steps_than_partials_and_no_partials(client):
    one_step = list(
        client.images.generate(
            prompt="x", stream=True, partial_images=3, size="64x64", quality="low"
        )
    )
    assert [e.type for e in one_step] == ["image_generation.completed"]
    none = list(client.images.generate(prompt="x", stream=True, size="64x64", quality="high"))
    assert [e.type for e in none] == ["image_generation.completed"]
    assert preview_steps(4, 3) == (0, 1, 2)
    assert preview_steps(2, 3) == (0,)
    assert preview_steps(20, 2) == (6, 12)


def test_edit_stream(client):
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), "teal").save(buffer, format="PNG")
    events = list(
        client.images.edit(
            image=buffer.getvalue(), prompt="add a boat", stream=True, partial_images=1,
            quality="high",
        )
    )  # fmt: skip
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert size_of(events[-1].b64_json) == (96, 64)
    assert events[-1].usage.input_tokens_details.image_tokens > 0


def test_raw_sse_framing(server):
    response = httpx.post(
        f"{server.base_url}/v1/images/generations",
        json={"prompt": "x", "stream": True, "partial_images": 1, "size": "64x64",
              "quality": "high"},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    body = response.content
    assert body.endswith(b"}\n\n") and b"\nid:" not in body and not body.startswith(b"id:")
    blocks = body[:-2].split(b"\n\n")
    assert len(blocks) == 2
    for block in blocks:
        event_line, data_line = block.split(b"\n")
        assert event_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        payload = orjson.loads(data_line.removeprefix(b"data: "))
        assert event_line.removeprefix(b"event: ").decode() == payload["type"]
    assert b"[DONE]" not in body


def test_stream_refusals_before_the_stream_are_plain_errors(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(prompt="x", stream=True, response_format="url")
    assert error.value.param == "response_format"
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(prompt="a nude woman", stream=True, size="64x64")
    assert error.value.code == "moderation_blocked"


def test_a_block_after_the_stream_started_is_an_error_event(cache_dir: Path, tmp_path: Path):
    nsfw = save_image_classifier(tmp_path / "nsfw", ["normal", "nsfw"], [0.03, 0.97])
    settings = make_settings(cache_dir, tmp_path / "images", moderation_image_classifier=str(nsfw))
    with RunningServer(create_app(settings)) as running:
        with openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as c:
            with pytest.raises(openai.APIError) as error:
                list(c.images.generate(prompt="a lighthouse", stream=True, partial_images=2,
                                       size="64x64", quality="high"))  # fmt: skip
        assert error.value.code == "moderation_blocked"
        assert error.value.body["moderation_details"]["moderation_stage"] == "output"
        raw = httpx.post(
            f"{running.base_url}/v1/images/generations",
            json={"prompt": "x", "stream": True, "partial_images": 1, "size": "64x64",
                  "quality": "high"},
        )  # fmt: skip
        assert raw.status_code == 200
        assert raw.content.startswith(b'event: error\ndata: {"error":')
        assert raw.content.count(b"event:") == 1  # previews are checked before they are sent


def test_a_disconnect_stops_the_run_within_a_step(cache_dir: Path, tmp_path: Path):
    settings = make_settings(cache_dir, tmp_path, moderation_prompt_classifier="off")
    engine = build_engine(settings)
    engine.load()
    loaded = engine.pipeline(engine.registry.default)
    real_run_batch = loaded.run_batch
    stopped = threading.Event()

    def run_batch(jobs: list[GenerationJob]):
        try:
            return real_run_batch(jobs)
        except JobCancelled:
            stopped.set()
            raise

    loaded.run_batch = run_batch  # type: ignore[method-assign]
    with RunningServer(create_app(settings, engine=engine)) as running:
        url = f"{running.base_url}/v1/images/generations"
        body = {"prompt": "x", "stream": True, "partial_images": 3, "size": "256x256",
                "num_inference_steps": 150}  # fmt: skip
        with httpx.Client() as http, http.stream("POST", url, json=body, timeout=60) as stream:
            for line in stream.iter_lines():
                if line.startswith("event: image_generation.partial_image"):
                    break  # the run is under way; hang up
        started = time.monotonic()
        assert stopped.wait(timeout=20), "the run was not cancelled"
        follow_up = httpx.post(url, json={"prompt": "y", "size": "64x64"}, timeout=60)
        assert follow_up.status_code == 200
        assert time.monotonic() - started < 20  # the worker was freed, not busy for 150 steps


def test_linear_previews_map_known_latents_to_known_colours():
    from diffusers import StableDiffusionPipeline

    from pixelsmith.engine.previews import SD_FACTORS, latents_to_images

    class FakeSD(StableDiffusionPipeline):
        def __init__(self) -> None:  # only the class name matters to the projection
            pass

    latents = torch.zeros(1, 4, 8, 8)
    latents[:, 0] = 1.0  # the first channel alone: its row of factors, as colour
    (image,) = latents_to_images(FakeSD(), latents, 64, 64)
    expected = [round((value + 1) * 127.5) for value in SD_FACTORS[0]]
    assert image.size == (64, 64)
    assert list(image.getpixel((10, 10))) == expected


def test_a_full_queue_refuses_a_stream_with_429_before_it_starts(cache_dir: Path, tmp_path: Path):
    settings = make_settings(
        cache_dir, tmp_path, max_queue_size=1, moderation_prompt_classifier="off"
    )
    with RunningServer(create_app(settings)) as running:
        url = f"{running.base_url}/v1/images/generations"
        slow = {"prompt": "x", "size": "256x256", "num_inference_steps": 150}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            running_job = pool.submit(httpx.post, url, json=slow, timeout=60)
            time.sleep(0.5)
            waiting_job = pool.submit(httpx.post, url, json=slow, timeout=60)
            time.sleep(0.5)
            refused = httpx.post(url, json={"prompt": "x", "stream": True, "size": "64x64"})
            assert refused.status_code == 429
            assert refused.headers["content-type"] == "application/json"
            assert int(refused.headers["retry-after"]) >= 1
            assert running_job.result().status_code == 200
            assert waiting_job.result().status_code == 200
