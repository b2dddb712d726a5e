"""Which architecture-only models exist (engine/arch_configs/*.json) and their descriptions:
plain JSON, no torch, so that checking a model name stays fast. architectures.py builds them."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def architecture_names() -> tuple[str, ...]:
    folder = resources.files("pixelsmith.engine").joinpath("arch_configs")
    names = (entry.name.removesuffix(".json") for entry in folder.iterdir())
    return tuple(sorted(name for name in names if name.endswith("-arch")))


def is_architecture(source: str) -> bool:
    return source in architecture_names()


def architecture_config(name: str) -> dict[str, Any]:
    folder = resources.files("pixelsmith.engine").joinpath("arch_configs")
    config: dict[str, Any] = json.loads(folder.joinpath(f"{name}.json").read_text())
    return config
