"""Image prompts: the extra input images of an edit, for models that take one image natively.

Pipelines made to take several references (FLUX.2, Qwen-Image-Edit-Plus) get them all as their
`image` list. UNet families get the extra images through an IP-Adapter (diffusers'
`load_ip_adapter`): a CLIP vision encoder whose image embedding becomes extra tokens that the
UNet's cross-attention reads beside the prompt's.

Once loaded, diffusers' IP-Adapter wants image prompts on every call (and, given none, takes
the last prompt tokens for image tokens). So the adapter is switched on only for the calls
that carry image prompts, by swapping the UNet's attention processors and image projection;
every other call runs the model exactly as it was loaded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Pipelines whose `image` argument takes a list of reference images.
MULTI_REFERENCE_PIPELINES = frozenset({"Flux2Pipeline", "QwenImageEditPlusPipeline"})
# OpenAI's limit: up to 16 input images in one edit.
MAX_REFERENCES = 15


class ImagePrompts:
    """An IP-Adapter loaded into a pipeline's UNet, off until `enabled()`."""

    def __init__(
        self,
        pipeline: Any,
        source: str | Path,
        *,
        subfolder: str,
        weight_name: str,
        scale: float,
        local_only: bool,
    ) -> None:
        unet = pipeline.unet
        self._unet = unet
        self._plain = dict(unet.attn_processors)
        pipeline.load_ip_adapter(
            source, subfolder=subfolder, weight_name=weight_name, local_files_only=local_only
        )
        pipeline.set_ip_adapter_scale(scale)
        self._with_images = dict(unet.attn_processors)
        self._projection = unet.encoder_hid_proj
        self._switch(False)

    def _switch(self, on: bool) -> None:
        self._unet.set_attn_processor(dict(self._with_images if on else self._plain))
        self._unet.encoder_hid_proj = self._projection if on else None
        self._unet.config.encoder_hid_dim_type = "ip_image_proj" if on else None

    @contextlib.contextmanager
    def enabled(self) -> Iterator[None]:
        self._switch(True)
        try:
            yield
        finally:
            self._switch(False)
