"""Image sizes: the one value type, the rules a model family draws by, and fitting an input's
size onto them. A request's size is parsed once, when it is planned, and a model's sizes when
its spec is built; from there on they travel as `ImageSize` values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ASCII digits only, and nothing after them: `\d` would take other scripts' digits ("٢٥٦") and
# `$` a trailing newline.
SIZE_PATTERN = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")
# The widest range any pipeline is configured with: multiples of 8 (the VAE's downscale factor).
MIN_MODEL_SIDE = 64
MAX_MODEL_SIDE = 4096


@dataclass(frozen=True)
class ImageSize:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def pixels(self) -> int:
        return self.width * self.height


def parse_size(text: str) -> ImageSize | None:
    """`WIDTHxHEIGHT` as an ImageSize, or None when the text is not of that form."""
    match = SIZE_PATTERN.fullmatch(text)
    if match is None:
        return None
    return ImageSize(int(match.group(1)), int(match.group(2)))


def model_size(text: str) -> ImageSize:
    """A size a model is configured to make; ValueError unless it is WIDTHxHEIGHT with sides
    that are multiples of 8 from 64 to 4096."""
    size = parse_size(text)
    if size is None:
        raise ValueError(f"size must look like WIDTHxHEIGHT, e.g. 1024x1024; got {text!r}")
    sides = (size.width, size.height)
    if any(side % 8 or not MIN_MODEL_SIDE <= side <= MAX_MODEL_SIDE for side in sides):
        raise ValueError(f"size sides must be multiples of 8 between 64 and 4096; got {text!r}")
    return size


@dataclass(frozen=True)
class SizeRules:
    """Which WIDTHxHEIGHT a family can make beyond its listed sizes: multiples of `multiple`
    (the VAE's downscale times the transformer's patch size), sides within [min_side, max_side],
    aspect ratio at most `max_aspect` either way."""

    multiple: int = 8
    min_side: int = 256
    max_side: int = 2048
    max_aspect: float = 3.0
    max_pixels: int | None = None

    def problem(self, width: int, height: int, *, grid: bool = True) -> str | None:
        """Why the family cannot make width x height, or None if it can. `grid=False` leaves
        the multiple out: a size off the grid can be made on it and cut to size."""
        if grid and (width % self.multiple or height % self.multiple):
            return f"both sides must be multiples of {self.multiple}"
        if min(width, height) < self.min_side or max(width, height) > self.max_side:
            return f"sides must be between {self.min_side} and {self.max_side} pixels"
        if max(width, height) / min(width, height) > self.max_aspect:
            return (
                f"the aspect ratio must be between 1:{self.max_aspect:g} and {self.max_aspect:g}:1"
            )
        if self.max_pixels is not None and width * height > self.max_pixels:
            return f"the image may have at most {self.max_pixels} pixels"
        return None

    def covering(self, size: ImageSize) -> ImageSize:
        """The smallest size on this grid that covers `size`: each side rounded up to the
        multiple, or down where up would pass the largest side."""

        def side(value: int) -> int:
            up = -(-value // self.multiple) * self.multiple
            return up if up <= self.max_side else value // self.multiple * self.multiple

        return ImageSize(side(size.width), side(size.height))


def snap_to_grid(width: int, height: int, rules: SizeRules | None, max_pixels: int) -> ImageSize:
    """An input's size as one the model can make: at most `max_pixels` (the model's largest
    listed size), the input's aspect ratio kept as far as the family allows, and the family's
    multiple and side limits (multiples of 8 within 64-4096 for a model with a fixed list)."""
    w, h = float(width), float(height)
    multiple = rules.multiple if rules else 8
    low, high = (rules.min_side, rules.max_side) if rules else (MIN_MODEL_SIDE, MAX_MODEL_SIDE)
    if rules is not None:  # bring the aspect ratio within the family's limit
        ratio = min(max(w / h, 1 / rules.max_aspect), rules.max_aspect)
        w, h = (w, w / ratio) if ratio >= 1 else (h * ratio, h)
    scale = min(1.0, (max_pixels / (w * h)) ** 0.5, high / max(w, h))
    scale = max(scale, low / min(w, h))  # a tiny input is enlarged
    snapped = []
    for side in (w, h):
        rounded = int(side * scale) // multiple * multiple
        snapped.append(
            min(high // multiple * multiple, max(-(-low // multiple) * multiple, rounded))
        )
    if rules is not None:  # rounding down may tip a 3:1 input over the limit: widen the short side
        short = 0 if snapped[0] < snapped[1] else 1
        while max(snapped) / snapped[short] > rules.max_aspect:
            snapped[short] += multiple
    return ImageSize(snapped[0], snapped[1])
