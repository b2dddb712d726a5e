"""Prompts longer than CLIP's window, read whole: the prompt's tokens are cut into windows of 75,
each window is encoded on its own (with its start and end tokens, as a short prompt is) and the
windows' embeddings are joined into one longer sequence, which the UNet's cross-attention reads
as it reads a short one. This is how the long-prompt support of A1111-style front ends works.

For SD 1.x/2.x the embedding is the text encoder's last hidden state; SDXL joins the penultimate
hidden states of its two encoders and takes the pooled embedding of the first window, as its own
`encode_prompt` does for a short prompt. The negative prompt (or the empty one) is read in as
many windows, so that both sides of classifier-free guidance have the same length.
"""

from __future__ import annotations

import math
from typing import Any

import torch

# CLIP reads 77 tokens: a start token, 75 of the prompt, an end token.
WINDOW_TOKENS = 75
# Past this many windows (1,200 tokens) a prompt is cut, visibly (revised_prompt).
MAX_WINDOWS = 16


def windows_for(content_tokens: int) -> int:
    """How many windows hold `content_tokens` tokens (special tokens aside)."""
    return max(1, math.ceil(content_tokens / WINDOW_TOKENS))


def reads_in_windows(pipeline: Any, parameters: frozenset[str]) -> bool:
    """Whether the pipeline is one whose CLIP-only prompt this module can read in windows."""
    if "prompt_embeds" not in parameters or getattr(pipeline, "text_encoder", None) is None:
        return False
    if getattr(pipeline, "tokenizer_3", None) is not None or "max_sequence_length" in parameters:
        return False  # T5-conditioned: read through T5's own longer window
    return getattr(pipeline, "tokenizer", None) is not None


def windowed_arguments(
    pipeline: Any,
    prompts: list[str],
    negatives: list[str | None],
    windows: int,
    *,
    guided: bool,
) -> dict[str, Any]:
    """prompt_embeds (and negative_prompt_embeds, SDXL's pooled ones) for `prompts`, each read
    in `windows` windows; they replace `prompt` and `negative_prompt` in the call."""
    device = getattr(pipeline, "_execution_device", pipeline.text_encoder.device)
    xl = getattr(pipeline, "text_encoder_2", None) is not None

    def embed(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not xl:
            return _encode(pipeline.tokenizer, pipeline.text_encoder, texts, windows, device)[
                0
            ], None
        first, _ = _encode(pipeline.tokenizer, pipeline.text_encoder, texts, windows, device, -2)
        second, pooled = _encode(
            pipeline.tokenizer_2, pipeline.text_encoder_2, texts, windows, device, -2
        )
        return torch.cat([first, second], dim=-1), pooled

    embeds, pooled = embed(prompts)
    arguments: dict[str, Any] = {"prompt_embeds": embeds}
    if pooled is not None:
        arguments["pooled_prompt_embeds"] = pooled
    if not guided:
        return arguments
    zeros = getattr(getattr(pipeline, "config", None), "force_zeros_for_empty_prompt", False)
    if xl and zeros and not any(negatives):
        # SDXL encodes "no negative prompt" as zeros, not as the empty string.
        arguments["negative_prompt_embeds"] = torch.zeros_like(embeds)
        assert pooled is not None
        arguments["negative_pooled_prompt_embeds"] = torch.zeros_like(pooled)
        return arguments
    negative, negative_pooled = embed([negative or "" for negative in negatives])
    arguments["negative_prompt_embeds"] = negative
    if negative_pooled is not None:
        arguments["negative_pooled_prompt_embeds"] = negative_pooled
    return arguments


def _encode(
    tokenizer: Any,
    encoder: Any,
    texts: list[str],
    windows: int,
    device: torch.device,
    hidden_state: int = -1,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(batch, windows * 77, width) embeddings, and the pooled embedding of each text's first
    window where the encoder has a projection (SDXL's second encoder)."""
    rows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)
        ids = ids["input_ids"]
        for window in range(windows):
            chunk = ids[window * WINDOW_TOKENS : (window + 1) * WINDOW_TOKENS]
            padding = [tokenizer.pad_token_id] * (WINDOW_TOKENS - len(chunk))
            rows.append([tokenizer.bos_token_id, *chunk, tokenizer.eos_token_id, *padding])
    with torch.inference_mode():
        output = encoder(torch.tensor(rows, device=device), output_hidden_states=hidden_state != -1)
    hidden = output.last_hidden_state if hidden_state == -1 else output.hidden_states[hidden_state]
    batch, width = len(texts), hidden.shape[-1]
    embeds = hidden.reshape(batch, windows * hidden.shape[1], width)
    pooled = None
    if hasattr(output, "text_embeds"):
        pooled = output.text_embeds.reshape(batch, windows, -1)[:, 0]
    return embeds, pooled
