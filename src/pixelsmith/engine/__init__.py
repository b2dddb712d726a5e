"""Diffusers engine: model registry, loading, per-pipeline workers. Never imports the API layer."""

from pixelsmith.engine.engine import Engine
from pixelsmith.engine.jobs import GenerationJob, GenerationOutput
from pixelsmith.engine.registry import OPENAI_MODEL_NAMES, ModelRegistry, ModelSpec

__all__ = [
    "OPENAI_MODEL_NAMES",
    "Engine",
    "GenerationJob",
    "GenerationOutput",
    "ModelRegistry",
    "ModelSpec",
]
