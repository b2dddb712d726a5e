"""Tiny same-class pipelines of other model families, built with seeded random weights and
saved as diffusers directories, for tests that load them like any local model."""

from __future__ import annotations

from pathlib import Path

import torch

from pixelsmith.engine.tiny import _byte_level_vocab


def save_tiny_flux_kontext(directory: Path) -> Path:
    """FLUX.1 Kontext (instruction editing): CLIP + T5 text encoders, a 16-channel VAE, a
    one-block FluxTransformer2DModel; tokenizers built here, no download."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxKontextPipeline,
        FluxTransformer2DModel,
    )
    from tokenizers import Tokenizer, models
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        T5Config,
        T5EncoderModel,
        T5TokenizerFast,
    )

    torch.manual_seed(0)
    vocab = _byte_level_vocab()
    clip_tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab), bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
            hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
            max_position_embeddings=77, projection_dim=32,
        )
    )  # fmt: skip
    # A character-level Unigram vocabulary: T5's tokenizer class rebuilds a Unigram model.
    pieces = ["<pad>", "</s>", "<unk>", *(chr(c) for c in range(32, 127))]
    unigram = Tokenizer(
        models.Unigram(
            [(piece, 0.0 if i < 3 else -1.0) for i, piece in enumerate(pieces)], unk_id=2
        )
    )
    t5_tokenizer = T5TokenizerFast(
        tokenizer_object=unigram, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        extra_ids=0, model_max_length=512,
    )  # fmt: skip
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(pieces), d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
            decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
        )
    )  # fmt: skip
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(8, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=4, sample_size=256, use_quant_conv=False,
        use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
    )  # fmt: skip
    pipeline = FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=clip,
        tokenizer=clip_tokenizer, text_encoder_2=t5, tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )  # fmt: skip
    pipeline.save_pretrained(directory)
    return directory
