"""Animated output (GIF) from an image model, without a video model: a seeded walk through the
initial noise.

Each frame starts from noise on a small circle around the image's own noise,
`cos(r)·A + sin(r)·(cos(θ)·B + sin(θ)·C)` for θ going once round: A is the noise the seed gives
a still image, B and C two more draws from the same seed. The mix is again standard normal
noise (cos² + sin² = 1), so every frame is an image the model could have made; the small
radius `r` keeps them close to one another, so the subject stays while its details move, and
the walk ends where it began, so the GIF loops without a jump.
"""

from __future__ import annotations

import math
from typing import Any

import torch

# Radians from the image's own noise: small enough to keep the subject, large enough to move.
WALK_RADIUS = 0.4


def latent_shape(pipeline: Any, width: int, height: int) -> tuple[int, ...]:
    """The shape of one image's initial latents, as the pipeline's own `prepare_latents` makes
    them (FLUX packs them in 2x2 patches)."""
    scale = int(getattr(pipeline, "vae_scale_factor", 8))
    unet = getattr(pipeline, "unet", None)
    if unet is not None:  # SD 1.x/2.x, SDXL
        return (int(unet.config.in_channels), height // scale, width // scale)
    channels = int(pipeline.transformer.config.in_channels)
    if hasattr(pipeline, "_pack_latents"):  # FLUX: (h/2 * w/2) patches of 4 x channels
        rows, columns = height // (scale * 2), width // (scale * 2)
        return (rows * columns, channels)
    return (channels, height // scale, width // scale)  # SD3, PixArt


def noise_walk(seed: int, frames: int, shape: tuple[int, ...]) -> torch.Tensor:
    """(frames, *shape) unit-variance noise on a loop around the seed's own noise."""
    generator = torch.Generator("cpu").manual_seed(seed)
    own, first, second = (torch.randn(shape, generator=generator) for _ in range(3))
    walk = []
    for frame in range(frames):
        angle = 2 * math.pi * frame / frames
        around = math.cos(angle) * first + math.sin(angle) * second
        walk.append(math.cos(WALK_RADIUS) * own + math.sin(WALK_RADIUS) * around)
    return torch.stack(walk)
