"""End to end: a real uvicorn server on 127.0.0.1, driven by the official `openai` client."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import httpx
import numpy as np
import openai
import pytest
from conftest import RunningServer, make_settings, same_pixels
from PIL import Image

from pixelsmith.app import create_app
from pixelsmith.builders import build_engine
from pixelsmith.settings import ModelConfig

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff", "webp": b"RIFF"}


@pytest.fixture()
def request_close(request):
    """Close clients made inside a test when it ends (no unclosed-socket warnings)."""

    def register(client: openai.OpenAI) -> None:
        request.addfinalizer(client.close)

    return register


def decode(b64: str) -> bytes:
    return base64.b64decode(b64)


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
def test_b64_generation_returns_n_images_of_the_right_format_and_size(client, output_format):
    result = client.images.generate(
        model="gpt-image-1",
        prompt="a lighthouse at dusk",
        n=2,
        size="1024x1024" if output_format == "png" else "256x128",
        quality="low",
        output_format=output_format,
        **({} if output_format == "png" else {"output_compression": 80}),
    )
    assert len(result.data) == 2
    for item in result.data:
        assert item.url is None
        data = decode(item.b64_json)
        assert data.startswith(MAGIC[output_format])
        if output_format == "webp":
            assert data[8:12] == b"WEBP"
        image = Image.open(io.BytesIO(data))
        assert image.format.lower() == output_format
        assert image.size == ((1024, 1024) if output_format == "png" else (256, 128))
    assert result.output_format == output_format
    assert result.quality == "low"
    assert result.background == "opaque"
    assert result.size == ("1024x1024" if output_format == "png" else "256x128")
    assert result.created > 0


def test_defaults_and_usage(client):
    result = client.images.generate(model="gpt-image-1", prompt="a small red boat")
    assert len(result.data) == 1
    image = Image.open(io.BytesIO(decode(result.data[0].b64_json)))
    assert image.size == (256, 256)  # size=auto resolves to the model's default size
    assert result.size == "256x256"
    assert result.quality == "medium"
    assert result.output_format == "png"
    assert result.data[0].revised_prompt is None
    usage = result.usage
    # Input tokens come from the model's tokenizer: the tiny model has one token per
    # non-space character, plus start and end tokens.
    assert usage.input_tokens_details.text_tokens == len("asmallredboat") + 2
    assert usage.input_tokens == usage.input_tokens_details.text_tokens
    assert usage.output_tokens == round(1056 * 256 * 256 / 1024**2)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_usage_uses_openai_table_for_standard_sizes(client):
    result = client.images.generate(
        model="gpt-image-1",
        prompt="x",
        size="1024x1536",
        quality="high",
        n=2,
        extra_body={"num_inference_steps": 1},  # tokens follow quality, not steps; keep it quick
    )
    assert result.usage.output_tokens == 2 * 6240


def test_url_response_can_be_fetched_and_a_tampered_url_is_refused(client):
    result = client.images.generate(
        model="gpt-image-1", prompt="a fox", response_format="url", size="128x128", n=2
    )
    assert len(result.data) == 2
    for item in result.data:
        assert item.b64_json is None
        response = httpx.get(item.url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(MAGIC["png"])
        assert Image.open(io.BytesIO(response.content)).size == (128, 128)

    url = urlparse(result.data[0].url)
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    forged_signature = query | {"signature": "0" * 64}
    later_expiry = query | {"expires": str(int(query["expires"]) + 3600)}
    for forged in (forged_signature, later_expiry):
        response = httpx.get(urlunparse(url._replace(query=urlencode(forged))))
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == "invalid_signature"
    other_name = url.path.replace(url.path.rsplit("/", 1)[1], "0" * 32 + ".png")
    response = httpx.get(urlunparse(url._replace(path=other_name)))
    assert response.status_code == 403
    base = f"{url.scheme}://{url.netloc}/v1/images/files"
    for name in (".signing-key", "..%5C..%5Cetc%5Cpasswd", "x.png"):
        refused = httpx.get(f"{base}/{name}?{url.query}")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "invalid_image_url"
    bad_queries = (
        "signature=%C3%A9&expires=1",
        "expires=%C2%B2&signature=" + "0" * 64,
        "expires=" + "9" * 5000 + "&signature=" + "0" * 64,
    )
    for bad_query in bad_queries:
        refused = httpx.get(f"{base}/{url.path.rsplit('/', 1)[1]}?{bad_query}")
        assert refused.status_code == 403, bad_query
        assert refused.json()["error"]["code"] == "invalid_image_url"


def test_dall_e_names_keep_their_rules(client):
    quick = {"extra_body": {"num_inference_steps": 1}}
    result = client.images.generate(model="dall-e-3", prompt="a quiet harbour", **quick)
    # dall-e-3 answers with a URL by default and rewrites the prompt (style=vivid).
    assert result.data[0].url is not None
    assert result.data[0].revised_prompt.startswith("a quiet harbour. Style: vivid")
    natural = client.images.generate(
        model="dall-e-3",
        prompt="a quiet harbour",
        style="natural",
        response_format="b64_json",
        **quick,
    )
    assert Image.open(io.BytesIO(decode(natural.data[0].b64_json))).size == (1024, 1024)
    assert "natural" in natural.data[0].revised_prompt
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(model="dall-e-3", prompt="x", n=2)
    assert error.value.param == "n"
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(model="dall-e-2", prompt="x", size="1536x1024")
    assert error.value.param == "size"
    assert "256x256" in error.value.message
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(model="dall-e-2", prompt="x" * 1001)
    assert error.value.param == "prompt"


def test_same_seed_reproduces_the_same_pixels(client):
    def pixels(seed: int) -> list[np.ndarray]:
        result = client.images.generate(
            model="gpt-image-1", prompt="a cat", size="64x64", n=2, extra_body={"seed": seed}
        )
        assert [item.model_extra["seed"] for item in result.data] == [seed, seed + 1]
        return [np.asarray(Image.open(io.BytesIO(decode(item.b64_json)))) for item in result.data]

    first, again, other = pixels(1234), pixels(1234), pixels(99)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1])  # each image has its own seed
    assert not np.array_equal(first[0], other[0])


def test_extensions_change_the_work_done(client):
    base = {"model": "gpt-image-1", "prompt": "a cat", "size": "64x64"}

    def image(**extensions) -> bytes:
        """The pixels: the files differ anyway, each with its own signed C2PA manifest."""
        result = client.images.generate(**base, extra_body={"seed": 5, **extensions})
        return Image.open(io.BytesIO(decode(result.data[0].b64_json))).tobytes()

    one_step = image(num_inference_steps=1)
    guided = image(num_inference_steps=1, guidance_scale=7.5)
    steered = image(num_inference_steps=1, guidance_scale=7.5, negative_prompt="blurry")
    assert len({one_step, image(num_inference_steps=4), guided, steered}) == 4
    assert image(num_inference_steps=1) == one_step


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"size": "1001x1000"}, "size"),  # not a multiple of 8
        ({"size": "2048x512"}, "size"),  # wider than 3:1
        ({"size": "4096x4096"}, "size"),  # above the family's largest side
        ({"size": "big"}, "size"),
        ({"n": 0}, "n"),
        ({"n": 11}, "n"),
        ({"quality": "ultra"}, "quality"),
        ({"quality": "hd"}, "quality"),  # a dall-e-3 quality, not a GPT image one
        ({"output_format": "bmp"}, "output_format"),
        ({"output_compression": 101, "output_format": "jpeg"}, "output_compression"),
        ({"output_compression": 50}, "output_compression"),  # png is lossless
        ({"background": "transparent", "output_format": "jpeg"}, "background"),
        ({"background": "transparent", "model": "dall-e-3"}, "background"),
        ({"background": "glass"}, "background"),
        ({"moderation": "off"}, "moderation"),
        ({"response_format": "jpeg"}, "response_format"),
        ({"style": "cubist"}, "style"),
        ({"stream": True, "response_format": "url"}, "response_format"),
        ({"stream": True, "model": "dall-e-3"}, "stream"),  # GPT image models only, as on OpenAI
        ({"partial_images": 4}, "partial_images"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 32001}, "prompt"),
        ({"extra_body": {"seed": -1}}, "seed"),
        ({"extra_body": {"num_inference_steps": 1000}}, "num_inference_steps"),
        ({"extra_body": {"guidance_scale": 100}}, "guidance_scale"),
        ({"extra_body": {"sharpness": 3}}, "sharpness"),
    ],
)
def test_bad_parameters_are_400_with_param(client, arguments, param):
    call = {"model": "gpt-image-1", "prompt": "a cat"} | arguments
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(**call)
    assert error.value.status_code == 400
    assert error.value.param == param
    assert error.value.type == "invalid_request_error"
    assert param in error.value.message
    assert error.value.request_id.startswith("req_")


def test_null_means_default(server):
    response = httpx.post(
        f"{server.base_url}/v1/images/generations",
        json={
            "prompt": "a cat",
            "model": None,
            "n": None,
            "size": None,
            "quality": None,
            "response_format": None,
            "output_format": None,
            "output_compression": None,
            "background": None,
            "moderation": None,
            "stream": None,
            "partial_images": None,
            "style": None,
            "user": None,
            "seed": None,
            "negative_prompt": None,
            "num_inference_steps": None,
            "guidance_scale": None,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["data"]) == 1 and "b64_json" in body["data"][0]
    assert body["size"] == "256x256"


def test_accepted_parameters(client):
    result = client.images.generate(
        model="gpt-image-1",
        prompt="a cat",
        size="64x64",
        moderation="low",
        user="user-42",
        background="opaque",
        stream=False,
        partial_images=0,
        quality="auto",
    )
    assert len(result.data) == 1


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as error:
        client.images.generate(model="flux-9000", prompt="x")
    assert error.value.code == "model_not_found"
    assert error.value.param is None  # as OpenAI sends it
    assert "tiny" in error.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("flux-9000")


def test_models_list_and_retrieve(client):
    ids = [model.id for model in client.models.list()]
    assert ids[0] == "tiny"
    assert {"gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "dall-e-2", "dall-e-3"} <= set(ids)
    model = client.models.retrieve("gpt-image-1")
    assert model.id == "gpt-image-1" and model.object == "model"
    assert isinstance(model.created, int) and model.owned_by


def test_model_ids_with_a_slash_and_several_models(cache_dir: Path, tmp_path: Path, request_close):
    settings = make_settings(
        cache_dir,
        tmp_path,
        models=[
            ModelConfig(source="tiny", id="local/tiny-a", default_size="64x64"),
            ModelConfig(
                source="tiny", id="local/tiny-b", aliases=["dall-e-2"], default_size="128x128"
            ),
        ],
    )
    with RunningServer(create_app(settings)) as running:
        client = openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0)
        request_close(client)
        assert client.models.retrieve("local/tiny-b").id == "local/tiny-b"
        assert client.models.retrieve("local/tiny-b").owned_by == "local"
        ids = [model.id for model in client.models.list()]
        assert ids[:2] == ["local/tiny-a", "local/tiny-b"]
        assert client.images.generate(model="local/tiny-b", prompt="x").size == "128x128"
        assert client.images.generate(model="gpt-image-1", prompt="x").size == "64x64"
        dalle = client.images.generate(model="dall-e-2", prompt="x", size="256x256")
        assert dalle.data[0].url.startswith(running.base_url)


def test_api_keys(cache_dir: Path, tmp_path: Path, request_close):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# team keys\nsk-from-file\n")
    settings = make_settings(
        cache_dir, tmp_path / "images", api_keys="sk-one,sk-two", api_keys_file=keys_file
    )
    engine = build_engine(settings)
    with RunningServer(create_app(settings, engine=engine)) as running:

        def make(key: str) -> openai.OpenAI:
            client = openai.OpenAI(base_url=f"{running.base_url}/v1", api_key=key, max_retries=0)
            request_close(client)
            return client

        for good in ("sk-one", "sk-two", "sk-from-file"):
            assert make(good).models.retrieve("tiny").id == "tiny"
        assert len(make("sk-two").images.generate(prompt="x", size="64x64").data) == 1
        with pytest.raises(openai.AuthenticationError) as error:
            make("sk-wrong-key").images.generate(prompt="x")
        assert error.value.code == "invalid_api_key"
        assert "sk-wrong-key" not in error.value.message
        with pytest.raises(openai.AuthenticationError):
            make("sk-wrong-key").models.list()
        missing = httpx.get(f"{running.base_url}/v1/models")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{running.base_url}/health").status_code == 200


def test_public_base_url_is_used_for_image_urls(cache_dir: Path, tmp_path: Path, request_close):
    settings = make_settings(cache_dir, tmp_path, public_base_url="https://img.example.test/")
    with RunningServer(create_app(settings)) as running:
        client = openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0)
        request_close(client)
        url = client.images.generate(prompt="x", size="64x64", response_format="url").data[0].url
        assert url.startswith("https://img.example.test/v1/images/files/")
        # The same path works against the server itself.
        local = running.base_url + url.removeprefix("https://img.example.test")
        assert httpx.get(local).status_code == 200


def test_expired_images_are_swept_and_their_urls_refused(
    cache_dir: Path, tmp_path: Path, request_close
):
    settings = make_settings(cache_dir, tmp_path, url_ttl_seconds=1, sweep_interval_seconds=1)
    with RunningServer(create_app(settings)) as running:
        client = openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0)
        request_close(client)
        url = client.images.generate(prompt="x", size="64x64", response_format="url").data[0].url
        name = urlparse(url).path.rsplit("/", 1)[1]
        assert (tmp_path / name).exists()
        deadline = time.monotonic() + 10
        while (tmp_path / name).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not (tmp_path / name).exists()
        expired = httpx.get(url)
        assert expired.status_code == 403
        assert expired.json()["error"]["code"] == "url_expired"


def test_any_size_the_family_allows_is_made_and_reported(client):
    response = client.images.generate(prompt="a cat", size="320x192")  # type: ignore[arg-type]
    assert response.size == "320x192"
    image = Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json)))
    assert image.size == (320, 192)
    auto = client.images.generate(prompt="a cat", size="auto")
    assert auto.size == "256x256"  # the tiny model's native size


@pytest.mark.parametrize("output_format", ["png", "webp"])
def test_transparent_background_returns_a_real_alpha_channel(client, output_format):
    response = client.images.generate(
        prompt="a red apple",
        size="128x128",
        background="transparent",
        output_format=output_format,
    )
    assert response.background == "transparent"
    assert response.output_format == output_format
    # The backdrop request leaves the client's prompt its room in the 77-token window.
    assert response.data[0].revised_prompt is None
    image = Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json)))
    assert image.mode == "RGBA" and image.size == (128, 128)
    alpha = np.asarray(image)[..., 3]
    assert alpha.min() < 255  # matted: not an opaque image with an alpha channel bolted on
    events = list(
        client.images.generate(
            prompt="a red apple", size="128x128", background="transparent", stream=True,
            partial_images=1, extra_body={"num_inference_steps": 3},
        )
    )  # fmt: skip
    assert [event.background for event in events] == ["transparent"] * 2
    for event in events:
        assert Image.open(io.BytesIO(base64.b64decode(event.b64_json))).mode == "RGBA"


def test_a_prompt_longer_than_the_encoder_window_is_read_whole(client):
    # The tiny model's tokenizer has one token per character, spaces aside.
    sentence = "a bowl of ripe oranges on a wooden kitchen table by a window "
    long_prompt = (sentence * 17)[:1000]  # 1,000 characters: 12 of CLIP's 77-token windows
    response = client.images.generate(prompt=long_prompt, size="64x64", extra_body={"seed": 1})
    assert response.data[0].revised_prompt is None  # nothing was cut, nothing is reported
    content = len(long_prompt.replace(" ", ""))
    windows = -(-content // 75)
    assert response.usage.input_tokens == content + 2 * windows  # every window's own tokens
    # The end of the prompt counts: cutting it changes the image.
    cut = client.images.generate(prompt=long_prompt[:500], size="64x64", extra_body={"seed": 1})
    assert not same_pixels(cut.data[0].b64_json, response.data[0].b64_json)
    # Past 16 windows (1,200 tokens) a prompt is cut, visibly.
    longest = client.images.generate(prompt=sentence * 40, size="64x64")
    used = longest.data[0].revised_prompt
    assert used is not None and (sentence * 40).startswith(used) and len(used) < len(sentence * 40)
    assert longest.usage.input_tokens == 16 * 77
    short = client.images.generate(prompt="a lighthouse", size="64x64")
    assert short.data[0].revised_prompt is None
    assert short.usage.input_tokens == len("alighthouse") + 2


def test_a_long_negative_prompt_is_read_whole_too(client):
    shared = "blurry, washed out, low contrast, " * 12  # far past one window
    extras = {"seed": 3, "guidance_scale": 4.0}

    def image(negative: str) -> str | None:
        body = extras | {"negative_prompt": negative}
        return (
            client.images.generate(prompt="a cat", size="64x64", extra_body=body).data[0].b64_json
        )

    # Negative prompts alike in their first windows and different at the end give different
    # images: the end was read.
    assert image(shared + "grey") != image(shared + "neon green, overexposed, noisy")
