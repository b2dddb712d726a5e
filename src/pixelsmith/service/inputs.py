"""Reading input images safely (uploads, data URLs, files): format sniffed from the bytes, size
and pixel limits, decompression bombs refused, EXIF orientation applied, alpha kept."""

from __future__ import annotations

import binascii
import io
import warnings
from dataclasses import dataclass

import pybase64
from PIL import Image, ImageOps

from pixelsmith.errors import InvalidRequestError, PayloadTooLargeError

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # OpenAI: each image under 50 MB
DALL_E_2_MAX_BYTES = 4 * 1024 * 1024
# Far beyond any size a model takes (4096x4096 = 16.8 MP): a file that decodes to more pixels
# than this is a decompression bomb, or at least not worth decoding.
MAX_PIXELS = 4096 * 4096
# All the images of one edit together (16 images of 4.2 MP, or 4 of the largest): about 270 MB
# decoded as RGBA at most, however small the files that carry them.
MAX_EDIT_PIXELS = 4 * MAX_PIXELS


class PixelBudget:
    """The pixels one request may decode across all its images. Small files can carry huge,
    flat images (a 2.5 MB PNG of 16 MP), so bytes alone do not bound memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.remaining = limit

    def take(self, pixels: int, param: str) -> None:
        if pixels > self.remaining:
            raise InvalidRequestError(
                f"Invalid file '{param}': the request's images have too many pixels in all "
                f"(more than {self.limit / 1e6:.0f} million).",
                param=param,
                code="image_too_large",
            )
        self.remaining -= pixels


MAGIC = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg"}


@dataclass(frozen=True)
class InputImages:
    """The images of an edit as they arrived, not decoded yet: their number is checked first,
    so that nothing is decoded for a request with too many images."""

    images: list[bytes]
    mask: bytes | None = None
    markup: bytes | None = None  # a transparent PNG drawn over the first image
    # How errors name the images: `image` (multipart, the files) or `images` (JSON, a list).
    param: str = "image"

    def param_of(self, index: int) -> str:
        return f"{self.param}[{index}]" if self.param == "images" else self.param


@dataclass(frozen=True)
class UploadedImage:
    image: Image.Image  # RGB or RGBA, EXIF orientation applied
    format: str  # png, jpeg or webp
    size_bytes: int

    @property
    def has_alpha(self) -> bool:
        return self.image.mode == "RGBA"


def sniff_format(data: bytes) -> str | None:
    """png, jpeg or webp from the first bytes; None for anything else. The part's
    Content-Type is never trusted: the official clients send application/octet-stream."""
    for magic, name in MAGIC.items():
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


# Pillow warns about images past its own bomb limit (89 million pixels) as it opens them; the
# check in read_image, right after the header is read, refuses far smaller ones (MAX_PIXELS).
# Set once here rather than with warnings.catch_warnings per call, which is not thread-safe.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def read_image(
    data: bytes,
    *,
    param: str,
    max_bytes: int = MAX_UPLOAD_BYTES,
    budget: PixelBudget | None = None,
) -> UploadedImage:
    """Decode one image, after its size in bytes, its format and its pixel count (from the
    header, against MAX_PIXELS and the request's `budget`) have been checked."""
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"Invalid file '{param}': {len(data) / 1e6:.1f} MB is over the "
            f"{max_bytes // (1024 * 1024)} MB limit.",
            param=param,
        )
    if not data:
        raise InvalidRequestError(
            f"Invalid file '{param}': the file is empty.", param=param, code="invalid_image"
        )
    kind = sniff_format(data)
    if kind is None:
        raise InvalidRequestError(
            f"Invalid file '{param}': unsupported image format. Supported formats are PNG, JPEG "
            "and WebP.",
            param=param,
            code="unsupported_file_mimetype",
        )
    try:
        opened = Image.open(io.BytesIO(data))  # reads the header only
        if opened.width * opened.height > MAX_PIXELS:
            raise Image.DecompressionBombError(f"{opened.width}x{opened.height}")
        if budget is not None:
            budget.take(opened.width * opened.height, param)
        opened.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidRequestError(
            f"Invalid file '{param}': the image has too many pixels (more than "
            f"{MAX_PIXELS // 1_000_000} million).",
            param=param,
            code="image_too_large",
        ) from None
    except InvalidRequestError:
        raise  # the request's pixel budget is spent
    except Exception:  # Pillow raises many types for corrupt or truncated data
        raise InvalidRequestError(
            f"Invalid file '{param}': the image data is corrupt or truncated.",
            param=param,
            code="invalid_image",
        ) from None
    image: Image.Image = ImageOps.exif_transpose(opened)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    image = image.convert("RGBA" if has_alpha else "RGB")
    return UploadedImage(image=image, format=kind, size_bytes=len(data))


def read_mask(data: bytes, *, size: tuple[int, int], param: str = "mask") -> Image.Image:
    """The mask as mode "L", 255 where the image is to be edited: OpenAI's masks mark the area
    to edit with fully transparent pixels (alpha 0)."""
    uploaded = read_image(data, param=param, max_bytes=DALL_E_2_MAX_BYTES)
    if uploaded.format != "png":
        raise InvalidRequestError(
            "Invalid file 'mask': the mask must be a PNG with an alpha channel.",
            param=param,
            code="invalid_image_format",
        )
    if uploaded.image.size != size:
        raise InvalidRequestError(
            f"Invalid file 'mask': the mask is {uploaded.image.width}x{uploaded.image.height} but "
            f"the image is {size[0]}x{size[1]}; they must be the same size.",
            param=param,
            code="invalid_image_dimensions",
        )
    if not uploaded.has_alpha:
        raise InvalidRequestError(
            "Invalid file 'mask': the mask has no alpha channel; fully transparent pixels mark "
            "the area to edit.",
            param=param,
            code="invalid_image_format",
        )
    alpha = uploaded.image.getchannel("A")
    return alpha.point(lambda value: 255 if value == 0 else 0)


def decode_data_url(url: str, param: str) -> bytes:
    """The bytes of a base64 `data:` URL (JSON edits, moderation inputs)."""
    header, _, data = url.partition(",")
    if not (header.startswith("data:") and header.endswith(";base64") and data):
        raise InvalidRequestError(
            f"Invalid '{param}': expected a base64 data: URL (data:image/png;base64,...).",
            param=param,
            code="invalid_image_url",
        )
    try:
        return pybase64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            f"Invalid '{param}': the data is not valid base64.",
            param=param,
            code="invalid_image_url",
        ) from None
