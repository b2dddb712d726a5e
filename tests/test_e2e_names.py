"""Today's Images API through the official Python client (openai 3.57): every model name in the
client's own `ImageModel` list, gpt-image-2 sizes, the xhigh and max tiers, the parameters the
newer names refuse, and end-user ids (safety_identifier)."""

from __future__ import annotations

import base64
import io
import logging
import typing
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from conftest import RunningServer, make_settings
from openai.types.image_model import ImageModel
from PIL import Image

from pixelsmith.app import create_app
from pixelsmith.settings import ModelConfig


def decoded(b64_json: str | None) -> Image.Image:
    assert b64_json is not None
    return Image.open(io.BytesIO(base64.b64decode(b64_json)))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_model_name_of_the_client_is_listed_and_answers(client):
    names = typing.get_args(ImageModel)
    assert "gpt-image-2.5-flare" in names and "dall-e-3" in names  # the client's own list
    listed = {model.id for model in client.models.list().data}
    assert set(names) <= listed
    for name in names:
        response = client.images.generate(
            model=name, prompt="a cat", size="1024x1024", n=1, extra_body={"num_inference_steps": 1}
        )
        assert response.size == "1024x1024" and len(response.data) == 1, name
    # A dated snapshot the server has never heard of is served like its base name.
    future = "gpt-image-2.5-flare-2027-03-01"
    assert client.models.retrieve(future).id == future
    response = client.images.generate(model=future, prompt="a cat", size="336x208")
    assert response.size == "336x208"
    with pytest.raises(openai.NotFoundError):
        client.images.generate(model="gpt-image-9-2027-03-01", prompt="a cat")


def test_gpt_image_2_sizes_are_any_16_pixel_grid_size_within_the_models_limits(client):
    response = client.images.generate(model="gpt-image-2", prompt="a cat", size="336x208")
    assert response.size == "336x208" and decoded(response.data[0].b64_json).size == (336, 208)
    refused = {
        "330x208": "divisible by 16",
        "480x144": "aspect ratio",  # 3.33:1
        "4096x1440": "between 16 and 3840",
        "3840x2160": "cannot make it",  # a legal gpt-image-2 size, past the tiny model's 2048
        "٢٥٦x٢٥٦": "WIDTHxHEIGHT",  # other scripts' digits
        "256x256\n": "WIDTHxHEIGHT",
    }
    for size, words in refused.items():
        with pytest.raises(openai.BadRequestError) as error:
            client.images.generate(model="gpt-image-2", prompt="a cat", size=size)
        assert error.value.param == "size" and words in error.value.message, size
    # The older names take their old sizes only as ASCII too.
    for size in ("٢٥٦x٢٥٦", "256x256\n"):
        with pytest.raises(openai.BadRequestError) as error:
            client.images.generate(model="gpt-image-1", prompt="a cat", size=size)
        assert error.value.param == "size"


