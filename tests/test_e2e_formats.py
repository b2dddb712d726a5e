"""GIF and SVG output, `complexity` and `quality=max` through the official Python client, on
the tiny model; the images that come back are decoded and checked."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from conftest import RunningServer, make_settings, same_pixels
from PIL import Image, ImageSequence

from pixelsmith.app import create_app

SVG = "{http://www.w3.org/2000/svg}"


def decoded_bytes(b64_json: str | None) -> bytes:
    assert b64_json is not None
    return base64.b64decode(b64_json)


def frames_of(gif: bytes) -> tuple[list[np.ndarray], list[int]]:
    with Image.open(io.BytesIO(gif)) as image:
        assert image.format == "GIF"
        frames = [
            np.asarray(frame.convert("RGB"), np.int16) for frame in ImageSequence.Iterator(image)
        ]
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            durations.append(image.info["duration"])
        assert image.info.get("loop") == 0  # loops for ever
    return frames, durations


def test_gif_is_a_smooth_seeded_loop_with_the_frames_and_delays_asked_for(client):
    response = client.images.generate(
        model="gpt-image-2.5-flare", prompt="a lighthouse", size="64x64", output_format="gif",
        frame_count=5, frame_duration_ms=124, n=2, extra_body={"seed": 11},
    )  # fmt: skip
    assert response.output_format == "gif" and len(response.data) == 2
    first, durations = frames_of(decoded_bytes(response.data[0].b64_json))
    assert len(first) == 5 and durations == [120] * 5  # rounded to the nearest 10 ms
    assert first[0].shape == (64, 64, 3)
    other, _ = frames_of(decoded_bytes(response.data[1].b64_json))

    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).mean())

    # The frames move, but stay far closer to one another than to another seed's image.
    steps = [distance(first[i], first[i + 1]) for i in range(4)]
    assert min(steps) > 0
    assert max(steps) < 0.5 * distance(first[0], other[0])
    again = client.images.generate(
        model="gpt-image-2.5-flare", prompt="a lighthouse", size="64x64", output_format="gif",
        frame_count=5, frame_duration_ms=124, extra_body={"seed": 11},
    )  # fmt: skip
    # the seed is the animation
    assert same_pixels(again.data[0].b64_json, response.data[0].b64_json)
    # The default compression is no custom compression; delays round up to at least 10 ms.
    quick, durations = frames_of(
        decoded_bytes(
            client.images.generate(
                prompt="x", size="64x64", output_format="gif", frame_count=2,
                frame_duration_ms=3, output_compression=100,
            ).data[0].b64_json
        )
    )  # fmt: skip
    assert len(quick) == 2 and durations == [10, 10]
    default, durations = frames_of(
        decoded_bytes(
            client.images.generate(prompt="x", size="64x64", output_format="gif").data[0].b64_json
        )
    )
    assert len(default) == 9 and durations == [200] * 9


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"output_format": "gif", "stream": True}, "stream"),
        ({"output_format": "gif", "partial_images": 1}, "partial_images"),
        ({"output_format": "gif", "output_compression": 80}, "output_compression"),
        ({"output_format": "gif", "background": "transparent"}, "background"),
        ({"output_format": "gif", "model": "dall-e-3", "size": "1024x1024"}, "output_format"),
        ({"frame_count": 4}, "frame_count"),  # png
        ({"output_format": "gif", "frame_count": 17}, "frame_count"),
        ({"output_format": "svg", "n": 2}, "n"),
        ({"output_format": "svg", "svg": {"model": "gpt-5"}}, "svg.model"),
        (
            {"output_format": "svg", "svg": {"reasoning": {"effort": "huge"}}},
            "svg.reasoning.effort",
        ),
        ({"svg": {"model": "vtracer"}}, "svg"),  # png
    ],
)
def test_gif_and_svg_exclusions_are_400s_naming_the_parameter(client, arguments, param):
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(**({"prompt": "a cat", "size": "64x64"} | arguments))
    assert error.value.param == param, error.value.message


def test_gif_edits_are_refused_with_the_reason(client):
    image = io.BytesIO()
    Image.new("RGB", (64, 64)).save(image, format="PNG")
    mask = io.BytesIO()
    Image.new("RGBA", (64, 64)).save(mask, format="PNG")
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(image=image.getvalue(), prompt="x", output_format="gif")
    assert error.value.param == "output_format" and "cannot animate" in error.value.message
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(
            image=image.getvalue(), mask=mask.getvalue(), prompt="x", output_format="gif"
        )
    assert error.value.param == "mask"


def paths_of(svg: bytes) -> list[ElementTree.Element]:
    root = ElementTree.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return list(root.iter(f"{SVG}path"))


def test_svg_is_a_traced_vector_image_whose_detail_follows_the_effort(client):
    response = client.images.generate(
        model="gpt-image-2.5-sunburst", prompt="a red apple", size="128x128", output_format="svg",
        extra_body={"seed": 3},
    )  # fmt: skip
    assert response.output_format == "svg" and response.svg_usage is None  # nothing counted
    traced = decoded_bytes(response.data[0].b64_json)
    root = ElementTree.fromstring(traced)
    assert (root.get("width"), root.get("height")) == ("128", "128")
    detail = {}
    for effort in ("none", "max"):
        vector = client.images.generate(
            model="gpt-image-2.5-sunburst", prompt="a red apple", size="128x128",
            output_format="svg", svg={"model": "vtracer", "reasoning": {"effort": effort}},
            extra_body={"seed": 3},
        )  # fmt: skip
        detail[effort] = len(paths_of(decoded_bytes(vector.data[0].b64_json)))
    assert 0 < detail["none"] < detail["max"]
    # Edits trace too; the multipart client sends the object as svg[model].
    image = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(image, format="PNG")
    edited = client.images.edit(
        image=image.getvalue(), prompt="x", output_format="svg", svg={"model": "vtracer"}
    )
    assert paths_of(decoded_bytes(edited.data[0].b64_json))


@pytest.fixture(scope="module")
def recorded(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A server whose diffusers calls are recorded: (images, width, height, image-to-image)."""
    import pixelsmith.engine.pipeline as pipeline_module

    calls: list[tuple[int, int, int, bool]] = []
    real = pipeline_module.make_images

    def recording(pipeline: Any, arguments: dict[str, Any], device: Any) -> list[Any]:
        made = real(pipeline, arguments, device)
        width, height = made[0].size
        calls.append((len(arguments["prompt"]), width, height, "image" in arguments))
        return made

    settings = make_settings(cache_dir, tmp_path_factory.mktemp("recorded"))
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(pipeline_module, "make_images", recording)
    with (
        RunningServer(create_app(settings)) as running,
        openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        yield client, calls
    monkeypatch.undo()


def test_complexity_drafts_candidates_and_renders_the_best(recorded):
    client, calls = recorded
    work = {}
    for complexity in ("low", "medium", "high"):
        calls.clear()
        response = client.images.generate(
            model="gpt-image-2.5-flare", prompt="a cat", size="128x128", n=2,
            complexity=complexity, extra_body={"seed": 5},
        )  # fmt: skip
        assert [item.seed for item in response.data] == [5, 6]
        work[complexity] = list(calls)
    assert work["low"] == [(2, 128, 128, False)]  # straight to the final render
    # Candidates at a quarter of the pixels, then the best of each image refined in full.
    assert work["medium"] == [(4, 64, 64, False), (2, 128, 128, True)]  # 4 drafts: one call
    assert work["high"] == [(4, 64, 64, False), (4, 64, 64, False), (2, 128, 128, True)]


def test_drafts_and_frames_are_split_into_calls_of_a_batch_at_most(recorded):
    client, calls = recorded  # max_batch_size 4, the default
    calls.clear()
    client.images.generate(model="gpt-image-2.5-flare", prompt="a cat", size="128x128", n=3,
                           complexity="high")  # fmt: skip
    assert [images for images, *_ in calls] == [4, 4, 4, 3]  # 12 drafts, then the 3 images
    calls.clear()
    client.images.generate(prompt="a cat", size="64x64", output_format="gif", frame_count=6)
    assert [images for images, *_ in calls] == [4, 2]


def test_max_quality_refines_its_image_in_a_second_pass(recorded):
    client, calls = recorded
    calls.clear()
    response = client.images.generate(
        model="gpt-image-2.5-flare", prompt="a cat", size="512x512", quality="max"
    )
    assert response.quality == "max"
    # Drafted at the model's own size (256x256 for tiny), refined at the size asked for.
    assert calls == [(1, 256, 256, False), (1, 512, 512, True)]
    calls.clear()
    client.images.generate(
        model="gpt-image-2.5-flare", prompt="a cat", size="64x64", quality="high"
    )
    assert calls == [(1, 64, 64, False)]
