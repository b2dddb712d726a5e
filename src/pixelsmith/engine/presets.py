"""Named presets: what pixelsmith knows about each model family it supports and proves with a
test (tests/test_families.py), so that `--model flux-schnell` (or its hub id) just works.

A model's `source` may be a preset's name (the preset's hub id is loaded), a hub id that a
preset names, or anything else with `preset = "<name>"` in its config (a local copy of a preset
model). Anything set in a model's config overrides its preset. Unknown sources get
GENERIC_PRESET.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from pixelsmith.settings import QualitySteps
from pixelsmith.sizes import SizeRules

# The sizes OpenAI's GPT image models accept. Every preset allows them so that clients written
# for gpt-image-1 work unchanged; a model's native size is its default (`size=auto`).
OPENAI_GPT_IMAGE_SIZES = ("1024x1024", "1536x1024", "1024x1536")


@dataclass(frozen=True)
class ModelPreset:
    name: str
    source: str  # hub id (or a built-in name)
    family: str
    native_size: str
    sizes: tuple[str, ...]
    steps: QualitySteps
    guidance_scale: float
    license: str
    # The scheduler the checkpoint ships with and is used with (pixelsmith keeps it).
    scheduler: str
    dtype: str  # what it runs in on a GPU when dtype is auto; CPUs always use float32
    memory: str
    size_rules: SizeRules = SizeRules()
    # An IP-Adapter the preset loads by default (edits with several images): `tiny` is the
    # tiny model's own; the real ones are opt-in (models.md), their image encoders are large.
    ip_adapter: str | None = None


def _sizes(native: str, *more: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys((native, *more, *OPENAI_GPT_IMAGE_SIZES)))


SD = SizeRules(multiple=8, min_side=256, max_side=2048)
SDXL = SizeRules(multiple=8, min_side=512, max_side=2048)
DIT = SizeRules(multiple=16, min_side=256, max_side=2048)  # 8x VAE, 2x2 patches

GENERIC_PRESET = ModelPreset(
    name="generic",
    source="",
    family="unknown",
    native_size="1024x1024",
    sizes=_sizes("1024x1024", "512x512", "768x768"),
    steps=QualitySteps(low=15, medium=25, high=40),
    guidance_scale=7.0,
    license="see the model card",
    scheduler="the checkpoint's own",
    dtype="auto",
    memory="see the model card",
    size_rules=DIT,  # the strictest family rules: safe for any diffusers pipeline
)

PRESETS: dict[str, ModelPreset] = {
    preset.name: preset
    for preset in (
        ModelPreset(
            name="sd-turbo",
            scheduler="EulerDiscreteScheduler, trailing timesteps",
            source="stabilityai/sd-turbo",
            family="stable-diffusion",
            native_size="512x512",
            sizes=_sizes("512x512", "768x768", "768x512", "512x768"),
            steps=QualitySteps(low=1, medium=2, high=4),
            guidance_scale=0.0,  # distilled without classifier-free guidance
            license="Stability AI Community License (free below USD 1M annual revenue)",
            dtype="float16",
            memory="about 3 GB of GPU memory in float16; on two CPU cores about 6 s a step",
            size_rules=SD,
        ),
        ModelPreset(
            name="sd-1.5",
            scheduler="PNDMScheduler",
            source="stable-diffusion-v1-5/stable-diffusion-v1-5",
            family="stable-diffusion",
            native_size="512x512",
            sizes=_sizes("512x512", "768x768", "768x512", "512x768"),
            steps=QualitySteps(low=15, medium=25, high=40),
            guidance_scale=7.5,
            license="CreativeML OpenRAIL-M",
            dtype="float16",
            memory="about 3 GB of GPU memory in float16",
            size_rules=SD,
        ),
        ModelPreset(
            name="sdxl",
            scheduler="EulerDiscreteScheduler",
            source="stabilityai/stable-diffusion-xl-base-1.0",
            family="stable-diffusion-xl",
            native_size="1024x1024",
            sizes=_sizes("1024x1024", "768x768", "1152x896", "896x1152"),
            steps=QualitySteps(low=15, medium=25, high=40),
            guidance_scale=5.0,
            license="CreativeML Open RAIL++-M",
            # SDXL's VAE overflows in float16: bfloat16 has float32's range. A GPU without
            # bfloat16 gets float16, and diffusers decodes with the VAE in float32 (its
            # force_upcast), slower but right.
            dtype="bfloat16",
            memory="about 8 GB of GPU memory in bfloat16; VAE tiling helps above 1024x1024",
            size_rules=SDXL,
        ),
        ModelPreset(
            name="sdxl-turbo",
            scheduler="EulerAncestralDiscreteScheduler, trailing timesteps",
            source="stabilityai/sdxl-turbo",
            family="stable-diffusion-xl",
            native_size="512x512",
            sizes=_sizes("512x512", "768x768"),
            steps=QualitySteps(low=1, medium=2, high=4),
            guidance_scale=0.0,
            license="Stability AI Non-Commercial Research Community License (non-commercial)",
            dtype="bfloat16",  # as sdxl: its VAE overflows in float16
            memory="about 8 GB of GPU memory in bfloat16",
            size_rules=SDXL,
        ),
        ModelPreset(
            name="sd3.5-medium",
            scheduler="FlowMatchEulerDiscreteScheduler, shift 3.0",
            source="stabilityai/stable-diffusion-3.5-medium",
            family="stable-diffusion-3",
            native_size="1024x1024",
            sizes=_sizes("1024x1024", "768x768", "512x512"),
            steps=QualitySteps(low=20, medium=28, high=40),
            guidance_scale=4.5,
            license="Stability AI Community License (free below USD 1M annual revenue)",
            dtype="bfloat16",
            memory="about 20 GB of GPU memory in bfloat16 with the T5 encoder; model CPU "
            "offload fits 12 GB",
            size_rules=DIT,
        ),
        ModelPreset(
            name="sd3.5-large-turbo",
            scheduler="FlowMatchEulerDiscreteScheduler, shift 3.0",
            source="stabilityai/stable-diffusion-3.5-large-turbo",
            family="stable-diffusion-3",
            native_size="1024x1024",
            sizes=_sizes("1024x1024", "768x768"),
            steps=QualitySteps(low=2, medium=4, high=8),
            guidance_scale=0.0,
            license="Stability AI Community License (free below USD 1M annual revenue)",
            dtype="bfloat16",
            memory="about 28 GB of GPU memory in bfloat16; model CPU offload fits 16 GB",
            size_rules=DIT,
        ),
        ModelPreset(
            name="flux-schnell",
            scheduler="FlowMatchEulerDiscreteScheduler, shift 1.0",
            source="black-forest-labs/FLUX.1-schnell",
            family="flux",
            native_size="1024x1024",
            sizes=_sizes("1024x1024", "768x768", "512x512"),
            steps=QualitySteps(low=1, medium=2, high=4),
            guidance_scale=0.0,  # timestep-distilled: no guidance
            license="Apache-2.0",
            dtype="bfloat16",
            memory="about 34 GB of GPU memory in bfloat16; model CPU offload fits 24 GB, "
            "sequential offload much less (slowly)",
            size_rules=DIT,
        ),
        ModelPreset(
            name="flux-dev",
            scheduler="FlowMatchEulerDiscreteScheduler, resolution-dependent shift",
            source="black-forest-labs/FLUX.1-dev",
            family="flux",
            native_size="1024x1024",
            sizes=_sizes("1024x1024", "768x768", "512x512"),
            steps=QualitySteps(low=20, medium=28, high=50),
            guidance_scale=3.5,  # embedded (distilled) guidance, not classifier-free
            license="FLUX.1 [dev] Non-Commercial License (gated on the hub)",
            dtype="bfloat16",
            memory="about 34 GB of GPU memory in bfloat16; model CPU offload fits 24 GB",
            size_rules=DIT,
        ),
        ModelPreset(
            name="flux-kontext",
            scheduler="FlowMatchEulerDiscreteScheduler, resolution-dependent shift",
            source="black-forest-labs/FLUX.1-Kontext-dev",
            family="flux",
            native_size="1024x1024",
            sizes=_sizes("1024x1024", "768x768", "512x512"),
            steps=QualitySteps(low=20, medium=28, high=50),
            guidance_scale=2.5,
            license="FLUX.1 [dev] Non-Commercial License (gated on the hub)",
            dtype="bfloat16",
            memory="about 34 GB of GPU memory in bfloat16; model CPU offload fits 24 GB",
            size_rules=DIT,
        ),
        ModelPreset(
            name="pixart-sigma",
            scheduler="DPMSolverMultistepScheduler",
            source="PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
            family="pixart-sigma",
            native_size="1024x1024",
            sizes=_sizes("1024x1024", "768x768", "512x512"),
            steps=QualitySteps(low=14, medium=20, high=30),
            guidance_scale=4.5,
            license="CreativeML Open RAIL++-M (transformer); T5 encoder Apache-2.0",
            dtype="float16",
            memory="about 12 GB of GPU memory in float16, most of it the T5-XXL encoder",
            size_rules=DIT,
        ),
        # Built by pixelsmith itself; random weights, so every image is noise. Small sizes keep
        # tests and demos fast on a CPU.
        ModelPreset(
            name="tiny",
            scheduler="EulerDiscreteScheduler, trailing timesteps",
            source="tiny",
            family="stable-diffusion",
            native_size="256x256",
            sizes=(
                "64x64",
                "128x128",
                "256x256",
                "512x512",
                "256x128",
                "128x256",
                *OPENAI_GPT_IMAGE_SIZES,
            ),  # fmt: skip
            steps=QualitySteps(low=1, medium=2, high=4),
            guidance_scale=0.0,
            license="Apache-2.0 (generated by pixelsmith, random weights)",
            dtype="float32",
            memory="a few MB",
            size_rules=SizeRules(multiple=8, min_side=64, max_side=2048),
            ip_adapter="tiny",
        ),
    )
}
_BY_SOURCE = {preset.source: preset for preset in PRESETS.values()}


def find_preset(name_or_source: str) -> ModelPreset | None:
    """The preset called `name_or_source`, or the one whose hub id it is."""
    return PRESETS.get(name_or_source) or _BY_SOURCE.get(name_or_source)


def preset_for(source: str, preset: str | None = None) -> ModelPreset:
    """The preset a model gets: the one its config names, else the one its source matches."""
    from pixelsmith.engine.arch_catalog import architecture_config, is_architecture

    if preset is not None:
        found = find_preset(preset)
        if found is None:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        return found
    if is_architecture(source):  # random weights in a real model's shape: the real preset
        return PRESETS[architecture_config(source)["preset"]]
    return find_preset(source) or GENERIC_PRESET


def resolve_source(source: str) -> str:
    """What to load for `source`: a preset's name stands for its hub id."""
    preset = PRESETS.get(source)
    return preset.source if preset is not None else source


def unknown_model_message(source: str) -> str | None:
    """What is wrong with a model source that is a bare word but no model this package knows
    (hub ids are org/name), with the closest known name; None for a source that may load."""
    from pixelsmith.engine.arch_catalog import architecture_names
    from pixelsmith.settings import looks_like_path

    known = ["tiny", *(name for name in PRESETS if name != "tiny"), *architecture_names()]
    if source in known or "/" in source or looks_like_path(source):
        return None
    close = difflib.get_close_matches(source, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"Unknown model {source!r}.{hint} Known names: {', '.join(known)}. Or give a Hugging "
        "Face hub id (org/name, e.g. stabilityai/sd-turbo) or a local diffusers directory."
    )
