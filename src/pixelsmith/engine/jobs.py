"""What the engine is asked to do and what it gives back. Plain data: no HTTP, no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GenerationJob:
    """One text-to-image call: `len(seeds)` images of one prompt, one seed per image."""

    prompt: str
    width: int
    height: int
    num_inference_steps: int
    guidance_scale: float
    seeds: tuple[int, ...]
    negative_prompt: str | None = None

    @property
    def num_images(self) -> int:
        return len(self.seeds)


@dataclass
class GenerationOutput:
    images: list[Any]  # PIL.Image.Image, one per seed, in seed order
    seeds: tuple[int, ...]
    prompt_tokens: int
    seconds: float = field(default=0.0)
