"""Request validation and parameter mapping (request -> plan), without HTTP."""

from __future__ import annotations

import pytest

from pixelsmith.api.protocol import CreateImageRequest
from pixelsmith.errors import InvalidRequestError, ModelNotFoundError
from pixelsmith.matting import KeyedBackgroundMatting
from pixelsmith.service.planning import RequestPlanner
from pixelsmith.service.usage import output_tokens_per_image


@pytest.fixture(scope="module")
def planner(tiny_engine):
    return RequestPlanner(tiny_engine, KeyedBackgroundMatting())


def prepare(planner, **fields):
    return planner.generation(CreateImageRequest(**({"prompt": "a cat"} | fields)))


@pytest.mark.parametrize(
    ("quality", "steps", "tier"),
    [("low", 1, "low"), ("medium", 2, "medium"), ("auto", 2, "medium"), ("high", 4, "high")],
)
def test_quality_maps_to_the_models_steps(planner, quality, steps, tier):
    prepared = prepare(planner, model="gpt-image-1", quality=quality)
    assert prepared.job.num_inference_steps == steps
    assert prepared.quality_tier == tier


def test_dall_e_qualities(planner):
    assert prepare(planner, model="dall-e-3", quality="hd").job.num_inference_steps == 4
    assert prepare(planner, model="dall-e-3", quality="standard").job.num_inference_steps == 2
    assert prepare(planner, model="tiny", quality="hd").quality_tier == "high"
    with pytest.raises(InvalidRequestError) as error:
        prepare(planner, model="dall-e-2", quality="hd")
    assert error.value.param == "quality" and "'standard'" in error.value.message


def test_defaults_per_name(planner):
    gpt = prepare(planner, model="gpt-image-1")
    output = gpt.output
    assert (str(gpt.size), output.response_format, output.format) == ("256x256", "b64_json", "png")
    assert gpt.revised_prompt is None
    assert prepare(planner).spec.id == "tiny"  # no model: the default model, GPT image rules
    dalle3 = prepare(planner, model="dall-e-3")
    assert (str(dalle3.size), dalle3.output.response_format) == ("1024x1024", "url")
    assert dalle3.revised_prompt.startswith("a cat. Style: vivid")
    assert dalle3.job.prompt == dalle3.revised_prompt  # the revised prompt is what runs
    assert str(prepare(planner, model="dall-e-2").size) == "1024x1024"


def test_style_on_gpt_names_only_when_asked(planner):
    prepared = prepare(planner, model="gpt-image-1", style="natural")
    assert "natural" in prepared.revised_prompt


def test_seeds_explicit_and_random(planner):
    assert prepare(planner, n=3, seed=41).job.seeds == (41, 42, 43)
    first, second = prepare(planner, n=2).job.seeds, prepare(planner, n=2).job.seeds
    assert first[1] == first[0] + 1 and first != second


def test_extensions_override_presets(planner):
    prepared = prepare(planner, num_inference_steps=7, guidance_scale=3.5, negative_prompt="fog")
    assert prepared.job.num_inference_steps == 7
    assert prepared.job.guidance_scale == 3.5
    assert prepared.job.negative_prompt == "fog"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"size": "1000x1004"}, "size"),
        ({"size": "1024*1024"}, "size"),
        ({"model": "dall-e-2", "size": "1000x1000"}, "size"),  # dall-e-2 keeps its list
        ({"model": "dall-e-3", "n": 2}, "n"),
        ({"model": "dall-e-3", "size": "auto"}, "size"),
        ({"prompt": "   "}, "prompt"),
        ({"model": "dall-e-3", "prompt": "x" * 4001}, "prompt"),
        ({"output_format": "png", "output_compression": 10}, "output_compression"),
        ({"background": "transparent", "output_format": "jpeg"}, "background"),
        ({"stream": True, "response_format": "url"}, "response_format"),
        ({"num_inference_steps": 151}, "num_inference_steps"),
    ],
)
def test_rejections_name_the_parameter(planner, fields, param):
    with pytest.raises(InvalidRequestError) as error:
        prepare(planner, **fields)
    assert error.value.param == param
    assert error.value.status_code == 400


def test_size_message_lists_allowed_values_and_the_family_rule(planner):
    with pytest.raises(InvalidRequestError) as error:
        prepare(planner, model="gpt-image-1", size="1000x1004")
    message = error.value.message
    assert "'1024x1024'" in message and "'auto'" in message and "gpt-image-1" in message
    assert "1000x1004" in message and "multiples of 8" in message
    with pytest.raises(InvalidRequestError, match="aspect ratio"):
        prepare(planner, size="1536x256")
    assert str(prepare(planner, size="1000x1000").size) == "1000x1000"


def test_unknown_model(planner):
    with pytest.raises(ModelNotFoundError):
        prepare(planner, model="midjourney")


def test_output_token_table():
    assert output_tokens_per_image(1024, 1024, "low") == 272
    assert output_tokens_per_image(1536, 1024, "medium") == 1568
    assert output_tokens_per_image(1024, 1536, "high") == 6240
    assert output_tokens_per_image(512, 512, "high") == 1040  # area-scaled
