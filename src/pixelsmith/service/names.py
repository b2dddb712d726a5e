"""The OpenAI model names, and the rules each carries on the wire, whichever pipeline serves it.

A client that says `dall-e-3` expects dall-e-3's sizes, one image per call and a revised prompt;
one that says `gpt-image-2.5-flare` expects base64 output, any size on a 16-pixel grid and the
`xhigh` and `max` tiers. The names and their rules come from the official clients' own type
files (`openai` 3.57.0 for Python, 7.57.0 for npm; ../shared/openai-api-2026.md). Names that
OpenAI has retired (`gpt-image-1`, `dall-e-2`, `dall-e-3`) keep working here. A model's own id
follows the GPT image rules with the model's own sizes and accepts every quality name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from pixelsmith.sizes import SizeRules

# The step tiers of every model (its `steps` setting), and the values of the response's
# `quality`.
QualityTier = Literal["low", "medium", "high", "xhigh", "max"]

GPT_QUALITIES = ("auto", "low", "medium", "high")
# gpt-image-2 and later: any WIDTHxHEIGHT with both sides divisible by 16, an aspect ratio
# from 1:3 to 3:1, up to 3840x2160 (sizes above 2560x1440 are "experimental" on OpenAI).
GPT_IMAGE_2_SIZES = SizeRules(
    multiple=16, min_side=16, max_side=3840, max_aspect=3.0, max_pixels=3840 * 2160
)


@dataclass(frozen=True)
class NameRules:
    family: str
    max_prompt_chars: int
    max_n: int
    qualities: tuple[str, ...]
    # None: the serving model's own sizes and its family's rules, plus `auto`.
    sizes: tuple[str, ...] | None
    default_response_format: str
    # What an omitted `size` means (OpenAI: auto for GPT image models, 1024x1024 for DALL-E).
    default_size: str = "auto"
    # dall-e-3 always rewrites prompts (vivid unless asked for natural).
    default_style: str | None = None
    # gpt-image-2 and later: any size these rules allow, made within the serving model's limits.
    size_rules: SizeRules | None = None
    # The `input_fidelity` values the name takes; () refuses the parameter.
    input_fidelities: tuple[str, ...] = ("high", "low")
    markup: bool = False  # edits may carry a `markup` overlay
    # response_format="url" and style: "legacy ... unsupported for GPT image models" (2.x).
    refuses_legacy: bool = False
    animated_and_vector: bool = True  # output_format gif and svg
    max_input_images: int = 16  # input images an edit may have (the model may read fewer)

    @property
    def legacy(self) -> bool:
        """The retired dall-e names, whose errors have the older shape."""
        return self.family in ("dall-e-2", "dall-e-3")


GPT_IMAGE_1_RULES = NameRules(
    family="gpt-image-1",
    max_prompt_chars=32000,
    max_n=10,
    qualities=GPT_QUALITIES,
    sizes=None,
    default_response_format="b64_json",
)
GPT_IMAGE_2_RULES = replace(
    GPT_IMAGE_1_RULES,
    family="gpt-image-2",
    size_rules=GPT_IMAGE_2_SIZES,
    input_fidelities=(),  # "For gpt-image-2, omit this parameter."
    refuses_legacy=True,
)
# The 2.6 names have no capability notes in the clients; they are served like 2.5, the
# family they succeed.
GPT_IMAGE_2_5_RULES = replace(
    GPT_IMAGE_2_RULES,
    family="gpt-image-2.5",
    qualities=(*GPT_QUALITIES, "xhigh", "max"),
    input_fidelities=("high", "low"),
    markup=True,
)
OWN_MODEL_RULES = NameRules(
    family="own",
    max_prompt_chars=32000,
    max_n=10,
    qualities=(*GPT_QUALITIES, "xhigh", "max", "standard", "hd"),
    sizes=None,
    default_response_format="b64_json",
    markup=True,
)
DALL_E_2_RULES = NameRules(
    family="dall-e-2",
    max_prompt_chars=1000,
    max_n=10,
    qualities=("auto", "standard"),
    sizes=("256x256", "512x512", "1024x1024"),
    default_response_format="url",
    default_size="1024x1024",
    animated_and_vector=False,
    max_input_images=1,
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
    animated_and_vector=False,
    max_input_images=1,
)

# In the order of the clients' `ImageModel` list.
_RULES_BY_NAME = {
    "gpt-image-1.5": GPT_IMAGE_1_RULES,
    "gpt-image-2": GPT_IMAGE_2_RULES,
    "gpt-image-2-2026-04-21": GPT_IMAGE_2_RULES,
    "gpt-image-2.5-sunburst": GPT_IMAGE_2_5_RULES,
    "gpt-image-2.5-sunburst-2026-09-08": GPT_IMAGE_2_5_RULES,
    "gpt-image-2.5-flare": GPT_IMAGE_2_5_RULES,
    "gpt-image-2.5-flare-2026-09-08": GPT_IMAGE_2_5_RULES,
    "gpt-image-2.6-sunburst": GPT_IMAGE_2_5_RULES,
    "gpt-image-2.6-flare": GPT_IMAGE_2_5_RULES,
    "gpt-image-1": GPT_IMAGE_1_RULES,  # shut down by OpenAI on 2026-10-23
    "gpt-image-1-mini": replace(GPT_IMAGE_1_RULES, input_fidelities=("low",)),
    "chatgpt-image-latest": GPT_IMAGE_1_RULES,
    "dall-e-2": DALL_E_2_RULES,  # retired by OpenAI on 2026-05-12
    "dall-e-3": DALL_E_3_RULES,  # retired by OpenAI on 2026-05-12
}

# Every OpenAI name the server answers to: the default model serves those no model claims.
OPENAI_MODEL_NAMES = tuple(_RULES_BY_NAME)

# A dated snapshot (`gpt-image-2-2026-04-21`) of a known name follows its base name. ASCII
# digits, matched whole: `\d` takes other scripts' digits, and `$` a trailing newline.
_SNAPSHOT = re.compile(r"(?P<base>.+)-[0-9]{4}-[0-9]{2}-[0-9]{2}")

# How each quality name maps onto the model's step tiers.
QUALITY_TIERS: dict[str, QualityTier] = {
    "auto": "medium",
    "standard": "medium",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "hd": "high",
    "xhigh": "xhigh",
    "max": "max",
}

# dall-e-3 rewrites prompts; ours appends a style cue and reports it as revised_prompt.
STYLE_SUFFIXES = {
    "vivid": "vivid, hyper-real and dramatic, with rich saturated colour and striking lighting",
    "natural": "natural and realistic, with true-to-life colour and soft, even lighting",
}


def snapshot_base(name: str) -> str | None:
    """The known name that `name` is a dated snapshot of, or None."""
    match = _SNAPSHOT.fullmatch(name)
    if match and match.group("base") in _RULES_BY_NAME:
        return match.group("base")
    return None


# The listed snapshots and the names they follow: they go to the model that claims the base.
SNAPSHOT_BASES = {
    name: base for name in OPENAI_MODEL_NAMES if (base := snapshot_base(name)) is not None
}


def rules_for(model_name: str | None) -> NameRules:
    """Rules for the name a client sent. No name means GPT image rules on the default model."""
    if model_name is None:
        return GPT_IMAGE_1_RULES
    rules = _RULES_BY_NAME.get(model_name)
    if rules is None:
        base = snapshot_base(model_name)
        rules = _RULES_BY_NAME[base] if base else OWN_MODEL_RULES
    return rules


def apply_style(prompt: str, style: str) -> str:
    return f"{prompt.rstrip().rstrip('.')}. Style: {STYLE_SUFFIXES[style]}."
