"""Which pipeline answers to which model name.

Clients send a configured model's own id, one of its `aliases`, or a public name (OpenAI's
`gpt-image-1`, `dall-e-3`, ...: the caller passes them as `default_aliases`). The first
configured model serves every default alias that no other model claims.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pixelsmith.engine.config import EngineConfig
from pixelsmith.engine.presets import preset_for, resolve_source
from pixelsmith.errors import ModelNotFoundError
from pixelsmith.settings import ModelConfig, QualitySteps
from pixelsmith.sizes import ImageSize, SizeRules, model_size


@dataclass(frozen=True)
class ModelSpec:
    """A configured model with its preset filled in: everything needed to load and call it."""

    id: str
    source: str
    aliases: tuple[str, ...]
    revision: str | None
    variant: str | None
    device: str
    dtype: str
    sizes: tuple[ImageSize, ...]
    default_size: ImageSize
    steps: QualitySteps
    guidance_scale: float
    max_inference_steps: int
    max_prompt_chars: int
    variation_strength: float
    license: str
    preview_decoder: str | None = None
    tiny_vae: str | None = None
    family: str = "unknown"
    preset: str = "generic"
    # Beyond `sizes`, any WIDTHxHEIGHT these rules allow; None: only `sizes`.
    size_rules: SizeRules | None = None
    gpu_dtype: str = "auto"  # the preset's dtype, used on GPUs when dtype is auto
    cpu_offload: str = "none"
    vae_tiling: bool = False
    vae_slicing: bool = False
    attention_slicing: bool = False
    complexity: str = "low"  # what `complexity` means when a request leaves it out
    # Image prompts for edits with several images (None: none); see ModelConfig.
    ip_adapter: str | None = None
    ip_adapter_subfolder: str = ""
    ip_adapter_weight_name: str = "ip-adapter.safetensors"
    ip_adapter_scale: float = 0.6

    @classmethod
    def from_config(
        cls, config: ModelConfig, *, aliases: tuple[str, ...], device: str, dtype: str
    ) -> ModelSpec:
        preset = preset_for(config.source, config.preset)
        sizes = tuple(model_size(size) for size in (config.sizes or preset.sizes))
        default_size = model_size(config.default_size or preset.native_size)
        if default_size not in sizes:
            sizes = (default_size, *sizes)
        return cls(
            id=config.model_id,
            source=resolve_source(config.source),
            aliases=aliases,
            revision=config.revision,
            variant=config.variant,
            device=config.device or device,
            dtype=config.dtype or dtype,
            sizes=sizes,
            default_size=default_size,
            steps=(config.steps or preset.steps).filled(),
            guidance_scale=(
                config.guidance_scale
                if config.guidance_scale is not None
                else preset.guidance_scale
            ),
            max_inference_steps=config.max_inference_steps,
            variation_strength=config.variation_strength,
            max_prompt_chars=config.max_prompt_chars,
            license=config.license or preset.license,
            preview_decoder=config.preview_decoder,
            tiny_vae=config.tiny_vae,
            family=preset.family,
            preset=preset.name,
            # A model's own list of sizes is the whole list; otherwise the family's rules.
            size_rules=None if config.sizes else _size_rules(preset.size_rules, config),
            complexity=config.complexity,
            ip_adapter=_ip_adapter(config.ip_adapter, preset.ip_adapter),
            ip_adapter_subfolder=config.ip_adapter_subfolder,
            ip_adapter_weight_name=config.ip_adapter_weight_name,
            ip_adapter_scale=config.ip_adapter_scale,
            gpu_dtype=preset.dtype,
            cpu_offload=config.cpu_offload,
            vae_tiling=config.vae_tiling,
            vae_slicing=config.vae_slicing,
            attention_slicing=config.attention_slicing,
        )

    @property
    def max_pixels(self) -> int:
        """The pixels of the largest listed size: inputs of edits are scaled to fit it."""
        return max(size.pixels for size in self.sizes)


def _ip_adapter(configured: str | None, preset: str | None) -> str | None:
    if configured is None:
        return preset
    return None if configured == "none" else configured


def _size_rules(rules: SizeRules, config: ModelConfig) -> SizeRules:
    if config.size_multiple is None:
        return rules
    return replace(rules, multiple=max(rules.multiple, config.size_multiple))


class ModelRegistry:
    """Maps every accepted model name to its ModelSpec."""

    def __init__(
        self,
        configs: list[ModelConfig] | tuple[ModelConfig, ...],
        *,
        default_aliases: tuple[str, ...] = (),
        alias_bases: dict[str, str] | None = None,
        device: str = "auto",
        dtype: str = "auto",
    ) -> None:
        """`default_aliases` go to the first model, unless a model claims them or (per
        `alias_bases`, a name -> the name it follows) the name they follow."""
        if not configs:
            raise ValueError("at least one model must be configured")
        # Names taken explicitly, by an id or an alias, are not handed to the default model.
        claimed = {
            name: index
            for index, config in enumerate(configs)
            for name in (config.model_id, *(config.aliases or []))
        }
        given: list[list[str]] = [list(config.aliases or []) for config in configs]
        for name in default_aliases:
            if name not in claimed:
                base = (alias_bases or {}).get(name)
                given[claimed.get(base, 0) if base else 0].append(name)
        self.specs: list[ModelSpec] = [
            ModelSpec.from_config(config, aliases=tuple(aliases), device=device, dtype=dtype)
            for config, aliases in zip(configs, given, strict=True)
        ]
        self._by_name: dict[str, ModelSpec] = {}
        for spec in self.specs:
            for name in (spec.id, *spec.aliases):
                if name in self._by_name and self._by_name[name] is not spec:
                    raise ValueError(f"model name {name!r} is claimed by two models")
                self._by_name[name] = spec

    @property
    def default(self) -> ModelSpec:
        return self.specs[0]

    def names(self) -> list[str]:
        """Every name a client may send, own ids first."""
        return [spec.id for spec in self.specs] + [
            alias for spec in self.specs for alias in spec.aliases if alias != spec.id
        ]

    def resolve(self, name: str | None) -> ModelSpec:
        if name is None:
            return self.default
        try:
            return self._by_name[name]
        except KeyError:
            raise ModelNotFoundError(name, self.names()) from None


def registry_for(config: EngineConfig) -> ModelRegistry:
    """The registry of an engine's configuration: every model name checked, nothing loaded."""
    return ModelRegistry(
        config.models,
        default_aliases=config.default_aliases,
        alias_bases=config.alias_bases,
        device=config.device,
        dtype=config.dtype,
    )
