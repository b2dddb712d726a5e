"""What the engine is configured with: the fields of Settings it needs and nothing of HTTP.
Built from Settings at the edge (`pixelsmith.builders.engine_config`); tests and other callers
can build one directly."""

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
    compile_mode: str = "default"  # torch.compile's; reduce-overhead captures CUDA graphs


@dataclass(frozen=True)
class EngineConfig:
    """Every field has the meaning of the setting of the same name (settings.py, where the
    defaults live)."""

    models: tuple[ModelConfig, ...]
    device: str
    dtype: str
    cache_dir: Path
    offline: bool
    lazy_load: bool
    memory_budget_gb: float
    warmup: Literal["auto", "on", "off"]
    speed: SpeedOptions
    max_queue_size: int
    max_batch_size: int
    batch_timeout: float
    # Names the first model answers to unless another model claims them (the public OpenAI
    # model names: the engine itself knows none), and the names some of them follow (a dated
    # snapshot goes with the model that claims its base name).
    default_aliases: tuple[str, ...] = ()
    alias_bases: dict[str, str] = field(default_factory=dict)
