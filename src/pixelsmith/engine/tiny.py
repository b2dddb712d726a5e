"""The built-in offline model `tiny`: a real Stable Diffusion pipeline with random weights.

It has every part of SD 1.x/2.x (UNet, a VAE with the usual 8x downscale, a CLIP text encoder, a
byte-level BPE tokenizer built here) at a few thousand parameters per layer, seeded so that
every machine builds the same weights. It draws noise, not pictures: it exists so that tests
and offline demos exercise the same `from_pretrained` path a real checkpoint takes. Beside it,
in `ip_adapter/`, a tiny IP-Adapter (a CLIP vision encoder and the adapter's projection and
attention weights, in the layout of h94/IP-Adapter) lets edits with several images use the
extra ones as image prompts, loaded through diffusers' own `load_ip_adapter`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

# Bump when the architecture below changes, so stale caches are rebuilt rather than loaded.
TINY_MODEL_VERSION = 2
TINY_SEED = 0


# Where the tiny model keeps its IP-Adapter, and the adapter's weights file in it.
TINY_IP_ADAPTER_FOLDER = "ip_adapter"
TINY_IP_ADAPTER_WEIGHTS = "ip-adapter.safetensors"


def tiny_model_dir(cache_dir: Path) -> Path:
    return cache_dir / "models" / f"tiny-v{TINY_MODEL_VERSION}"


STAGING_PREFIX = ".tiny-"
STAGING_OWNER = ".owner-pid"
# A staging directory with no owner file yet is a build that has just begun (or one that
# crashed in its first instant): left alone for this long.
UNOWNED_STAGING_SECONDS = 60


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_staging(models_dir: Path) -> int:
    """Remove the staging directories of tiny builds whose process has died (a crash or a
    kill mid-build). Returns how many were removed."""
    removed = 0
    for staging in models_dir.glob(f"{STAGING_PREFIX}*"):
        try:
            owner = int((staging / STAGING_OWNER).read_text())
        except FileNotFoundError:
            stale = time.time() - staging.stat().st_mtime > UNOWNED_STAGING_SECONDS
        except (OSError, ValueError):
            stale = True
        else:
            stale = not _process_alive(owner)
        if stale and staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
            logger.info("removed %s, left by a tiny-model build that did not finish", staging)
            removed += 1
    return removed


def ensure_tiny_model(cache_dir: Path) -> Path:
    """Return the directory of the tiny model, building it first if it is not cached."""
    target = tiny_model_dir(cache_dir)
    if target.parent.is_dir():
        remove_stale_staging(target.parent)
    if (target / "model_index.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temp dir and rename, so a crash or a second process never sees a
    # half-written model; the owner file lets the next start clean up after a crash.
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target.parent))
    (staging / STAGING_OWNER).write_text(str(os.getpid()))
    try:
        logger.info("building the tiny model in %s (random weights, no download)", target)
        pipeline = build_tiny_pipeline()
        pipeline.save_pretrained(staging)
        save_tiny_ip_adapter(pipeline.unet, staging / TINY_IP_ADAPTER_FOLDER)
        (staging / STAGING_OWNER).unlink()
        staging.chmod(0o755)  # mkdtemp makes it private; a shared cache must stay readable
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "model_index.json").is_file():
                raise
            # Another process finished first; its copy is identical.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _byte_level_vocab() -> dict[str, int]:
    """A CLIP vocabulary with one token per byte (plus end-of-word forms) and no merges.

    CLIP's BPE works on GPT-2's byte-to-unicode alphabet; with every byte in the vocabulary any
    text tokenizes without unknown tokens, which is all a random-weight model needs.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codepoints = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codepoints.append(256 + extra)
            extra += 1
    alphabet = [chr(c) for c in codepoints]
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}


def byte_level_clip_tokenizer(max_length: int = 77) -> Any:  # a transformers CLIPTokenizer
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=_byte_level_vocab(), merges=[], model_max_length=max_length)


def build_tiny_pipeline() -> Any:  # a diffusers StableDiffusionPipeline
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = byte_level_clip_tokenizer()
    vocab = tokenizer.get_vocab()

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED)
    try:
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(vocab),
                bos_token_id=vocab["<|startoftext|>"],
                eos_token_id=vocab["<|endoftext|>"],
                pad_token_id=vocab["<|endoftext|>"],
                hidden_size=32,
                intermediate_size=37,
                num_attention_heads=4,
                num_hidden_layers=2,
                max_position_embeddings=77,
                projection_dim=32,
            )
        )
        unet = UNet2DConditionModel(
            sample_size=32,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
        )
        # Four resolution levels give the standard 8x VAE scale factor.
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(8, 16, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1,
            norm_num_groups=4,
            sample_size=256,
        )
    finally:
        torch.random.set_rng_state(generator_state)

    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_ip_adapter(unet: Any, directory: Path) -> None:
    """An IP-Adapter for `unet` with seeded random weights: `image_encoder/` and the weights."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    generator = torch.Generator("cpu").manual_seed(TINY_SEED + 1)
    state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED + 1)
    try:
        encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=32,
                intermediate_size=37,
                num_attention_heads=4,
                num_hidden_layers=2,
                image_size=32,
                patch_size=8,
                projection_dim=32,
            )
        )
    finally:
        torch.random.set_rng_state(state)
    encoder.save_pretrained(directory / "image_encoder")
    tokens, embedding = 4, encoder.config.projection_dim
    width = unet.config.cross_attention_dim

    def weights(*shape: int) -> torch.Tensor:
        # Large enough that an image prompt visibly changes the picture.
        return torch.randn(shape, generator=generator) * 0.5

    weights_by_key = {
        "image_proj.proj.weight": weights(width * tokens, embedding),
        "image_proj.proj.bias": torch.zeros(width * tokens),
        "image_proj.norm.weight": torch.ones(width),
        "image_proj.norm.bias": torch.zeros(width),
    }
    # diffusers numbers the cross-attention layers 1, 3, 5, ... in attn_processors order.
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        shape = unet.get_submodule(name.removesuffix(".processor")).to_k.weight.shape
        weights_by_key[f"ip_adapter.{key}.to_k_ip.weight"] = weights(*shape)
        weights_by_key[f"ip_adapter.{key}.to_v_ip.weight"] = weights(*shape)
        key += 2
    save_file(weights_by_key, str(directory / TINY_IP_ADAPTER_WEIGHTS))
