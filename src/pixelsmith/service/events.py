"""The stream events of a streamed generation or edit, as the official clients parse them
(`ImageGenPartialImageEvent`, `ImageGenCompletedEvent`, `ImageEditPartialImageEvent`,
`ImageEditCompletedEvent`). Each event's `type` is also its SSE event name; errors are the
error envelope, which the SSE framing names `error`."""

from __future__ import annotations

import time
from typing import Any

from pixelsmith.api.protocol import ImageUsage
from pixelsmith.service.output import b64
from pixelsmith.service.plans import ImagePlan

StreamEvent = dict[str, Any]


class StreamEvents:
    """The events of one plan: `<prefix>.partial_image` per preview, `<prefix>.completed` per
    image, with the plan's size, quality, background and format on each."""

    def __init__(self, plan: ImagePlan) -> None:
        self._prefix = "image_edit" if plan.operation == "edit" else "image_generation"
        self._fields = {
            "created_at": int(time.time()),
            "size": str(plan.size),
            "quality": plan.quality_tier,
            "background": plan.output.background,
            "output_format": plan.output.format,
        }
        self._end_user = {"safety_identifier": plan.end_user} if plan.end_user else {}

    def partial_image(
        self, data: bytes, index: int, step: tuple[int, int] | None = None
    ) -> StreamEvent:
        # pixelsmith extension: the denoising step the preview shows, of how many.
        progress = {"step": step[0], "num_inference_steps": step[1]} if step else {}
        return {
            "type": f"{self._prefix}.partial_image",
            "b64_json": b64(data),
            **self._fields,
            "partial_image_index": index,
            **progress,
        }

    def completed(self, data: bytes, usage: ImageUsage, seed: int) -> StreamEvent:
        return {
            "type": f"{self._prefix}.completed",
            "b64_json": b64(data),
            **self._fields,
            # One image per event: its share of the usage, without OpenAI's output details.
            "usage": usage.model_dump(exclude={"output_tokens_details"}),
            **self._end_user,
            "seed": seed,  # pixelsmith extension, as in non-streamed responses
        }
