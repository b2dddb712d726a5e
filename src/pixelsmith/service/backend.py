"""What the service needs from whatever runs the jobs: the engine in this process, a fake in
unit tests, or a client of replicas elsewhere. Three members, nothing about how they run."""

from __future__ import annotations

import asyncio
from typing import Protocol

from pixelsmith.engine import GenerationJob, GenerationOutput, ModelCapabilities
from pixelsmith.engine.registry import ModelRegistry, ModelSpec


class ImageBackend(Protocol):
    registry: ModelRegistry

    def capabilities(self, spec: ModelSpec) -> ModelCapabilities | None:
        """What the model can do, or None while it is not known (not loaded yet)."""
        ...

    def enqueue(self, spec: ModelSpec, job: GenerationJob) -> asyncio.Future[GenerationOutput]:
        """Queue `job` now, raising RateLimitError when there is no room; the future gives its
        output. Cancelling the future drops the job if it has not started."""
        ...
