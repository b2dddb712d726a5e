"""Memory control: lazy loading with a memory budget (least recently used models unloaded),
and the per-model memory switches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openai
import pytest
import torch
from conftest import RunningServer, make_settings

from pixelsmith.app import create_app
from pixelsmith.builders import build_engine
from pixelsmith.engine.jobs import GenerationJob
from pixelsmith.errors import ModelLoadError
from pixelsmith.settings import ModelConfig


def test_models_load_on_demand_and_the_budget_unloads_the_least_recently_used(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import pixelsmith.engine.engine

    probe = build_engine(make_settings(cache_dir, tmp_path))
    probe.load()
    tiny_bytes = probe.pipeline(probe.registry.default).weight_bytes
    assert tiny_bytes > 0
    settings = make_settings(
        cache_dir,
        tmp_path,
        models=[ModelConfig(source="tiny", id=name) for name in ("first", "second", "third")],
        lazy_load=True,
        memory_budget_gb=1.5 * tiny_bytes / 2**30,  # room for one model, not two
        moderation_prompt_classifier="off",
    )
    engine = build_engine(settings)
    loads: list[tuple[str, list[str]]] = []
    real_load_pipeline = pixelsmith.engine.engine.load_pipeline

    def recording_load_pipeline(spec, **options):
        loads.append((spec.id, engine.loaded_ids))
        return real_load_pipeline(spec, **options)

    monkeypatch.setattr(pixelsmith.engine.engine, "load_pipeline", recording_load_pipeline)
    with RunningServer(create_app(settings, engine=engine)) as running:
        assert engine.loaded_ids == []  # nothing loaded at startup
        with openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as client:
            assert {model.id for model in client.models.list().data} >= {"first", "second"}

            def generate(model: str) -> None:
                response = client.images.generate(model=model, prompt="a cat", size="64x64")
                assert len(response.data) == 1

            generate("first")
            assert engine.loaded_ids == ["first"]
            generate("second")
            assert engine.loaded_ids == ["second"]  # first was unloaded to fit the budget
            generate("first")
            assert engine.loaded_ids == ["first"]
    # The second load of "first" (size known) made room before loading, not after.
    assert loads == [("first", []), ("second", ["first"]), ("first", [])]


def test_memory_switches_are_applied_and_large_images_still_decode(cache_dir: Path, tmp_path: Path):
    settings = make_settings(
        cache_dir,
        tmp_path,
        models=[
            ModelConfig(source="tiny", vae_tiling=True, vae_slicing=True, attention_slicing=True)
        ],
    )
    engine = build_engine(settings)
    engine.load()
    loaded = engine.pipeline(engine.registry.default)
    vae = loaded.pipeline.vae
    assert vae.use_tiling and vae.use_slicing
    processors = {type(p).__name__ for p in loaded.pipeline.unet.attn_processors.values()}
    assert processors == {"SlicedAttnProcessor"}
    # Bigger than the VAE's tile (256 pixels for the tiny model): decoded in tiles.
    output = loaded.run(
        GenerationJob(
            prompt="a cat", width=512, height=512, num_inference_steps=1,
            guidance_scale=0.0, seeds=(1, 2),
        )
    )  # fmt: skip
    assert [image.size for image in output.images] == [(512, 512)] * 2
    assert np.asarray(output.images[0]).std() > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU-only machine")
def test_cpu_offload_without_a_gpu_is_refused_with_a_reason(cache_dir: Path, tmp_path: Path):
    settings = make_settings(
        cache_dir, tmp_path, models=[ModelConfig(source="tiny", cpu_offload="model")]
    )
    with pytest.raises(ModelLoadError, match="cpu_offload"):
        build_engine(settings).load()
