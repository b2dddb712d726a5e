"""Transparent backgrounds (`background="transparent"`): turning a generated RGB image into RGBA
with a real alpha channel.

Matting is a small interface. The default needs no download: the prompt asks the model for the
subject on a plain chroma-key background (`prompt_suffix`), and `KeyedBackgroundMatting` keys
that background out. It fits the background's colour as a smooth field over the image from its
border (generated backdrops have lighting gradients), ramps alpha with the distance from that
field, removes specks, and takes the background's colour back out of semi-transparent edges
(despill). `SegmentationMatting` uses a configured transformers image-segmentation model
(a background-removal model, for instance) instead.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)


class Matting(Protocol):
    # Appended to the prompt so that the model draws something this matting can cut out.
    prompt_suffix: str

    def matte(self, image: Image.Image) -> Image.Image:
        """`image` as RGBA, its background transparent."""
        ...


def _quadratic_terms(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], axis=-1)


class KeyedBackgroundMatting:
    prompt_suffix = (
        ", the subject alone and centered, isolated on a plain flat solid bright green "
        "chroma-key background, no shadows, no scenery"
    )

    def __init__(self, *, border_fraction: float = 0.03, speck_fraction: float = 0.0005) -> None:
        self.border_fraction = border_fraction
        self.speck_fraction = speck_fraction

    def background_field(self, pixels: np.ndarray) -> tuple[np.ndarray, float]:
        """The background colour at every pixel, fitted (least squares, quadratic in x and y)
        to the image's border, and the border's residual noise."""
        height, width, _ = pixels.shape
        band = max(1, round(min(height, width) * self.border_fraction))
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        xs, ys = xs / max(width - 1, 1), ys / max(height - 1, 1)
        border = np.zeros((height, width), dtype=bool)
        border[:band], border[-band:], border[:, :band], border[:, -band:] = True, True, True, True
        terms = _quadratic_terms(xs[border], ys[border])
        samples = pixels[border]
        # Subjects may cover part of the border: start from the border's most common colour
        # (coarse histogram), fit to the pixels near it, then refit to those the fit explains.
        bins = np.minimum((samples * 8).astype(np.int32), 7)
        codes = bins[:, 0] * 64 + bins[:, 1] * 8 + bins[:, 2]
        dominant = samples[codes == np.bincount(codes).argmax()].mean(axis=0)
        keep = np.linalg.norm(samples - dominant, axis=1) < 0.2
        coefficients = np.zeros((terms.shape[1], 3), dtype=np.float32)
        coefficients[0] = dominant
        residual = np.linalg.norm(samples - dominant, axis=1)
        for _ in range(3):
            if keep.sum() < terms.shape[1] * 4:
                break
            coefficients, *_ = np.linalg.lstsq(terms[keep], samples[keep], rcond=None)
            residual = np.linalg.norm(samples - terms @ coefficients, axis=1)
            spread = float(np.median(residual[keep]))
            keep = residual <= max(spread * 4.0, 0.03)
        residual = residual[keep] if keep.any() else residual
        field = _quadratic_terms(xs, ys) @ coefficients
        return field.astype(np.float32), float(np.percentile(residual, 90))

    def alpha(self, image: Image.Image) -> np.ndarray:
        """Alpha in [0, 1] for every pixel of `image`."""
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return self._alpha(pixels, *self.background_field(pixels))

    def _alpha(self, pixels: np.ndarray, field: np.ndarray, noise: float) -> np.ndarray:
        # Fully transparent up to a little above the backdrop's own noise, then a linear ramp:
        # soft edges stay soft.
        distance = np.linalg.norm(pixels - field, axis=-1)
        low = max(0.06, noise * 1.5)
        high = low + 0.12
        alpha = np.clip((distance - low) / (high - low), 0.0, 1.0)
        return self._without_specks(alpha)

    def _without_specks(self, alpha: np.ndarray) -> np.ndarray:
        """Drop small islands of foreground in the background and fill small holes in the
        subject: noise, not content."""
        from scipy import ndimage

        limit = max(4, int(alpha.size * self.speck_fraction))
        for value, region in ((0.0, alpha >= 0.5), (1.0, alpha < 0.5)):
            labels, count = ndimage.label(region)
            if count == 0:
                continue
            sizes = np.bincount(labels.ravel())
            small = sizes < limit
            small[0] = False  # label 0 is the other region
            alpha[small[labels]] = value
        return alpha

    def matte(self, image: Image.Image) -> Image.Image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        field, noise = self.background_field(rgb)
        alpha = self._alpha(rgb, field, noise)
        # Despill: an edge pixel is alpha * subject + (1 - alpha) * background; recover the
        # subject's colour so no green fringe shows on a new backdrop.
        partial = (alpha > 0.0) & (alpha < 1.0)
        subject = rgb.copy()
        a = alpha[partial][:, None]
        subject[partial] = np.clip((rgb[partial] - (1.0 - a) * field[partial]) / a, 0.0, 1.0)
        rgba = np.dstack([subject, alpha])
        return Image.fromarray((rgba * 255.0 + 0.5).astype(np.uint8), "RGBA")


class SegmentationMatting:
    """A transformers image-segmentation model: background-removal models give one mask;
    semantic models give one per label, and every label but the background-like ones is
    kept."""

    prompt_suffix = ", the subject alone and centered on a plain background"

    BACKGROUND_LABELS = frozenset({"background", "bg", "wall", "sky", "floor"})

    def __init__(self, model: str, *, local_only: bool = False) -> None:
        import torch
        from transformers import pipeline

        # Offline: only the local cache is tried, through the hub library's own switch. On the
        # first GPU when there is one.
        self._segment: Any = pipeline(
            "image-segmentation",
            model=model,
            device=0 if torch.cuda.is_available() else -1,
            local_files_only=local_only,
        )

    def matte(self, image: Image.Image) -> Image.Image:
        segments = self._segment(image.convert("RGB"))

        def mask(segment: dict[str, Any]) -> np.ndarray:
            layer = segment["mask"].convert("L").resize(image.size)
            return np.asarray(layer, dtype=np.float32)

        def is_background(segment: dict[str, Any]) -> bool:
            return str(segment.get("label", "")).lower() in self.BACKGROUND_LABELS

        subject = [mask(segment) for segment in segments if not is_background(segment)]
        if subject:
            alpha = np.maximum.reduce(subject)
        elif segments:  # only background found: everything else is the subject
            alpha = 255.0 - np.maximum.reduce([mask(segment) for segment in segments])
        else:
            alpha = np.zeros(image.size[::-1], np.float32)
        rgba = image.convert("RGB")
        rgba.putalpha(Image.fromarray(alpha.astype(np.uint8), "L"))
        return rgba


def build_matting(model: str | None, *, offline: bool = False) -> Matting:
    if model:
        logger.info("transparent backgrounds: segmentation model %s", model)
        return SegmentationMatting(model, local_only=offline)
    return KeyedBackgroundMatting()
