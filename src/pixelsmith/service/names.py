"""The OpenAI model names, and the rules each carries on the wire, whichever pipeline serves it.

A client that says `dall-e-3` expects dall-e-3's sizes, one image per call and a revised prompt;
one that says `gpt-image-1` expects base64 output and the GPT image quality tiers. A model's own
id follows the GPT image rules with the model's own sizes and accepts every quality name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The three step tiers of every model (its `steps` setting), and of OpenAI's `quality` field.
QualityTier = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class NameRules:
    family: str
    max_prompt_chars: int
    max_n: int
    qualities: tuple[str, ...]
    # None: the serving model's own sizes, plus `auto`.
    sizes: tuple[str, ...] | None
    default_response_format: str
    # What an omitted `size` means (OpenAI: auto for GPT image models, 1024x1024 for DALL-E).
    default_size: str = "auto"
    # dall-e-3 always rewrites prompts (vivid unless asked for natural).
    default_style: str | None = None


GPT_IMAGE_RULES = NameRules(
    family="gpt-image",
    max_prompt_chars=32000,
    max_n=10,
    qualities=("auto", "low", "medium", "high"),
    sizes=None,
    default_response_format="b64_json",
)
OWN_MODEL_RULES = NameRules(
    family="own",
    max_prompt_chars=32000,
    max_n=10,
    qualities=("auto", "low", "medium", "high", "standard", "hd"),
    sizes=None,
    default_response_format="b64_json",
)
DALL_E_2_RULES = NameRules(
    family="dall-e-2",
    max_prompt_chars=1000,
    max_n=10,
    qualities=("auto", "standard"),
    sizes=("256x256", "512x512", "1024x1024"),
    default_response_format="url",
    default_size="1024x1024",
)
DALL_E_3_RULES = NameRules(
    family="dall-e-3",
    max_prompt_chars=4000,
    max_n=1,
    qualities=("auto", "standard", "hd"),
    sizes=("1024x1024", "1792x1024", "1024x1792"),
    default_response_format="url",
    default_size="1024x1024",
    default_style="vivid",
)

_RULES_BY_NAME = {
    "gpt-image-1": GPT_IMAGE_RULES,
    "gpt-image-1-mini": GPT_IMAGE_RULES,
    "gpt-image-1.5": GPT_IMAGE_RULES,
    "dall-e-2": DALL_E_2_RULES,
    "dall-e-3": DALL_E_3_RULES,
}

# Every OpenAI name the server answers to: the default model serves those no model claims.
OPENAI_MODEL_NAMES = tuple(_RULES_BY_NAME)

# How each quality name maps onto the model's three step tiers.
QUALITY_TIERS: dict[str, QualityTier] = {
    "auto": "medium",
    "standard": "medium",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "hd": "high",
}

# dall-e-3 rewrites prompts; ours appends a style cue and reports it as revised_prompt.
STYLE_SUFFIXES = {
    "vivid": "vivid, hyper-real and dramatic, with rich saturated colour and striking lighting",
    "natural": "natural and realistic, with true-to-life colour and soft, even lighting",
}


def rules_for(model_name: str | None) -> NameRules:
    """Rules for the name a client sent. No name means GPT image rules on the default model."""
    if model_name is None:
        return GPT_IMAGE_RULES
    return _RULES_BY_NAME.get(model_name, OWN_MODEL_RULES)


def apply_style(prompt: str, style: str) -> str:
    return f"{prompt.rstrip().rstrip('.')}. Style: {STYLE_SUFFIXES[style]}."
