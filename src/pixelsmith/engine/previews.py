"""Previews of the image in progress, decoded from the latents of an unfinished run.

By default: a fixed linear map from latent channels to RGB. The factors are the widely used
"latent to RGB" approximations for each latent family (the same numbers ComfyUI and A1111 use
for their cheap previews): a 3-column matrix per latent channel, applied to the model's scaled
latents, then clamped to [-1, 1]. It costs a small matrix product at latent resolution; the
preview is then upscaled to the requested size.

With a configured tiny autoencoder (TAESD and its siblings, diffusers' AutoencoderTiny), the
latents go through its decoder instead: a real picture at full resolution, for about 1/18 of
the full VAE's work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

# Rows: latent channels; columns: R, G, B. Then an optional bias.
SD_FACTORS = [
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
]
SDXL_FACTORS = [
    [0.3651, 0.4232, 0.4341],
    [-0.2533, -0.0042, 0.1068],
    [0.1076, 0.1111, -0.0362],
    [-0.3165, -0.2492, -0.2188],
]
SDXL_BIAS = [0.1084, -0.0175, -0.0011]
SD3_FACTORS = [
    [-0.0922, -0.0175, 0.0749], [0.0311, 0.0633, 0.0954], [0.1994, 0.0927, 0.0458],
    [0.0856, 0.0339, 0.0902], [0.0587, 0.0272, -0.0496], [-0.0006, 0.1104, 0.0309],
    [0.0978, 0.0306, 0.0427], [-0.0042, 0.1038, 0.1358], [-0.0194, 0.0020, 0.0669],
    [-0.0488, 0.0130, -0.0268], [0.0922, 0.0988, 0.0951], [-0.0278, 0.0524, -0.0542],
    [0.0332, 0.0456, 0.0895], [-0.0069, -0.0030, -0.0810], [-0.0596, -0.0465, -0.0293],
    [-0.1448, -0.1463, -0.1189],
]  # fmt: skip
SD3_BIAS = [0.2394, 0.2135, 0.1925]
FLUX_FACTORS = [
    [-0.0346, 0.0244, 0.0681], [0.0034, 0.0210, 0.0687], [0.0275, -0.0668, -0.0433],
    [-0.0174, 0.0160, 0.0617], [0.0859, 0.0721, 0.0329], [0.0004, 0.0383, 0.0115],
    [0.0405, 0.0861, 0.0915], [-0.0236, -0.0185, -0.0259], [-0.0245, 0.0250, 0.1180],
    [0.1008, 0.0755, -0.0421], [-0.0515, 0.0201, 0.0011], [0.0428, -0.0012, -0.0036],
    [0.0817, 0.0765, 0.0749], [-0.1264, -0.0522, -0.1103], [-0.0280, -0.0881, -0.0499],
    [-0.1262, -0.0982, -0.0778],
]  # fmt: skip
FLUX_BIAS = [-0.0329, -0.0718, -0.0851]


def _factors_for(pipeline: Any, channels: int) -> tuple[list[list[float]], list[float] | None]:
    name = type(pipeline).__name__
    if channels == 16:
        if "Flux" in name:
            return FLUX_FACTORS, FLUX_BIAS
        return SD3_FACTORS, SD3_BIAS
    if channels == 4:
        if "XL" in name:
            return SDXL_FACTORS, SDXL_BIAS
        return SD_FACTORS, None
    # An unknown family: show the first three channels as a rough picture.
    identity = [[1.0 if row == column else 0.0 for column in range(3)] for row in range(channels)]
    return identity, None


def unpacked_latents(pipeline: Any, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(batch, channels, h, w) latents; FLUX-style pipelines keep them packed in 2x2 patches."""
    if latents.ndim == 3 and hasattr(pipeline, "_unpack_latents"):
        unpacked: torch.Tensor = pipeline._unpack_latents(
            latents, height, width, pipeline.vae_scale_factor
        )
        return unpacked
    return latents


def latents_to_images(
    pipeline: Any,
    latents: torch.Tensor,
    width: int,
    height: int,
    decoder: Any = None,
) -> list[Image.Image]:
    """One preview per image of the batch; `decoder` is an AutoencoderTiny or None."""
    latents = unpacked_latents(pipeline, latents, width, height)
    if decoder is not None:
        rgb = _tiny_decode(decoder, latents).float().cpu()
    else:
        latents = latents.float().cpu()
        factors, bias = _factors_for(pipeline, latents.shape[1])
        matrix = torch.tensor(factors, dtype=torch.float32)
        rgb = torch.einsum("bchw,cr->bhwr", latents, matrix)
        if bias is not None:
            rgb = rgb + torch.tensor(bias, dtype=torch.float32)
    pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    previews = [Image.fromarray(np.ascontiguousarray(image)) for image in pixels]
    return [
        image if image.size == (width, height) else image.resize((width, height))
        for image in previews
    ]


def _tiny_decode(decoder: Any, latents: torch.Tensor) -> torch.Tensor:
    """(batch, height, width, RGB) in [-1, 1]. The latents are scaled as the pipeline keeps
    them; undo that as the pipeline would if the tiny autoencoder were its VAE (drop-in TAESD
    use, which is what its scaling_factor and shift_factor describe)."""
    config = decoder.config
    parameter = next(decoder.parameters())
    latents = latents.to(device=parameter.device, dtype=parameter.dtype)
    latents = latents / config.scaling_factor + getattr(config, "shift_factor", 0.0)
    decoded: torch.Tensor = decoder.decode(latents).sample
    return decoded.permute(0, 2, 3, 1)


def preview_steps(total_steps: int, partial_images: int) -> tuple[int, ...]:
    """The step indices after which to send previews: spread over the run, never the last
    step (the final image follows it). Fewer steps than previews gives fewer previews."""
    if partial_images <= 0 or total_steps <= 1:
        return ()
    count = min(partial_images, total_steps - 1)
    steps = {round((index + 1) * total_steps / (count + 1)) - 1 for index in range(count)}
    return tuple(sorted(step for step in steps if 0 <= step < total_steps - 1))
