"""Every model family pixelsmith names, proven end to end: a tiny pipeline of the family's own
diffusers class is saved, served through the registry with the family's preset, and called
through HTTP with the official `openai` client (generations, streams, edits)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from conftest import RunningServer, make_settings, same_pixels
from PIL import Image
from tiny_families import FAMILIES, save_tiny_family

from pixelsmith.app import create_app
from pixelsmith.engine.presets import PRESETS
from pixelsmith.settings import ModelConfig


@pytest.fixture(scope="module")
def family_client(
    cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[openai.OpenAI]:
    root = tmp_path_factory.mktemp("families")
    models = [ModelConfig(source="tiny")] + [
        ModelConfig(source=str(save_tiny_family(name, root / name)), id=name, preset=preset)
        for name, (preset, _) in FAMILIES.items()
    ]
    settings = make_settings(
        cache_dir, root / "images", models=models, moderation_prompt_classifier="off"
    )
    with RunningServer(create_app(settings)) as server:
        with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="x", max_retries=0) as client:
            yield client


def smallest_size(family: str) -> str:
    side = max(PRESETS[FAMILIES[family][0]].size_rules.min_side, 256)
    return f"{side}x{side}"


def decoded(b64: str | None) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64 or "")))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_generates_through_the_official_client(family_client, family: str):
    size = smallest_size(family)
    response = family_client.images.generate(
        model=family,
        prompt="a lighthouse at dusk",
        n=2,
        size=size,  # type: ignore[arg-type]
        extra_body={"seed": 5, "num_inference_steps": 2},
    )
    assert response.size == size
    assert [item.seed for item in response.data] == [5, 6]  # type: ignore[attr-defined]
    images = [decoded(item.b64_json) for item in response.data]
    assert all(image.size == tuple(map(int, size.split("x"))) for image in images)
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))
    assert response.usage is not None and response.usage.input_tokens > 0
    again = family_client.images.generate(
        model=family, prompt="a lighthouse at dusk", size=size,  # type: ignore[arg-type]
        extra_body={"seed": 5, "num_inference_steps": 2},
    )  # fmt: skip
    # The same seed alone: the same image, within batched-matmul rounding.
    alone = np.asarray(decoded(again.data[0].b64_json), dtype=np.int16)
    assert np.abs(alone - np.asarray(images[0], dtype=np.int16)).max() <= 2


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_streams_previews_of_its_latents(family_client, family: str):
    size = smallest_size(family)
    events = list(
        family_client.images.generate(
            model=family,
            prompt="a red fox",
            size=size,  # type: ignore[arg-type]
            stream=True,
            partial_images=2,
            extra_body={"seed": 1, "num_inference_steps": 3},
        )
    )
    kinds = [event.type for event in events]
    assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    for event in events:
        assert decoded(event.b64_json).size == tuple(map(int, size.split("x")))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_edits_or_says_it_cannot(family_client, family: str):
    side = int(smallest_size(family).split("x")[0])
    source = io.BytesIO()
    Image.new("RGB", (side, side), (200, 40, 40)).save(source, "PNG")
    mask = Image.new("RGBA", (side, side), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, side // 2, side))  # repaint the left half
    mask_file = io.BytesIO()
    mask.save(mask_file, "PNG")
    call = dict(
        model=family,
        image=("in.png", source.getvalue(), "image/png"),
        mask=("mask.png", mask_file.getvalue(), "image/png"),
        prompt="a blue door",
        extra_body={"seed": 2, "num_inference_steps": 2},
    )
    if family == "pixart-sigma":  # diffusers has no image-to-image PixArt pipeline
        with pytest.raises(openai.BadRequestError) as error:
            family_client.images.edit(**call)
        assert error.value.code == "unsupported_model"
        return
    response = family_client.images.edit(**call)
    edited = decoded(response.data[0].b64_json).convert("RGB")
    assert edited.size == (side, side)
    # Outside the mask the input is kept exactly.
    assert edited.getpixel((side - 2, side // 2)) == (200, 40, 40)


def test_models_endpoint_and_presets_know_every_family(family_client):
    listed = {model.id for model in family_client.models.list().data}
    assert set(FAMILIES) <= listed
    assert {preset for preset, _ in FAMILIES.values()} <= set(PRESETS)


def test_every_preset_and_architecture_model_is_documented():
    from pixelsmith.engine.arch_catalog import architecture_names

    text = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    for preset in PRESETS.values():
        assert f"`{preset.name}`" in text and f"`{preset.source}`" in text, preset.name
        assert preset.license in text, preset.name
    for name in architecture_names():
        assert f"`{name}`" in text, name


def test_t5_models_read_long_prompts_up_to_their_sequence_length(family_client):
    prompt = "a lighthouse " * 30  # 390 characters: within FLUX's 512 T5 tokens
    response = family_client.images.generate(
        model="flux-schnell", prompt=prompt, size="256x256",  # type: ignore[arg-type]
        extra_body={"num_inference_steps": 1},
    )  # fmt: skip
    assert response.data[0].revised_prompt is None
    longer = family_client.images.generate(
        model="flux-schnell", prompt=prompt * 2, size="256x256",  # type: ignore[arg-type]
        extra_body={"num_inference_steps": 1},
    )  # fmt: skip
    used = longer.data[0].revised_prompt
    assert used is not None and len(used) < len(prompt * 2) and (prompt * 2).startswith(used)
    assert longer.usage is not None and longer.usage.input_tokens == 512


@pytest.mark.parametrize("family", ["flux-schnell", "sd3", "sdxl"])
def test_family_image_to_image_keeps_the_requested_or_a_legal_auto_size(family_client, family):
    source = io.BytesIO()
    Image.new("RGB", (600, 456), (90, 160, 30)).save(source, "PNG")  # not the family's grid
    odd = family_client.images.edit(
        model=family, image=("odd.png", source.getvalue(), "image/png"), prompt="a meadow",
        extra_body={"seed": 1, "num_inference_steps": 1},
    )  # fmt: skip
    width, height = map(int, odd.size.split("x"))
    rules = PRESETS[FAMILIES[family][0]].size_rules
    assert rules.problem(width, height) is None
    assert decoded(odd.data[0].b64_json).size == (width, height)
    side = int(smallest_size(family).split("x")[0])
    wide = family_client.images.edit(
        model=family, image=("odd.png", source.getvalue(), "image/png"), prompt="a meadow",
        size=f"{side * 2}x{side}",  # type: ignore[arg-type]
        extra_body={"seed": 1, "num_inference_steps": 1},
    )  # fmt: skip
    assert decoded(wide.data[0].b64_json).size == (side * 2, side)


@pytest.mark.parametrize("guidance", [0.0, 3.0])
def test_clip_families_read_a_long_prompt_whole_in_windows(family_client, guidance: float):
    """SDXL joins the windows of both text encoders and pools the first; with guidance the
    negative side is read in as many windows (zeros for SDXL's empty negative prompt)."""
    prompt = "a lighthouse on a cliff at dusk with crashing waves " * 20  # over 77 tokens
    extras = {"seed": 2, "num_inference_steps": 1, "guidance_scale": guidance}
    for negative in (None, "fog, blur " * 20):
        body = extras | ({"negative_prompt": negative} if negative else {})
        whole = family_client.images.generate(
            model="sdxl",
            prompt=prompt,
            size="512x512",
            extra_body=body,  # type: ignore[arg-type]
        )
        assert whole.data[0].revised_prompt is None
        assert whole.usage is not None and whole.usage.input_tokens > 77
        half = family_client.images.generate(
            model="sdxl", prompt=prompt[: len(prompt) // 2], size="512x512",  # type: ignore[arg-type]
            extra_body=body,
        )  # fmt: skip
        # the end of the prompt counts
        assert not same_pixels(half.data[0].b64_json, whole.data[0].b64_json)


def test_prompt_text_cut_by_a_clip_encoder_stays_out_of_the_log(family_client):
    import logging

    # FLUX reads the prompt through T5; diffusers logs what its CLIP encoder cuts off.
    records: list[logging.LogRecord] = []
    recorder = logging.Handler()
    recorder.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("diffusers").addHandler(recorder)
    try:
        family_client.images.generate(
            model="flux-schnell", prompt="a lighthouse " * 10 + "zanzibar-marker " * 20,
            size="256x256", extra_body={"num_inference_steps": 1},  # type: ignore[arg-type]
        )  # fmt: skip
    finally:
        logging.getLogger("diffusers").removeHandler(recorder)
    assert not [record for record in records if "zanzibar" in record.getMessage()]
