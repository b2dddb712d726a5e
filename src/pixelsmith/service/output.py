"""Finishing generated images for the client: transparency, encoding, content credentials
(a signed C2PA manifest in each image), and for URL answers, storage behind a signed URL.
Blocking (CPU-bound encoding and signing, disk): call it off the event loop."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pybase64
from PIL import Image

from pixelsmith import metrics
from pixelsmith.api.protocol import ImageData
from pixelsmith.imaging import encode_animation, encode_image, trace_svg
from pixelsmith.matting import Matting
from pixelsmith.provenance import ContentCredentials, GenerationFacts, ImageOrigin
from pixelsmith.service.plans import ImagePlan, OutputOptions
from pixelsmith.storage import ImageStore


class OutputWriter:
    def __init__(
        self,
        store: ImageStore,
        matting: Matting,
        credentials: ContentCredentials | None = None,
    ) -> None:
        self.store = store
        self.matting = matting
        self.credentials = credentials  # None: images leave unsigned (c2pa_enabled off)

    def encode(
        self,
        images: list[Image.Image],
        output: OutputOptions,
        frames: list[list[Image.Image]] | None = None,
        origins: Sequence[ImageOrigin] = (),
    ) -> list[bytes]:
        """The images (or for a GIF, their `frames`) in the requested format, at the requested
        size and transparency; signed with content credentials for their `origins` (one per
        image) when the writer has credentials."""
        started = time.perf_counter()
        encoded = self._encode(images, output, frames)
        seconds = (time.perf_counter() - started) / max(1, len(encoded))
        for _ in encoded:
            metrics.ENCODE_SECONDS.labels(output.format).observe(seconds)
        if self.credentials is not None and origins:
            sign = self.credentials.sign
            encoded = [
                sign(data, output.format, origin)
                for data, origin in zip(encoded, origins, strict=True)
            ]
        return encoded

    def _encode(
        self,
        images: list[Image.Image],
        output: OutputOptions,
        frames: list[list[Image.Image]] | None,
    ) -> list[bytes]:
        if output.format == "gif":
            assert frames is not None, "a GIF needs its frames"
            return [
                encode_animation([fitted(frame, output) for frame in animation],
                                 output.frame_duration_ms)
                for animation in frames
            ]  # fmt: skip
        images = [fitted(image, output) for image in images]
        if output.transparent:
            images = [self.matting.matte(image) for image in images]
        elif output.keep_alpha is not None:
            images = [image.convert("RGB") for image in images]
            for image in images:
                image.putalpha(output.keep_alpha)
        if output.format == "svg":
            return [trace_svg(image, output.svg_effort) for image in images]
        return [encode_image(image, output.format, output.compression) for image in images]

    def image_data(
        self,
        encoded: list[bytes],
        seeds: tuple[int, ...],
        output: OutputOptions,
        *,
        revised_prompt: str | None,
        base_url: str,
    ) -> list[ImageData]:
        """The `data` items of a response: base64, or signed URLs under `base_url`."""
        items = []
        for data, seed in zip(encoded, seeds, strict=True):
            item = ImageData(seed=seed, revised_prompt=revised_prompt)
            if output.response_format == "url":
                started = time.perf_counter()
                stored = self.store.save(data, output.format)
                metrics.UPLOAD_SECONDS.labels(self.store.kind).observe(
                    time.perf_counter() - started
                )
                item.url = self.store.url(stored, base_url)
            else:
                item.b64_json = b64(data)
            items.append(item)
        return items


def image_origins(plan: ImagePlan, seeds: Sequence[int | None]) -> list[ImageOrigin]:
    """What the content credentials of the plan's images (one per seed) say of them. Edits
    and variations are edits of their input; the generation facts are recorded only where
    the credentials are set to record them."""
    job = plan.job
    return [
        ImageOrigin(
            model=plan.spec.id,
            inputs=plan.input_files,
            inpainted=job.kind == "inpaint",
            generation=GenerationFacts(
                prompt=plan.prompt,
                negative_prompt=job.negative_prompt,
                seed=seed,
                num_inference_steps=job.num_inference_steps,
                guidance_scale=job.guidance_scale,
            ),
        )
        for seed in seeds
    ]


def fitted(image: Image.Image, output: OutputOptions) -> Image.Image:
    """`image` at the size asked for: a larger image made on the model's grid loses its
    margins (centred), a smaller one is scaled; an inpainting keeps its input outside the mask."""
    if output.size is None or image.size == (output.size.width, output.size.height):
        return image
    width, height = output.size.width, output.size.height
    if image.width >= width and image.height >= height:
        left, top = (image.width - width) // 2, (image.height - height) // 2
        image = image.crop((left, top, left + width, top + height))
    else:
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    if output.kept is not None:
        kept, mask = output.kept
        image = Image.composite(image, kept, mask)
    return image


def b64(data: bytes) -> str:
    return pybase64.b64encode(data).decode("ascii")
