"""Diffusers engine: model registry, loading, the loaded pipelines that run batches, and one
worker per model. Never imports the API or service layers.

    config.py    EngineConfig: what the engine is configured with (built from Settings)
    registry.py  ModelSpec per configured model; which names resolve to it
    presets.py   what is known about each model family; architectures.py, tiny.py build models
    loading.py   diffusers pipelines from the hub, a directory, or random weights
    pipeline.py  LoadedPipeline: one diffusers call per batch, previews, cancellation
    prompts.py   prompts fitted to the text encoder's window
    worker.py    a bounded queue and one thread per model, with dynamic batching
    engine.py    Engine: loading and unloading (memory budget), the workers, enqueue
    jobs.py      GenerationJob, GenerationOutput, ModelCapabilities: plain data
"""

from typing import TYPE_CHECKING, Any

from pixelsmith.engine.config import EngineConfig, SpeedOptions
from pixelsmith.engine.jobs import (
    GenerationJob,
    GenerationOutput,
    JobCancelled,
    ModelCapabilities,
    UnsupportedJobError,
)
from pixelsmith.engine.registry import ModelRegistry, ModelSpec

if TYPE_CHECKING:
    from pixelsmith.engine.engine import Engine


def __getattr__(name: str) -> Any:
    # Engine brings torch and diffusers (seconds to import): only what runs models needs it,
    # not the CLI checking its arguments or `pixelsmith --help`.
    if name == "Engine":
        from pixelsmith.engine.engine import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Engine",
    "EngineConfig",
    "GenerationJob",
    "GenerationOutput",
    "JobCancelled",
    "ModelCapabilities",
    "ModelRegistry",
    "ModelSpec",
    "SpeedOptions",
    "UnsupportedJobError",
]
