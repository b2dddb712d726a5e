"""Output encoding: fast, and standard files that keep every pixel (PNG) and alpha."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pixelsmith.imaging import encode_image


def noisy(mode: str, size: tuple[int, int] = (96, 64)) -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], channels), np.uint8)
    return Image.fromarray(pixels.squeeze(), mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_png_is_lossless_and_keeps_alpha(mode: str):
    image = noisy(mode)
    data = encode_image(image, "png")
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "PNG" and decoded.mode == mode
    assert np.array_equal(np.asarray(decoded), np.asarray(image))


def test_png_of_rgb_and_rgba_goes_through_fpng():
    # fpng marks its files with a private ancillary chunk that other decoders skip.
    assert b"fdEC" in encode_image(noisy("RGB"), "png")
    assert b"fdEC" in encode_image(noisy("RGBA"), "png")


@pytest.mark.parametrize(("fmt", "pil_format"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_lossy_formats_follow_output_compression(fmt, pil_format):
    image = noisy("RGB", (256, 256))
    small = encode_image(image, fmt, 10)
    large = encode_image(image, fmt, 90)
    assert Image.open(io.BytesIO(small)).format == pil_format
    assert len(small) < len(large)


def test_webp_keeps_alpha():
    image = noisy("RGBA")
    decoded = Image.open(io.BytesIO(encode_image(image, "webp", 100)))
    assert decoded.mode == "RGBA"
    assert np.array_equal(np.asarray(decoded)[..., 3], np.asarray(image)[..., 3])


def _blank_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "size",
    [(5000, 5000), (10000, 10000), (14000, 14000)],  # ours; past Pillow's warning; its error
)
def test_pixel_bombs_are_refused_from_their_header_on_any_thread(size):
    from concurrent.futures import ThreadPoolExecutor

    from pixelsmith.errors import InvalidRequestError
    from pixelsmith.service.inputs import read_image

    data = _blank_png(*size)

    def attempt(_: int) -> str:
        try:
            read_image(data, param="image")
        except InvalidRequestError as error:
            return str(error.code)
        return "accepted"

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(attempt, range(8))) == {"image_too_large"}
