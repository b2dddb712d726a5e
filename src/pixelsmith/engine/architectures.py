"""Architecture-only models: a preset's full-size network built from a JSON config in this
package, with seeded random weights and no download.

They draw noise, but they cost what the real checkpoint costs: the same layers, shapes and
FLOPs. That makes them the honest way to benchmark the server (queueing, batching, encoding
overhead against real compute) on a machine that cannot fetch weights. `--model sd-turbo-arch`
serves one; the configs sit in `arch_configs/` next to this file.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import torch

from pixelsmith.engine.tiny import byte_level_clip_tokenizer

ARCH_SUFFIX = "-arch"
ARCH_SEED = 0


@cache
def architecture_names() -> tuple[str, ...]:
    folder = resources.files("pixelsmith.engine").joinpath("arch_configs")
    return tuple(
        sorted(
            entry.name.removesuffix(".json")
            for entry in folder.iterdir()
            if entry.name.endswith(".json")
        )
    )


def is_architecture(source: str) -> bool:
    return source in architecture_names()


def architecture_config(name: str) -> dict[str, Any]:
    text = (
        resources.files("pixelsmith.engine")
        .joinpath("arch_configs")
        .joinpath(f"{name}.json")
        .read_text()
    )
    config: dict[str, Any] = json.loads(text)
    return config


def build_architecture(name: str, dtype: torch.dtype = torch.float32) -> Any:
    """The pipeline `name` describes, with weights drawn from a fixed seed (every machine
    builds the same model)."""
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    config = architecture_config(name)
    tokenizer = byte_level_clip_tokenizer(config["text_encoder"]["max_position_embeddings"])
    special = tokenizer.get_vocab()
    scheduler_config = dict(config["scheduler"])
    scheduler_class = getattr(diffusers, scheduler_config.pop("class"))
    generator_state = torch.random.get_rng_state()
    default_dtype = torch.get_default_dtype()
    torch.manual_seed(ARCH_SEED)
    torch.set_default_dtype(dtype)  # built in the serving dtype: no second full-size copy
    try:
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                **config["text_encoder"],
                bos_token_id=special["<|startoftext|>"],
                eos_token_id=special["<|endoftext|>"],
                pad_token_id=special["<|endoftext|>"],
            )
        )
        unet = UNet2DConditionModel(**config["unet"])
        vae = AutoencoderKL(**config["vae"])
    finally:
        torch.set_default_dtype(default_dtype)
        torch.random.set_rng_state(generator_state)
    pipeline_class = getattr(diffusers, config["pipeline"])
    return pipeline_class(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler_class(**scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
