"""What the service needs from whatever runs the jobs: the engine in this process, a fake in
unit tests, or a client of replicas elsewhere (pixelsmith.ray). Nothing about how they run."""

from __future__ import annotations

import asyncio
from typing import Protocol

from pixelsmith.engine import GenerationJob, GenerationOutput, ModelCapabilities
from pixelsmith.engine.registry import ModelRegistry, ModelSpec


class PlanningBackend(Protocol):
    """What planning a request needs: the models, and what each can do once loaded."""

    registry: ModelRegistry

    def capabilities(self, spec: ModelSpec) -> ModelCapabilities | None:
        """What the model can do, or None while it is not known (not loaded yet)."""
        ...


class NothingLoaded:
    """A PlanningBackend before any model has loaded (the CLI checks a request with it before
    it imports torch): the registry, and no capabilities known yet."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def capabilities(self, spec: ModelSpec) -> ModelCapabilities | None:
        return None


class ImageBackend(PlanningBackend, Protocol):
    def enqueue(self, spec: ModelSpec, job: GenerationJob) -> asyncio.Future[GenerationOutput]:
        """Queue `job`; the future gives its output. A backend that knows at once that there is
        no room raises RateLimitError here; one that learns it later (replicas elsewhere)
        fails the future, and `queued` says so. Cancelling the future drops the job if it has
        not started."""
        ...

    async def queued(self, output: asyncio.Future[GenerationOutput]) -> None:
        """Return once the job of `output` has a place in a queue, or raise why it has none
        (RateLimitError, ServiceUnavailableError): a stream must not start before."""
        ...


class ServingBackend(ImageBackend, Protocol):
    """An ImageBackend that an app serves: loaded and started with it, and watched by /ready
    and /metrics."""

    @property
    def loaded(self) -> bool: ...

    @property
    def max_queue_size(self) -> int: ...

    def load(self) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def queue_depths(self) -> dict[str, int]:
        """Jobs waiting per model, as last known."""
        ...

    def replica_counts(self) -> dict[str, int]:
        """Running replicas per model, as last known."""
        ...
