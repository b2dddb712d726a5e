"""Finishing generated images for the client: transparency, encoding, and for URL answers,
storage behind a signed URL. Blocking (CPU-bound encoding, disk): call it off the event loop."""

from __future__ import annotations

import pybase64
from PIL import Image

from pixelsmith.api.protocol import ImageData
from pixelsmith.imaging import encode_image
from pixelsmith.matting import Matting
from pixelsmith.service.plans import OutputOptions
from pixelsmith.storage import ImageStore


class OutputWriter:
    def __init__(self, store: ImageStore, matting: Matting) -> None:
        self.store = store
        self.matting = matting

    def encode(self, images: list[Image.Image], output: OutputOptions) -> list[bytes]:
        """The images in the requested format, with the requested transparency."""
        if output.transparent:
            images = [self.matting.matte(image) for image in images]
        elif output.keep_alpha is not None:
            images = [image.convert("RGB") for image in images]
            for image in images:
                image.putalpha(output.keep_alpha)
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
                stored = self.store.save(data, output.format)
                item.url = base_url.rstrip("/") + self.store.signed_path(stored)
            else:
                item.b64_json = b64(data)
            items.append(item)
        return items


def b64(data: bytes) -> str:
    return pybase64.b64encode(data).decode("ascii")
