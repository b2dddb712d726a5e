"""What C2PA content credentials cost: the time to sign one 1024x1024 image in each format, and
the bytes the manifest adds, next to the time to encode it. Signs with the local authority
(ES256), as a server with no configured certificate does; no time-stamp authority (that adds a
network round trip per image).

    .venv/bin/python benchmarks/c2pa_cost.py [--runs 20] [--size 1024] [--frames 4]

Prints a table; docs/provenance.md records a run. Not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from pixelsmith.imaging import encode_animation, encode_image, trace_svg
from pixelsmith.provenance import ContentCredentials, ImageOrigin, SourceFile
from pixelsmith.provenance.certificates import local_credentials


def photo_like(size: int, seed: int = 0) -> Image.Image:
    """Smooth gradients with fine noise: compresses like a generated picture, not like a flat
    test card."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size)
    red, green = np.add.outer(ramp, ramp) / 2, np.outer(np.ones(size), ramp)
    pixels = np.stack([red, green, np.add.outer(ramp[::-1], ramp) / 2], axis=-1)
    pixels += rng.normal(0, 12, pixels.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def timed(work: Callable[[], bytes], runs: int) -> tuple[list[float], bytes]:
    times, result = [], b""
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=4, help="frames of the GIF")
    parser.add_argument("--svg", action="store_true", help="also an SVG (tracing is slow)")
    args = parser.parse_args()

    started = time.perf_counter()
    credentials = ContentCredentials(local_credentials(Path(tempfile.mkdtemp())))
    setup_ms = (time.perf_counter() - started) * 1000
    image = photo_like(args.size)
    frames = [photo_like(args.size, seed) for seed in range(args.frames)]
    made = ImageOrigin("sd-turbo")
    # An edit: the input (another 1024x1024 PNG) is read as the manifest's parent ingredient.
    source = SourceFile(encode_image(photo_like(args.size, 99), "png"), "png")
    edit = ImageOrigin("sd-turbo", inputs=(source,))
    cases: list[tuple[str, str, Callable[[], bytes], ImageOrigin]] = [
        ("png", "png", lambda: encode_image(image, "png"), made),
        ("jpeg q95", "jpeg", lambda: encode_image(image, "jpeg", 100), made),
        ("webp q100", "webp", lambda: encode_image(image, "webp", 100), made),
        ("webp q80", "webp", lambda: encode_image(image, "webp", 80), made),
        (f"gif {args.frames} frames", "gif", lambda: encode_animation(frames, 200), made),
        ("png, edit of a png", "png", lambda: encode_image(image, "png"), edit),
    ]
    if args.svg:
        cases.append(("svg low", "svg", lambda: trace_svg(image, "low"), made))

    print(
        f"C2PA signing cost at {args.size}x{args.size}, ES256, median of {args.runs} "
        f"(p95 in brackets); {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"first build (local authority made, one probe signature): {setup_ms:.0f} ms")
    print(f"{'format':<22}{'encode ms':>10}{'sign ms':>16}{'file':>12}{'added':>10}{'added %':>9}")
    for label, format, encode, origin in cases:
        encode_times, data = timed(encode, max(3, args.runs // 4))
        sign_times, signed = timed(
            lambda: credentials.sign(data, format, origin),  # type: ignore[arg-type]  # noqa: B023
            args.runs,
        )
        p95 = sorted(sign_times)[int(0.95 * (len(sign_times) - 1))]
        added = len(signed) - len(data)
        sign = f"{statistics.median(sign_times):.1f} ({p95:.1f})"
        print(
            f"{label:<22}{statistics.median(encode_times):>10.1f}{sign:>16}"
            f"{len(data) / 1e6:>10.2f}MB{added:>9}B{100 * added / len(data):>8.2f}%"
        )


if __name__ == "__main__":
    main()