def test_a_size_off_the_models_grid_is_made_on_it_and_cut_to_size(cache_dir: Path, tmp_path: Path):
    # A family that draws on a 64-pixel grid: 336x208 is made at 384x256 and cut to size.
    settings = make_settings(
        cache_dir, tmp_path, models=[ModelConfig(source="tiny", size_multiple=64)]
    )
    with (
        RunningServer(create_app(settings)) as running,
        openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        response = client.images.generate(model="gpt-image-2", prompt="a cat", size="336x208")
        assert response.size == "336x208"
        assert decoded(response.data[0].b64_json).size == (336, 208)
        with pytest.raises(openai.BadRequestError):  # the model's own names keep its grid
            client.images.generate(model="tiny", prompt="a cat", size="336x208")
        source = Image.linear_gradient("L").resize((336, 208)).convert("RGB")
        mask = Image.new("RGBA", (336, 208), (0, 0, 0, 255))
        mask.paste((0, 0, 0, 0), (0, 0, 168, 208))  # repaint the left half
        edited = client.images.edit(
            model="gpt-image-2", image=png(source), mask=png(mask), prompt="x", size="336x208"
        )
        result = np.asarray(decoded(edited.data[0].b64_json).convert("RGB"), np.int16)
        kept = np.asarray(source, np.int16)
        assert result.shape == (208, 336, 3)
        assert np.abs(result[:, 172:] - kept[:, 172:]).max() <= 1  # outside the mask: the input


def test_xhigh_and_max_are_tiers_of_the_names_that_take_them(client):
    for quality in ("xhigh", "max"):
        response = client.images.generate(
            model="gpt-image-2.5-flare", prompt="a cat", size="64x64", quality=quality
        )
        assert response.quality == quality
        assert response.usage is not None and response.usage.output_tokens > 0
    for model in ("gpt-image-2", "gpt-image-1.5"):
        with pytest.raises(openai.BadRequestError) as error:
            client.images.generate(model=model, prompt="a cat", quality="xhigh")
        assert error.value.param == "quality" and "'high'" in error.value.message


def test_legacy_parameters_and_input_fidelity_follow_each_name(client):
    image = png(Image.new("RGB", (64, 64), (20, 120, 200)))
    refused = [
        ({"model": "gpt-image-2", "response_format": "url"}, "response_format"),
        ({"model": "gpt-image-2.5-sunburst", "style": "vivid"}, "style"),
    ]
    for arguments, param in refused:
        with pytest.raises(openai.BadRequestError) as error:
            client.images.generate(prompt="a cat", size="64x64", **arguments)
        assert error.value.param == param and error.value.code == "unsupported_parameter"
    # The names of last year keep what they took.
    old = client.images.generate(
        model="gpt-image-1", prompt="a cat", size="64x64", response_format="url"
    )
    assert old.data[0].url
    for model, fidelity in (("gpt-image-2", "low"), ("gpt-image-1-mini", "high")):
        with pytest.raises(openai.BadRequestError) as error:
            client.images.edit(model=model, image=image, prompt="x", input_fidelity=fidelity)
        assert error.value.param == "input_fidelity"
    assert client.images.edit(model="gpt-image-1-mini", image=image, prompt="x",
                              input_fidelity="low").data  # fmt: skip


def test_safety_identifier_is_echoed_and_never_logged_raw(client, caplog):
    with caplog.at_level(logging.DEBUG):
        response = client.images.generate(
            prompt="a cat", size="64x64", safety_identifier="alice@example.com"
        )
        assert response.safety_identifier == "alice@example.com"
        forged = "bob\n2026-12-01 00:00:00 INFO pixelsmith: admin logged in"
        assert (
            client.images.generate(prompt="a cat", size="64x64", user=forged).safety_identifier
            == forged
        )
        events = list(
            client.images.generate(
                prompt="a cat", size="64x64", stream=True, safety_identifier="carol"
            )
        )
        assert events[-1].safety_identifier == "carol"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "alice@example.com" not in logged and "admin logged in" not in logged
    assert "carol" not in logged
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(prompt="a cat", user="x" * 257)
    assert error.value.param == "user" and error.value.code == "string_above_max_length"


def test_without_api_keys_limits_count_each_end_user(cache_dir: Path, tmp_path: Path):
    settings = make_settings(cache_dir, tmp_path, rate_limit_per_minute=1)
    with RunningServer(create_app(settings)) as running:
        url = f"{running.base_url}/v1/images/generations"

        def post(**fields: str) -> int:
            body = {"prompt": "a cat", "size": "64x64"} | fields
            return httpx.post(url, json=body, timeout=60).status_code

        assert post(safety_identifier="alice") == 200
        assert post(safety_identifier="alice") == 429
        assert post(safety_identifier="bob") == 200  # another end user of the same app
        assert post(user="carol") == 200  # the older field names the end user too
        assert post() == 200  # no end user: the address
        assert post() == 429
