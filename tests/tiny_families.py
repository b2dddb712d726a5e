"""Tiny same-class pipelines of every model family pixelsmith names, built with seeded random
weights by the same builder as the architecture-only models (pixelsmith.engine.architectures),
and saved as diffusers directories so that tests load them like any local checkpoint.

Each has the real family's pipeline class, component classes and latent layout (4 or 16
channels, packed FLUX latents, learned-sigma PixArt outputs) at a few thousand parameters
per layer. Tokenizers are built locally: byte-level CLIP BPE and character-level T5 Unigram.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelsmith.engine.architectures import build_pipeline

CLIP_TOKENIZER = {"class": "CLIPTokenizer", "model_max_length": 77}
T5_TOKENIZER = {"class": "T5TokenizerFast", "model_max_length": 128}


def _clip(with_projection: bool = False) -> dict[str, Any]:
    return {
        "class": "CLIPTextModelWithProjection" if with_projection else "CLIPTextModel",
        "config": {
            "hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
            "num_hidden_layers": 2, "max_position_embeddings": 77, "projection_dim": 32,
        },
    }  # fmt: skip


T5 = {
    "class": "T5EncoderModel",
    "config": {"d_model": 32, "d_ff": 37, "d_kv": 8, "num_layers": 2, "num_heads": 4},
}


def _vae(latent_channels: int, **extra: Any) -> dict[str, Any]:
    return {
        "class": "AutoencoderKL",
        "config": {
            "in_channels": 3, "out_channels": 3, "latent_channels": latent_channels,
            "block_out_channels": [8, 16, 16, 16], "layers_per_block": 1, "norm_num_groups": 4,
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4, "sample_size": 256, **extra,
        },
    }  # fmt: skip


FLUX_VAE = _vae(
    16, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611
)
FLOW_MATCH = {"class": "FlowMatchEulerDiscreteScheduler", "config": {"shift": 1.0}}


def _flux(pipeline: str, guidance_embeds: bool) -> dict[str, Any]:
    return {
        "pipeline": pipeline,
        "components": {
            "tokenizer": CLIP_TOKENIZER,
            "tokenizer_2": T5_TOKENIZER,
            "text_encoder": _clip(),
            "text_encoder_2": T5,
            "transformer": {
                "class": "FluxTransformer2DModel",
                "config": {
                    "patch_size": 1,
                    "in_channels": 64,
                    "num_layers": 1,
                    "num_single_layers": 1,
                    "attention_head_dim": 16,
                    "num_attention_heads": 2,
                    "joint_attention_dim": 32,
                    "pooled_projection_dim": 32,
                    "axes_dims_rope": [4, 4, 8],
                    "guidance_embeds": guidance_embeds,
                },
            },  # fmt: skip
            "vae": FLUX_VAE,
            "scheduler": FLOW_MATCH,
        },
    }


# family name -> (preset it is served with, description)
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "sdxl": (
        "sdxl-turbo",
        {
            "pipeline": "StableDiffusionXLPipeline",
            "components": {
                "tokenizer": CLIP_TOKENIZER,
                "tokenizer_2": CLIP_TOKENIZER,
                "text_encoder": _clip(),
                "text_encoder_2": _clip(with_projection=True),
                "unet": {
                    "class": "UNet2DConditionModel",
                    "config": {
                        "sample_size": 32,
                        "block_out_channels": [32, 64],
                        "layers_per_block": 1,
                        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
                        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
                        "attention_head_dim": [2, 4],
                        "use_linear_projection": True,
                        "addition_embed_type": "text_time",
                        "addition_time_embed_dim": 8,
                        "transformer_layers_per_block": [1, 2],
                        # six 8-wide time embeddings and the 32-wide pooled text embedding
                        "projection_class_embeddings_input_dim": 80,
                        "cross_attention_dim": 64,
                        "norm_num_groups": 8,
                    },
                },  # fmt: skip
                "vae": _vae(4, scaling_factor=0.13025),
                "scheduler": {
                    "class": "EulerAncestralDiscreteScheduler",
                    "config": {"timestep_spacing": "trailing"},
                },
            },
        },
    ),
    "sd3": (
        "sd3.5-medium",
        {
            "pipeline": "StableDiffusion3Pipeline",
            "components": {
                "tokenizer": CLIP_TOKENIZER,
                "tokenizer_2": CLIP_TOKENIZER,
                "tokenizer_3": T5_TOKENIZER,
                "text_encoder": _clip(with_projection=True),
                "text_encoder_2": _clip(with_projection=True),
                "text_encoder_3": T5,
                "transformer": {
                    "class": "SD3Transformer2DModel",
                    "config": {
                        "sample_size": 32,
                        "patch_size": 2,
                        "in_channels": 16,
                        "out_channels": 16,
                        "num_layers": 1,
                        "attention_head_dim": 8,
                        "num_attention_heads": 4,
                        "caption_projection_dim": 32,
                        # T5's width; the two CLIP widths (32 + 32) pooled together
                        "joint_attention_dim": 32,
                        "pooled_projection_dim": 64,
                        "pos_embed_max_size": 96,
                    },
                },  # fmt: skip
                "vae": _vae(
                    16,
                    use_quant_conv=False,
                    use_post_quant_conv=False,
                    shift_factor=0.0609,
                    scaling_factor=1.5305,
                ),  # fmt: skip
                "scheduler": {"class": "FlowMatchEulerDiscreteScheduler", "config": {"shift": 3.0}},
            },
        },
    ),
    "flux-schnell": ("flux-schnell", _flux("FluxPipeline", guidance_embeds=False)),
    "flux-dev": ("flux-dev", _flux("FluxPipeline", guidance_embeds=True)),
    "pixart-sigma": (
        "pixart-sigma",
        {
            "pipeline": "PixArtSigmaPipeline",
            "components": {
                "tokenizer": T5_TOKENIZER,
                "text_encoder": T5,
                "transformer": {
                    "class": "PixArtTransformer2DModel",
                    "config": {
                        # sample_size 32: a 256-pixel model, so its 256 aspect-ratio bins apply
                        "sample_size": 32,
                        "num_layers": 1,
                        "patch_size": 2,
                        "attention_head_dim": 8,
                        "num_attention_heads": 3,
                        "caption_channels": 32,
                        "in_channels": 4,
                        "cross_attention_dim": 24,
                        "out_channels": 8,
                        "attention_bias": True,
                        "activation_fn": "gelu-approximate",
                        "num_embeds_ada_norm": 1000,
                        "norm_type": "ada_norm_single",
                        "norm_elementwise_affine": False,
                        "norm_eps": 1e-6,
                    },
                },  # fmt: skip
                "vae": _vae(4),
                "scheduler": {"class": "DPMSolverMultistepScheduler", "config": {}},
            },
        },
    ),
}


def save_tiny_family(name: str, directory: Path) -> Path:
    build_pipeline(FAMILIES[name][1]).save_pretrained(directory)
    return directory


def save_tiny_flux_kontext(directory: Path) -> Path:
    """FLUX.1 Kontext (instruction editing): FLUX.1's parts under FluxKontextPipeline."""
    build_pipeline(_flux("FluxKontextPipeline", guidance_embeds=True)).save_pretrained(directory)
    return directory
