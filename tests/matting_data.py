"""Synthetic cut-out images with known masks, for measuring transparent-background matting.

Each image is what a model asked for "the subject on a plain green background" tends to draw: a
green backdrop with a lighting gradient and noise, and one to three subjects (ellipses,
rectangles and triangles in random colours, with texture) whose anti-aliased edges blend into
it. The true mask is each pixel's subject coverage of at least one half.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def synthetic_cutout(seed: int, size: int = 256) -> tuple[Image.Image, np.ndarray]:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    green = np.array([rng.uniform(0.05, 0.3), rng.uniform(0.6, 0.9), rng.uniform(0.05, 0.3)])
    light = rng.uniform(-0.12, 0.12, 3)
    background = green + (xs[..., None] - 0.5) * light[0] + (ys[..., None] - 0.5) * light[1]
    background += ((xs - 0.5) ** 2 + (ys - 0.5) ** 2)[..., None] * light[2]
    # The subjects, drawn at 4x and reduced: anti-aliased coverage in [0, 1].
    scale = 4
    canvas = Image.new("L", (size * scale, size * scale), 0)
    colours = np.zeros((size, size, 3), np.float32)
    draw = ImageDraw.Draw(canvas)
    coverage = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(1, 4)):
        layer = Image.new("L", canvas.size, 0)
        shape = ImageDraw.Draw(layer)
        cx, cy = rng.uniform(0.2, 0.8, 2) * size * scale
        rx, ry = rng.uniform(0.08, 0.3, 2) * size * scale
        kind = rng.integers(0, 3)
        if kind == 0:
            shape.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
        elif kind == 1:
            shape.rectangle((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
        else:
            shape.polygon([(cx, cy - ry), (cx - rx, cy + ry), (cx + rx, cy + ry)], fill=255)
        piece = np.asarray(layer.resize((size, size), Image.Resampling.BOX), np.float32) / 255
        colour = rng.uniform(0, 1, 3)
        texture = colour + rng.normal(0, 0.05, (size, size, 3))
        colours = colours * (1 - piece[..., None]) + texture * piece[..., None]
        coverage = np.maximum(coverage, piece)
    del draw
    image = coverage[..., None] * colours + (1 - coverage[..., None]) * background
    image += rng.normal(0, 0.015, image.shape)
    pixels = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(pixels, "RGB"), coverage >= 0.5


def intersection_over_union(predicted: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else 1.0
