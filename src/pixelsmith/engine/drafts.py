"""Choosing among draft candidates (`complexity`): the draft with the best image score is the
one rendered in full.

The score needs no extra model: it rewards what a blurred, flat or washed-out draft lacks,
as the sum of three measures on [0, 1]-scaled pixels: contrast (the spread of luminance),
colourfulness (Hasler and Süsstrunk's measure on the opponent colour axes) and sharpness (the
spread of the luminance Laplacian). It knows nothing of the prompt; it prefers drafts with
clear, varied structure, which is what a final render at the full size can build on.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# A candidate's seed is the image's seed plus this many times its index: far apart, so
# candidates never share noise with the neighbouring images of the same request.
CANDIDATE_SEED_STRIDE = 1_000_003
MAX_SEED = 2**63 - 1


def candidate_seed(seed: int, index: int) -> int:
    return (seed + index * CANDIDATE_SEED_STRIDE) % (MAX_SEED + 1)


def draft_score(image: Image.Image) -> float:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    contrast = float(luma.std())
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = red - green, 0.5 * (red + green) - blue
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    laplacian = (
        -4 * luma[1:-1, 1:-1] + luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:]
    )
    sharpness = float(laplacian.std()) if laplacian.size else 0.0
    return contrast + colourfulness + sharpness
