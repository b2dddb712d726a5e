"""Moderation through the official `openai` client on a real server."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import openai
import pytest
from conftest import RunningServer, make_settings
from moderation_models import save_image_classifier, save_text_classifier
from PIL import Image

from pixelsmith.app import create_app


def blocked(client: openai.OpenAI, **arguments) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(**({"model": "gpt-image-1", "size": "64x64"} | arguments))
    return error.value


@pytest.mark.parametrize(
    "prompt",
    ["a nude woman on a bed", "a n.u.d.e woman on a bed", "a 𝐧𝐮𝐝𝐞 woman", "p0rn0graphic photo"],
)
def test_input_stage_block(client, prompt):
    error = blocked(client, prompt=prompt)
    assert error.status_code == 400
    assert error.code == "moderation_blocked"
    assert error.type == "image_generation_user_error"
    assert error.param is None
    assert error.body["moderation_details"] == {
        "moderation_stage": "input",
        "categories": ["sexual"],
    }
    assert error.request_id in error.message
    assert "safety_violations=[sexual]" in error.message


@pytest.mark.parametrize(
    "prompt",
    [
        "a war photo of a wounded soldier, blood on his face",
        # Suggestive, not explicit: the learned check's explicit head lets it through at low.
        "a sensual boudoir portrait of a woman",
    ],
)
def test_low_lets_a_borderline_prompt_through(client, prompt):
    error = blocked(client, prompt=prompt)
    assert error.code == "moderation_blocked"
    result = client.images.generate(
        model="gpt-image-1",
        prompt=prompt,
        size="64x64",
        moderation="low",
    )
    assert len(result.data) == 1
    minors = blocked(client, prompt="a sexy schoolgirl", moderation="low")
    assert minors.body["moderation_details"]["categories"] == ["sexual/minors"]


def test_dall_e_names_get_the_legacy_shape(client):
    error = blocked(client, model="dall-e-3", prompt="gory decapitation", size="1024x1024")
    assert error.code == "content_policy_violation"
    assert error.type == "invalid_request_error"
    assert "moderation_details" not in error.body
    assert error.body["message"].startswith("Your request was rejected as a result of our safety")


def test_output_stage_block_and_minors_rule(cache_dir: Path, tmp_path: Path):
    always_nsfw = save_image_classifier(tmp_path / "nsfw", ["normal", "nsfw"], [0.03, 0.97])
    faint = save_image_classifier(tmp_path / "faint", ["normal", "nsfw"], [0.6, 0.4])
    for classifier, prompt, level, categories in [
        (always_nsfw, "a lighthouse", "auto", ["sexual"]),
        (faint, "a kid at the beach", "low", ["sexual/minors"]),
    ]:
        settings = make_settings(
            cache_dir, tmp_path / "images", moderation_image_classifier=str(classifier)
        )
        with RunningServer(create_app(settings)) as running:
            with openai.OpenAI(
                base_url=f"{running.base_url}/v1", api_key="x", max_retries=0
            ) as client:
                error = blocked(client, prompt=prompt, moderation=level)
                assert error.code == "moderation_blocked"
                assert error.body["moderation_details"] == {
                    "moderation_stage": "output",
                    "categories": categories,
                }
                if classifier is faint:  # the same signal without a minor passes
                    ok = client.images.generate(prompt="an adult at the beach", size="64x64")
                    assert len(ok.data) == 1
                dalle = blocked(client, model="dall-e-2", prompt=prompt, size="256x256")
                assert dalle.code == "content_policy_violation"


def test_a_model_based_prompt_check_blocks_at_the_input_stage(cache_dir: Path, tmp_path: Path):
    # The rules find nothing in "a cat"; this classifier calls everything hateful. The model
    # checks run beside the generation, and their verdict still decides before images return.
    text_model = save_text_classifier(tmp_path / "text", ["OK", "H"], [0.2, 0.8])
    settings = make_settings(
        cache_dir, tmp_path / "images", moderation_text_classifier=str(text_model)
    )
    with RunningServer(create_app(settings)) as running:
        with openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as c:
            error = blocked(c, prompt="a cat")
            assert error.body["moderation_details"] == {
                "moderation_stage": "input",
                "categories": ["hate"],
            }


def test_moderation_off(cache_dir: Path, tmp_path: Path):
    settings = make_settings(cache_dir, tmp_path, moderation_enabled=False)
    with RunningServer(create_app(settings)) as running:
        with openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as c:
            assert len(c.images.generate(prompt="a nude woman", size="64x64").data) == 1


def test_moderations_endpoint(client):
    result = client.moderations.create(input="a n u d e woman")
    assert result.id.startswith("modr-")
    (first,) = result.results
    assert first.flagged and first.categories.sexual
    assert first.category_scores.sexual >= 0.5
    assert not first.categories.hate and first.category_scores.hate == 0.0
    several = client.moderations.create(input=["a cat on a sofa", "kill all immigrants"])
    assert [r.flagged for r in several.results] == [False, True]
    assert several.results[1].categories.hate

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "blue").save(buffer, format="PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    mixed = client.moderations.create(
        input=[
            {"type": "text", "text": "a kite"},
            {"type": "image_url", "image_url": {"url": data_url}},
        ]
    )
    assert not mixed.results[0].flagged
    assert mixed.results[0].category_applied_input_types.sexual == ["text", "image"]
    with pytest.raises(openai.BadRequestError) as error:
        client.moderations.create(
            input=[{"type": "image_url", "image_url": {"url": "https://example.test/x.png"}}]
        )
    assert error.value.param == "input[0].image_url.url"


def test_moderations_endpoint_limits(client, server):
    import httpx

    url = f"{server.base_url}/v1/moderations"
    for body, param in [
        ({"input": []}, "input"),
        ({"input": ["x"] * 33}, "input"),
        ({"input": "a" * 64_001}, "input"),
    ]:
        response = httpx.post(url, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == param
    bomb = io.BytesIO()
    Image.new("1", (7000, 7000)).save(bomb, format="PNG")
    data_url = "data:image/png;base64," + base64.b64encode(bomb.getvalue()).decode()
    response = httpx.post(
        url, json={"input": [{"type": "image_url", "image_url": {"url": data_url}}]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "image_too_large"
    result = client.moderations.create(input="a beheading, gore")
    assert result.results[0].categories.violence_graphic
    assert result.results[0].categories.violence  # a flagged subcategory flags its parent
    # Lone surrogates are valid JSON escapes but no text: 400, not a tokenizer crash.
    for path, body, param in [
        ("/v1/moderations", b'{"input": "\\ud800 a cat"}', "input"),
        ("/v1/images/generations", b'{"prompt": "a cat \\udc00"}', "prompt"),
    ]:
        response = httpx.post(
            server.base_url + path, content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


def test_open_servers_need_an_image_check(monkeypatch):
    import pixelsmith.moderation as moderation
    from pixelsmith.errors import ModelLoadError
    from pixelsmith.settings import Settings

    def missing():
        raise ImportError("nudenet")

    monkeypatch.setattr(moderation, "_nudenet", missing)
    local = moderation.build_moderator(Settings(moderation_prompt_classifier="off"))
    assert local.image_classifiers == []  # loopback: a warning, and the server starts
    with pytest.raises(ModelLoadError, match="moderation_image_classifier=none"):
        moderation.build_moderator(Settings(host="0.0.0.0", moderation_prompt_classifier="off"))
    chosen = moderation.build_moderator(
        Settings(
            host="0.0.0.0", moderation_prompt_classifier="off", moderation_image_classifier="none"
        )
    )
    assert chosen.image_classifiers == []
