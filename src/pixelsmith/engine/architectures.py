"""Pipelines built from a description of their parts, with seeded random weights and no
download: the architecture-only benchmark models, and (in the tests) tiny models of every
family.

A description is a dict (the `arch_configs/*.json` files next to this module) naming a diffusers
pipeline class and, for each of its components, a class and its config:

    {"pipeline": "FluxPipeline",
     "components": {
        "transformer": {"class": "FluxTransformer2DModel", "config": {...}},
        "text_encoder": {"class": "CLIPTextModel", "config": {...}},
        "tokenizer": {"class": "CLIPTokenizer", "model_max_length": 77},
        "scheduler": {"class": "FlowMatchEulerDiscreteScheduler", "config": {...}}, ...}}

Tokenizers are built here (CLIP: byte-level BPE; T5: character-level Unigram), so text encoders
get their special-token ids from them. Architecture-only models draw noise, but they cost what
the real checkpoint costs: the same layers, shapes and FLOPs, which makes them the honest way to
benchmark the server on a machine that cannot fetch weights. `--model sd-turbo-arch` serves one.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import torch

from pixelsmith.engine.arch_catalog import architecture_config
from pixelsmith.engine.tiny import byte_level_clip_tokenizer

ARCH_SEED = 0
# The default dtype and the RNG seed are process-wide: one build at a time.
_BUILD_LOCK = threading.Lock()

# transformers model class -> its config class
_TEXT_CONFIGS = {
    "CLIPTextModel": "CLIPTextConfig",
    "CLIPTextModelWithProjection": "CLIPTextConfig",
    "T5EncoderModel": "T5Config",
}


def build_architecture(
    name: str, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> Any:
    return build_pipeline(architecture_config(name), dtype=dtype, device=device)


def t5_unigram_tokenizer(model_max_length: int = 512) -> Any:  # a transformers T5TokenizerFast
    """T5's tokenizer class on a character-level Unigram vocabulary: any ASCII text tokenizes,
    and pad / end / unknown have T5's ids 0 / 1 / 2."""
    from tokenizers import Tokenizer, models
    from transformers import T5TokenizerFast  # type: ignore[attr-defined]

    pieces = ["<pad>", "</s>", "<unk>", *(chr(code) for code in range(32, 127))]
    scores = [(piece, 0.0 if index < 3 else -1.0) for index, piece in enumerate(pieces)]
    unigram = Tokenizer(models.Unigram(scores, unk_id=2))
    return T5TokenizerFast(
        tokenizer_object=unigram,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_ids=0,
        model_max_length=model_max_length,
    )


def _tokenizer(description: dict[str, Any]) -> Any:
    kind = description["class"]
    if kind == "CLIPTokenizer":
        return byte_level_clip_tokenizer(description.get("model_max_length", 77))
    if kind == "T5TokenizerFast":
        return t5_unigram_tokenizer(description.get("model_max_length", 512))
    raise ValueError(f"no local tokenizer for {kind}")


def _text_encoder(description: dict[str, Any], tokenizer: Any) -> Any:
    import transformers

    kind = description["class"]
    config_class = getattr(transformers, _TEXT_CONFIGS[kind])
    config = dict(description["config"])
    vocab = tokenizer.get_vocab() if tokenizer is not None else {}
    if kind.startswith("CLIP") and "<|endoftext|>" in vocab:
        config.update(
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    if kind == "T5EncoderModel":
        config.update(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    config.setdefault("vocab_size", max(len(vocab), 1))
    return getattr(transformers, kind)(config_class(**config))


def build_pipeline(
    description: dict[str, Any],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Any:
    """The pipeline `description` names, its weights drawn from a fixed seed (every machine
    builds the same model), made directly on `device` in `dtype`: a full-size model is never
    held twice, and a GPU initialises its own weights quickly."""
    import diffusers

    parts: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = description["components"]
    # Tokenizers first: the text encoder beside each takes its special-token ids from it.
    # Schedulers hold small tables that belong on the CPU, whatever the device.
    for name, part in components.items():
        if name.startswith("tokenizer"):
            parts[name] = _tokenizer(part)
        elif name == "scheduler":
            parts[name] = getattr(diffusers, part["class"])(**part.get("config", {}))
    with _BUILD_LOCK:
        _build_modules(components, parts, dtype=dtype, device=device)
    pipeline_class = getattr(diffusers, description["pipeline"])
    signature = inspect.signature(pipeline_class.__init__)
    for name, parameter in signature.parameters.items():
        if name == "requires_safety_checker":
            parts[name] = False
        elif name not in parts and name != "self" and parameter.default is inspect.Parameter.empty:
            parts[name] = None  # safety checker, feature extractor: optional parts left out
    return pipeline_class(**parts)


def _build_modules(
    components: dict[str, dict[str, Any]],
    parts: dict[str, Any],
    *,
    dtype: torch.dtype,
    device: torch.device | str,
) -> None:
    """The weighted components, seeded, made in `dtype` on `device`. Another thread that makes
    tensors meanwhile sees the changed default dtype: builds happen at startup or on a lazy
    model's first load, and take this module's lock."""
    import diffusers

    generator_state = torch.random.get_rng_state()
    default_dtype = torch.get_default_dtype()
    torch.manual_seed(ARCH_SEED)
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            for name, part in components.items():
                if name in parts:
                    continue
                if name.startswith("text_encoder"):
                    tokenizer = parts.get(name.replace("text_encoder", "tokenizer"))
                    parts[name] = _text_encoder(part, tokenizer)
                else:
                    parts[name] = getattr(diffusers, part["class"])(**part["config"])
    finally:
        torch.set_default_dtype(default_dtype)
        torch.random.set_rng_state(generator_state)
