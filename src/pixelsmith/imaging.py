"""Turning generated images into png/jpeg/webp/gif/svg bytes. CPU-bound: call it off the event
loop.

PNG goes through fpng (a one-pass encoder, about 20x faster than Pillow's zlib at level 1, for
files about 15% larger) when it is installed and the image is RGB or RGBA; the files are
ordinary PNGs that every decoder opens. JPEG uses Pillow's libjpeg-turbo. WebP uses method 2,
about twice as fast as Pillow's default 4. GIF animations use Pillow's palette quantiser per
frame. SVG is traced from the image by vtracer (colour regions fitted with splines), with as
much detail as the requested effort asks.
"""

from __future__ import annotations

import io
from typing import Literal

from PIL import Image

try:
    import fpng
except ImportError:  # a platform without an fpng wheel: Pillow encodes PNG
    fpng = None

OutputFormat = Literal["png", "jpeg", "webp", "gif", "svg"]

# libwebp's effort, 0-6: 2 encodes 1024x1024 in about half the time of the default 4, with
# files 5% (quality 80) to 35% (quality 100) larger.
WEBP_METHOD = 2

MEDIA_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",
}

# vtracer's settings per SVG effort: fewer, larger shapes at the low end (speckles up to this
# many pixels dropped, fewer colour bits, colour layers further apart), finer ones at the top.
TRACER_DETAIL: dict[str, dict[str, object]] = {
    "none": {"filter_speckle": 16, "color_precision": 3, "layer_difference": 64, "mode": "polygon"},
    "minimal": {"filter_speckle": 12, "color_precision": 4, "layer_difference": 48},
    "low": {"filter_speckle": 8, "color_precision": 5, "layer_difference": 32},
    "medium": {"filter_speckle": 4, "color_precision": 6, "layer_difference": 16},
    "high": {"filter_speckle": 2, "color_precision": 7, "layer_difference": 12},
    "xhigh": {"filter_speckle": 1, "color_precision": 8, "layer_difference": 8},
    "max": {"filter_speckle": 1, "color_precision": 8, "layer_difference": 4, "path_precision": 8},
}


def encode_image(image: Image.Image, output_format: OutputFormat, compression: int = 100) -> bytes:
    """Encode `image` as png, jpeg or webp. `compression` is OpenAI's `output_compression`
    (0-100, 100 = best quality) and applies to jpeg and webp only; PNG is lossless."""
    buffer = io.BytesIO()
    if output_format == "png":
        if fpng is not None and image.mode in ("RGB", "RGBA"):
            png: bytes = fpng.from_pil(image)
            return png
        # Level 1: files ~10% larger than Pillow's default level 6, several times faster.
        image.save(buffer, format="PNG", compress_level=1)
    elif output_format == "jpeg":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        # Pillow's JPEG quality tops out usefully at 95; 100 disables parts of the compressor
        # and doubles the size for no visible gain.
        image.save(buffer, format="JPEG", quality=max(1, min(compression, 95)))
    elif output_format == "webp":
        image.save(buffer, format="WEBP", quality=compression, method=WEBP_METHOD)
    else:  # gif and svg have their own encoders; the rest is refused when requests are checked
        raise ValueError(f"cannot encode one image as {output_format!r}")
    return buffer.getvalue()


def encode_animation(frames: list[Image.Image], frame_duration_ms: int) -> bytes:
    """A looping GIF of `frames`, each shown for `frame_duration_ms`."""
    palettes = [frame.convert("RGB").quantize(colors=256) for frame in frames]
    buffer = io.BytesIO()
    palettes[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=palettes[1:],
        duration=frame_duration_ms,
        loop=0,  # for ever
    )
    return buffer.getvalue()


def trace_svg(image: Image.Image, effort: str = "medium") -> bytes:
    """An SVG document traced from `image` (the optional `vtracer` package)."""
    import vtracer

    png = io.BytesIO()
    image.save(png, format="PNG", compress_level=1)
    document: str = vtracer.convert_raw_image_to_svg(
        png.getvalue(), img_format="png", colormode="color", **TRACER_DETAIL[effort]
    )
    return document.encode()
