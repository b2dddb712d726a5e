"""What the engine is configured with: the fields of Settings it needs and nothing of HTTP.
Built from Settings at the edge (`pixelsmith.app.engine_config`); tests and other callers can
build one directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pixelsmith.settings import ModelConfig


@dataclass(frozen=True)
class SpeedOptions:
    """Optional speed-ups applied to every loaded pipeline (see Settings)."""

    channels_last: bool = False
    compile: bool = False


@dataclass(frozen=True)
class EngineConfig:
    models: tuple[ModelConfig, ...]
    # Names the first model answers to unless another model claims them (the public OpenAI
    # model names: the engine itself knows none).
    default_aliases: tuple[str, ...] = ()
    device: str = "auto"
    dtype: str = "auto"
    cache_dir: Path = field(default_factory=lambda: Path("~/.cache/pixelsmith").expanduser())
    offline: bool = False
    lazy_load: bool = False
    memory_budget_gb: float = 0.0
    warmup: Literal["auto", "on", "off"] = "auto"
    speed: SpeedOptions = SpeedOptions()
    max_queue_size: int = 64
    max_batch_size: int = 4
    batch_timeout: float = 0.0
