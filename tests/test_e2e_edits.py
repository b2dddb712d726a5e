"""Edits and variations through the official `openai` client (and raw JSON for the JSON edit)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from conftest import RunningServer, make_settings, same_pixels
from moderation_models import save_image_classifier
from PIL import Image

from pixelsmith.app import create_app
from pixelsmith.settings import ModelConfig


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1))


def decode(item) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(item.b64_json)))


def test_edit_with_file_object_bytes_and_a_list_of_one(client, tmp_path: Path):
    path = tmp_path / "input.png"
    gradient(128, 96).save(path)
    with path.open("rb") as handle:
        by_file = client.images.edit(image=handle, prompt="make it autumn", n=2)
    by_bytes = client.images.edit(image=path.read_bytes(), prompt="make it autumn")
    as_list = client.images.edit(image=[path.read_bytes()], prompt="make it autumn")
    for result, count in ((by_file, 2), (by_bytes, 1), (as_list, 1)):
        assert len(result.data) == count
        assert result.size == "128x96"  # size=auto: the input's size on the model's grid
        assert decode(result.data[0]).size == (128, 96)
        assert result.usage.input_tokens_details.image_tokens > 0


def test_several_images_for_a_one_image_model_is_400(cache_dir: Path, tmp_path: Path):
    # The tiny model without its IP-Adapter reads one image.
    settings = make_settings(
        cache_dir, tmp_path, models=[ModelConfig(source="tiny", ip_adapter="none")]
    )
    data = png_bytes(gradient(64, 64))
    with (
        RunningServer(create_app(settings)) as running,
        openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        with pytest.raises(openai.BadRequestError) as error:
            client.images.edit(model="gpt-image-2.5-flare", image=[data, data, data], prompt="x")
    assert error.value.param == "image"
    # The serving model is named, not the name the client sent.
    assert "model tiny takes 1 input image; got 3" in error.value.message


def test_further_images_are_image_prompts_that_change_the_result(client):
    first = png_bytes(gradient(64, 64))
    red = png_bytes(Image.new("RGB", (64, 64), (230, 20, 20)))
    blue = png_bytes(Image.new("RGB", (64, 64), (20, 20, 230)))

    def edit(*images: bytes) -> np.ndarray:
        response = client.images.edit(
            model="gpt-image-2.5-flare", image=list(images), prompt="in the style of the second",
            extra_body={"seed": 4},
        )  # fmt: skip
        assert len(response.data) == 1 and response.size == "64x64"
        # Every input image counts in usage: one token each at 64x64 (OpenAI's low tier).
        assert response.usage.input_tokens_details.image_tokens == len(images)
        return np.asarray(decode(response.data[0]).convert("RGB"), np.int16)

    with_red, with_blue, alone = edit(first, red), edit(first, blue), edit(first)
    assert np.array_equal(with_red, edit(first, red))  # the same references: the same image
    assert np.abs(with_red - with_blue).mean() > 1  # the second image steers the result
    assert np.abs(with_red - alone).mean() > 1
    with pytest.raises(openai.BadRequestError) as error:  # OpenAI's own limit: 16
        client.images.edit(image=[first] * 17, prompt="x")
    assert error.value.param == "image"


def test_masked_edit_keeps_the_pixels_outside_the_mask(client):
    source = gradient(128, 128)
    mask = Image.new("RGBA", (128, 128), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (32, 32, 96, 96))  # transparent = edit here
    result = client.images.edit(
        image=png_bytes(source),
        mask=png_bytes(mask),
        prompt="a red square",
        size="128x128",
        extra_body={"seed": 3},
    )
    edited = np.asarray(decode(result.data[0]).convert("RGB"), dtype=np.int16)
    original = np.asarray(source, dtype=np.int16)
    inside = np.zeros((128, 128), dtype=bool)
    inside[32:96, 32:96] = True
    assert np.abs(edited - original)[~inside].mean() < 1.0
    assert np.abs(edited - original)[inside].mean() > 10.0


def test_fidelity_and_seed_change_the_result(client):
    data = png_bytes(gradient(64, 64))

    def edit(**options) -> bytes:
        return base64.b64decode(
            client.images.edit(image=data, prompt="x", **options).data[0].b64_json
        )

    low = edit(extra_body={"seed": 1})
    assert same_pixels(edit(extra_body={"seed": 1}), low)
    assert not same_pixels(edit(extra_body={"seed": 2}), low)
    assert not same_pixels(edit(input_fidelity="high", extra_body={"seed": 1}), low)


def test_alpha_and_exif_orientation(client):
    rgba = gradient(64, 64).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((64, 64)))
    result = client.images.edit(image=png_bytes(rgba), prompt="x")
    output = decode(result.data[0])
    assert output.mode == "RGBA" and result.background == "transparent"
    assert (
        np.abs(
            np.asarray(output.getchannel("A"), np.int16)
            - np.asarray(rgba.getchannel("A"), np.int16)
        ).max()
        <= 2
    )

    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    gradient(128, 64).save(buffer, format="JPEG", exif=exif)
    rotated = client.images.edit(image=buffer.getvalue(), prompt="x")
    assert rotated.size == "64x128"


# The official client marks create_variation deprecated (dall-e-2 was retired by OpenAI); it
# still sends the request, which self-hosted servers keep answering.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_variations(client):
    data = png_bytes(gradient(256, 256))
    result = client.images.create_variation(image=data, n=2, size="256x256", extra_body={"seed": 7})
    assert len(result.data) == 2
    assert [item.model_extra["seed"] for item in result.data] == [7, 8]
    for item in result.data:  # dall-e-2 answers with URLs by default
        response = httpx.get(item.url)
        assert response.status_code == 200
        assert Image.open(io.BytesIO(response.content)).size == (256, 256)
    b64 = client.images.create_variation(image=data, response_format="b64_json", size="256x256")
    assert decode(b64.data[0]).size == (256, 256)
    with pytest.raises(openai.BadRequestError) as error:  # dall-e-2: square PNGs only
        client.images.create_variation(image=png_bytes(gradient(256, 128)))
    assert error.value.param == "image"


def truncated_png() -> bytes:
    data = png_bytes(Image.effect_noise((64, 64), 64).convert("RGB"))
    return data[: len(data) // 2]


def bomb_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (7000, 7000)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image", "mask", "prompt", "param", "code"),
    [
        (b"GIF89a not a supported image", None, "x", "image", "unsupported_file_mimetype"),
        (b"hello, I am text", None, "x", "image", "unsupported_file_mimetype"),
        (truncated_png(), None, "x", "image", "invalid_image"),
        (bomb_png(), None, "x", "image", "image_too_large"),
        (
            png_bytes(gradient(64, 64)),
            png_bytes(Image.new("RGBA", (32, 32))),
            "x",
            "mask",
            "invalid_image_dimensions",
        ),
        (
            png_bytes(gradient(64, 64)),
            png_bytes(Image.new("RGB", (64, 64))),
            "x",
            "mask",
            "invalid_image_format",
        ),
        (png_bytes(gradient(64, 64)), None, "", "prompt", "invalid_value"),
    ],
)
def test_bad_uploads_are_400_with_param(client, image, mask, prompt, param, code):
    arguments = {"image": image, "prompt": prompt} | ({"mask": mask} if mask else {})
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(**arguments)
    assert error.value.param == param
    assert error.value.code == code


def test_oversized_upload_is_413_and_the_server_keeps_serving(client):
    too_big = png_bytes(gradient(64, 64)) + b"\0" * (50 * 1024 * 1024)
    with pytest.raises(openai.APIStatusError) as error:
        client.images.edit(image=too_big, prompt="x")
    assert error.value.status_code == 413
    assert error.value.body["code"] == "file_too_large"
    assert len(client.images.edit(image=png_bytes(gradient(64, 64)), prompt="x").data) == 1


def test_json_edit_with_data_urls(server):
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes(gradient(64, 64))).decode()
    url = f"{server.base_url}/v1/images/edits"
    response = httpx.post(url, json={"images": [{"image_url": data_url}], "prompt": "x", "n": 2})
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2
    remote = httpx.post(
        url, json={"images": [{"image_url": "http://127.0.0.1:1/x.png"}], "prompt": "x"}
    )
    assert remote.status_code == 400
    assert remote.json()["error"]["param"] == "images[0].image_url"


def test_input_images_are_moderated(cache_dir: Path, tmp_path: Path):
    nsfw = save_image_classifier(tmp_path / "nsfw", ["normal", "nsfw"], [0.03, 0.97])
    settings = make_settings(cache_dir, tmp_path / "images", moderation_image_classifier=str(nsfw))
    with RunningServer(create_app(settings)) as running:
        with openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as c:
            with pytest.raises(openai.BadRequestError) as error:
                c.images.edit(image=png_bytes(gradient(64, 64)), prompt="a hat")
    assert error.value.body["moderation_details"] == {
        "moderation_stage": "input",
        "categories": ["sexual"],
    }


def test_fetching_image_urls_is_guarded(cache_dir: Path, tmp_path: Path):
    def edit(running: RunningServer, image_url: str) -> httpx.Response:
        return httpx.post(
            f"{running.base_url}/v1/images/edits",
            json={"images": [{"image_url": image_url}], "prompt": "x"},
            timeout=60,
        )

    public_only = make_settings(cache_dir, tmp_path / "a", fetch_image_urls=True)
    with RunningServer(create_app(public_only)) as running:
        # Refused after name resolution, before any connection is made.
        for url in (
            f"{running.base_url}/health",
            "http://localhost:9/x.png",
            "http://[::1]:9/x.png",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/x.png",
        ):
            response = edit(running, url)
            assert response.status_code == 400, url
            error = response.json()["error"]
            assert error["param"] == "images[0].image_url"
            assert "private or local address" in error["message"]

    internal = make_settings(
        cache_dir, tmp_path / "b", fetch_image_urls=True, fetch_image_urls_allow_private=True
    )
    with RunningServer(create_app(internal)) as running:
        with openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as c:
            url = c.images.generate(prompt="x", size="64x64", response_format="url").data[0].url
        response = edit(running, url)
        assert response.status_code == 200, response.text
        assert response.json()["size"] == "64x64"
        missing = edit(running, f"{running.base_url}/v1/images/files/nothing.png")
        assert missing.status_code == 400
        assert "answered 403" in missing.json()["error"]["message"]


@pytest.fixture(scope="module")
def kontext_server(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from tiny_families import save_tiny_flux_kontext

    from pixelsmith.settings import ModelConfig

    directory = save_tiny_flux_kontext(tmp_path_factory.mktemp("kontext"))
    settings = make_settings(
        cache_dir,
        tmp_path_factory.mktemp("kontext-images"),
        models=[
            ModelConfig(source="tiny"),
            ModelConfig(
                source=str(directory),
                id="tiny-kontext",
                sizes=["64x64", "128x128"],
                default_size="64x64",
                steps={"low": 1, "medium": 2, "high": 2},
            ),  # fmt: skip
        ],
    )
    with RunningServer(create_app(settings)) as running:
        yield running


def test_instruction_edit_model_takes_the_image_as_reference(kontext_server):
    engine = kontext_server.server.config.app.state.engine
    loaded = engine.pipeline(engine.registry.resolve("tiny-kontext"))
    assert type(loaded.pipeline).__name__ == "FluxKontextPipeline"
    assert loaded.edits_by_instruction
    with openai.OpenAI(base_url=f"{kontext_server.base_url}/v1", api_key="x", max_retries=0) as c:
        source = png_bytes(gradient(64, 64))
        result = c.images.edit(
            model="tiny-kontext", image=source, prompt="make it blue", extra_body={"seed": 1}
        )
        assert decode(result.data[0]).size == (64, 64)
        again = c.images.edit(
            model="tiny-kontext", image=source, prompt="make it blue", extra_body={"seed": 1}
        )
        assert same_pixels(again.data[0].b64_json, result.data[0].b64_json)
        mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
        mask.paste((0, 0, 0, 0), (0, 0, 32, 64))
        masked = c.images.edit(model="tiny-kontext", image=source, mask=png_bytes(mask), prompt="x")
        kept = np.asarray(decode(masked.data[0]).convert("RGB"), np.int16)[:, 32:]
        assert np.abs(kept - np.asarray(gradient(64, 64), np.int16)[:, 32:]).max() <= 1
        with pytest.raises(openai.BadRequestError) as error:
            c.images.edit(model="tiny-kontext", image=[source, source], prompt="x")
        assert "takes 1 input image; got 2" in error.value.message
        generated = c.images.generate(model="tiny-kontext", prompt="a cat")
        assert decode(generated.data[0]).size == (64, 64)


def test_edge_cases_of_size_alpha_and_json_names(client, server):
    long = client.images.edit(image=png_bytes(gradient(6000, 100)), prompt="x", quality="low")
    width, height = (int(side) for side in long.size.split("x"))
    assert width <= 4096 and width % 8 == 0 and height % 8 == 0

    # dall-e-2 without a mask: the transparent area is the mask, and comes back opaque.
    holed = gradient(256, 256).convert("RGBA")
    holed.paste((0, 0, 0, 0), (64, 64, 192, 192))
    filled = client.images.edit(
        model="dall-e-2", image=png_bytes(holed), prompt="fill it", response_format="b64_json"
    )
    filled_image = decode(filled.data[0])
    # Filling the hole leaves nothing transparent, so no alpha channel comes back ...
    assert filled_image.mode == "RGB" and filled.background == "opaque"
    # ... and outside the hole the input is kept (at the 1024x1024 output size).
    kept = np.asarray(gradient(256, 256).resize((1024, 1024), Image.Resampling.LANCZOS), np.int16)
    result = np.asarray(filled_image, np.int16)
    outside = np.ones((1024, 1024), dtype=bool)
    outside[240:784, 240:784] = False  # the hole (256..768) with a margin for resampling
    assert np.abs(result - kept)[outside].mean() < 1.0

    half = gradient(64, 64).convert("RGBA")
    half.putalpha(Image.linear_gradient("L").resize((64, 64)))
    opaque = client.images.edit(image=png_bytes(half), prompt="x", background="opaque")
    assert decode(opaque.data[0]).mode == "RGB" and opaque.background == "opaque"

    not_an_image = "data:image/png;base64," + base64.b64encode(b"plain text").decode()
    response = httpx.post(
        f"{server.base_url}/v1/images/edits",
        json={"images": [{"image_url": not_an_image}], "prompt": "x"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "images[0]"


def test_repeated_plain_image_parts_and_chunked_bodies(server, monkeypatch):
    from pixelsmith.api import body_limits

    # The real limits are 850 MB (multipart) and 357 MB (JSON); smaller ones keep the test
    # quick (same code path).
    monkeypatch.setitem(body_limits.BODY_LIMITS, "/v1/images/edits", (5_000_000, 5_000_000))
    url = f"{server.base_url}/v1/images/edits"
    data = png_bytes(gradient(64, 64))
    # Repeated plain `image` parts are one list: 17 of them is one over OpenAI's 16.
    files = [("image", ("a.png", data, "application/octet-stream"))] * 17
    response = httpx.post(url, data={"prompt": "x"}, files=files)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_images"

    def chunks():
        body = b'{"prompt": "x", "images": [{"image_url": "data:image/png;base64,'
        yield body
        for _ in range(10):  # 10 MB of base64 'A's, sent without a Content-Length
            yield b"A" * 1_000_000

    too_big = httpx.post(
        url, content=chunks(), headers={"content-type": "application/json"}, timeout=60
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "request_too_large"


def test_malformed_fetch_urls_are_400(cache_dir: Path, tmp_path: Path):
    settings = make_settings(cache_dir, tmp_path, fetch_image_urls=True)
    with RunningServer(create_app(settings)) as running:
        for url in ("http://example.test:99999/x.png", "http://[zz/x.png", "ftp://x/y.png"):
            response = httpx.post(
                f"{running.base_url}/v1/images/edits",
                json={"images": [{"image_url": url}], "prompt": "x"},
            )
            assert response.status_code == 400, (url, response.text)
            assert response.json()["error"]["param"] == "images[0].image_url"


def test_mask_rules(client):
    source = png_bytes(gradient(64, 64))
    jpeg_mask = io.BytesIO()
    Image.new("RGB", (64, 64)).save(jpeg_mask, format="JPEG")
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(image=source, mask=jpeg_mask.getvalue(), prompt="x")
    assert error.value.param == "mask" and error.value.code == "invalid_image_format"
    big_mask = png_bytes(Image.new("RGBA", (64, 64))) + b"\0" * (4 * 1024 * 1024)
    with pytest.raises(openai.APIStatusError) as too_big:
        client.images.edit(image=source, mask=big_mask, prompt="x")
    assert too_big.value.status_code == 413
    assert too_big.value.body["param"] == "mask"


def test_a_json_image_url_over_the_spec_limit_is_refused_by_name(server, monkeypatch):
    import pixelsmith.api.transport.bodies

    monkeypatch.setattr(pixelsmith.api.transport.bodies, "MAX_IMAGE_URL_CHARS", 100)
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes(gradient(64, 64))).decode()
    assert len(data_url) > 100
    response = httpx.post(
        f"{server.base_url}/v1/images/edits",
        json={"images": [{"image_url": data_url}], "prompt": "x"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "images[0].image_url" and error["code"] == "string_above_max_length"


def test_markup_is_drawn_over_the_first_image_and_redrawn(client):
    source = Image.new("RGB", (128, 128), (128, 128, 128))
    markup = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    markup.paste((255, 0, 0, 255), (16, 16, 112, 48))  # a red bar across the top

    def edit(**files: bytes) -> np.ndarray:
        response = client.images.edit(
            model="gpt-image-2.5-flare", image=png_bytes(source), prompt="a red banner",
            extra_body={"seed": 2}, **files,
        )  # fmt: skip
        return np.asarray(decode(response.data[0]).convert("RGB"), np.int16)

    # The markup changes what is redrawn (what the job is given: tests/test_service.py).
    marked, plain = edit(markup=png_bytes(markup)), edit()
    assert np.abs(marked - plain).mean() > 1
    assert np.array_equal(marked, edit(markup=png_bytes(markup)))
    opaque = Image.new("RGBA", (128, 128), (255, 0, 0, 255))
    mask = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    refused = [
        ({"model": "gpt-image-2", "markup": png_bytes(markup)}, "unsupported_parameter"),
        ({"markup": png_bytes(markup), "mask": png_bytes(mask)}, "unsupported_parameter"),
        ({"markup": png_bytes(markup.resize((64, 64)))}, "invalid_image_dimensions"),
        ({"markup": png_bytes(opaque)}, "invalid_image_format"),
    ]
    for arguments, code in refused:
        with pytest.raises(openai.BadRequestError) as error:
            client.images.edit(
                **({"model": "gpt-image-2.5-flare", "image": png_bytes(source), "prompt": "x"}
                   | arguments)
            )  # fmt: skip
        assert error.value.param == "markup" and error.value.code == code, error.value.message


def test_image_prompts_leave_the_model_as_it_was(cache_dir: Path, tmp_path: Path):
    """After an edit with several images the UNet runs as before: attention slicing kept, and
    a plain request gives the same pixels as before it."""
    settings = make_settings(
        cache_dir, tmp_path, models=[ModelConfig(source="tiny", attention_slicing=True)]
    )
    app = create_app(settings)
    with (
        RunningServer(app) as running,
        openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        engine = app.state.engine
        unet = engine.pipeline(engine.registry.default).pipeline.unet

        def processors() -> set[str]:
            return {type(processor).__name__ for processor in unet.attn_processors.values()}

        assert processors() == {"SlicedAttnProcessor"}
        plain = client.images.generate(prompt="a cat", size="64x64", extra_body={"seed": 1})
        image = png_bytes(gradient(64, 64))
        client.images.edit(image=[image, image], prompt="x", model="gpt-image-2.5-flare")
        assert processors() == {"SlicedAttnProcessor"}
        again = client.images.generate(prompt="a cat", size="64x64", extra_body={"seed": 1})
        assert same_pixels(again.data[0].b64_json, plain.data[0].b64_json)
