"""Image prompts: the extra input images of an edit, for models that take one image natively.

Pipelines made to take several references (FLUX.2, Qwen-Image-Edit-Plus) get them all as their
`image` list. UNet families get the extra images through an IP-Adapter (diffusers'
`load_ip_adapter`): a CLIP vision encoder whose image embedding becomes extra tokens that the
UNet's cross-attention reads beside the prompt's.

Once loaded, diffusers' IP-Adapter wants image prompts on every call (and, given none, takes
the last prompt tokens for image tokens). So the adapter is switched on only for the calls
that carry image prompts, by swapping in its cross-attention processors and image projection
and restoring exactly what was there after the call; every other call runs the model as it
would without the adapter. (The adapter's cross-attention does not slice; with `compile`,
each switch costs a recompile.)
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
        before = dict(unet.attn_processors)
        projection = unet.encoder_hid_proj
        hid_type = unet.config.encoder_hid_dim_type
        pipeline.load_ip_adapter(
            source, subfolder=subfolder, weight_name=weight_name, local_files_only=local_only
        )
        pipeline.set_ip_adapter_scale(scale)
        # Only the cross-attention layers read image tokens; the others stay as they are.
        self._image_layers = {
            name: processor
            for name, processor in unet.attn_processors.items()
            if not name.endswith("attn1.processor")
        }
        self._projection = unet.encoder_hid_proj
        unet.set_attn_processor(before)
        unet.encoder_hid_proj = projection
        unet.config.encoder_hid_dim_type = hid_type

    @contextlib.contextmanager
    def enabled(self) -> Iterator[None]:
        """The adapter on for one call; afterwards the UNet is exactly as it was before (its
        processors, attention slicing's among them, and its projection)."""
        unet = self._unet
        processors = dict(unet.attn_processors)
        projection, hid_type = unet.encoder_hid_proj, unet.config.encoder_hid_dim_type
        unet.set_attn_processor(processors | self._image_layers)
        unet.encoder_hid_proj = self._projection
        unet.config.encoder_hid_dim_type = "ip_image_proj"
        try:
            yield
        finally:
            unet.set_attn_processor(processors)
            unet.encoder_hid_proj = projection
            unet.config.encoder_hid_dim_type = hid_type
