"""Loading diffusers pipelines: from the hub, a local directory, the built-in tiny model, or an
architecture-only model built with random weights. What runs them is `pipeline.py`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pixelsmith.engine.arch_catalog import is_architecture
from pixelsmith.engine.architectures import build_architecture
from pixelsmith.engine.config import SpeedOptions
from pixelsmith.engine.devices import dtype_name, resolve_device, resolve_dtype
from pixelsmith.engine.downloads import directory_size, human_size
from pixelsmith.engine.image_prompts import ImagePrompts
from pixelsmith.engine.pipeline import LoadedPipeline
from pixelsmith.engine.presets import unknown_model_message
from pixelsmith.engine.quiet import quiet_model_libraries
from pixelsmith.engine.registry import ModelSpec
from pixelsmith.engine.tiny import (
    TINY_IP_ADAPTER_FOLDER,
    TINY_IP_ADAPTER_WEIGHTS,
    ensure_tiny_model,
)
from pixelsmith.errors import ModelLoadError
from pixelsmith.settings import looks_like_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadOptions:
    """How every model is loaded (the engine's settings)."""

    cache_dir: Path
    offline: bool = False
    show_progress: bool = False  # a progress bar per denoising run (the CLI)
    speed: SpeedOptions = SpeedOptions()
    # Most images in one diffusers call (max_batch_size): drafts and GIF frames are split.
    max_call_images: int = 4


@dataclass(frozen=True)
class _Weights:
    """A pipeline built or downloaded, before pixelsmith's own settings are applied."""

    pipeline: Any
    device: torch.device
    dtype: torch.dtype
    from_cache_only: bool  # so that its tiny autoencoders come from the cache too


def _keep_prompts_out_of_the_log() -> None:
    """diffusers' pipelines log what a request did, a client's text among it (the part of a
    prompt a CLIP encoder cut off: "The following part of your input was truncated ...").
    Only their errors reach pixelsmith's log."""
    logging.getLogger("diffusers.pipelines").setLevel(logging.ERROR)


def load_pipeline(spec: ModelSpec, options: LoadOptions) -> LoadedPipeline:
    """Load `spec` with diffusers' own loader; raise ModelLoadError with advice on failure."""
    _keep_prompts_out_of_the_log()
    quiet_model_libraries()
    started = time.perf_counter()
    device, dtype = _placement(spec)
    if is_architecture(spec.source):
        logger.info(
            "building %s with random weights on %s (%s)", spec.id, device, dtype_name(dtype)
        )
        # Offloaded weights live in CPU memory; the offload hooks move them to the GPU.
        where = "cpu" if spec.cpu_offload != "none" else device
        weights = _Weights(build_architecture(spec.source, dtype, where), device, dtype, True)
    else:
        weights = _from_pretrained(spec, _location(spec, options), device, dtype, options)
    loaded = _finish_loading(spec, weights, options)
    logger.info("loaded %s in %.1f s", spec.id, time.perf_counter() - started)
    return loaded


def _placement(spec: ModelSpec) -> tuple[torch.device, torch.dtype]:
    """The device and precision the model runs in."""
    try:
        device = resolve_device(spec.device)
    except ValueError as exc:
        raise ModelLoadError(f"Could not load model {spec.id!r}: {exc}.") from exc
    requested = spec.dtype
    if requested == "auto" and device.type == "cuda" and spec.gpu_dtype in ("float16", "bfloat16"):
        # The family's known-good precision (FLUX's T5 overflows in float16, for one), unless
        # the GPU cannot do bfloat16.
        if spec.gpu_dtype == "float16" or torch.cuda.is_bf16_supported():
            requested = spec.gpu_dtype
    if spec.cpu_offload != "none" and device.type != "cuda":
        raise ModelLoadError(
            f"Could not load model {spec.id!r}: cpu_offload={spec.cpu_offload!r} moves weights "
            f"between CPU memory and a CUDA GPU, and the model's device is {device.type}. Use "
            "cpu_offload='none' there."
        )
    return device, resolve_dtype(requested, device)


def _location(spec: ModelSpec, options: LoadOptions) -> str | Path:
    """Where diffusers loads the model from: a local directory, or a hub id."""
    if spec.source == "tiny":
        return ensure_tiny_model(options.cache_dir)
    if looks_like_path(spec.source):
        location = Path(spec.source).expanduser()
        if not location.is_dir():
            raise ModelLoadError(
                f"Could not load model {spec.id!r}: the directory {str(location)!r} does not exist."
                " Point --model at a diffusers-format directory (one with model_index.json),"
                " a hub repo id, or use `--model tiny`."
            )
        return location
    if "/" not in spec.source:
        # Hub ids are org/name: a bare word is a mistyped built-in name, not a repo.
        raise ModelLoadError(
            unknown_model_message(spec.source) or f"Unknown model {spec.source!r}."
        )
    return spec.source


def _from_pretrained(
    spec: ModelSpec,
    location: str | Path,
    device: torch.device,
    dtype: torch.dtype,
    options: LoadOptions,
) -> _Weights:
    from diffusers import AutoPipelineForText2Image

    # How big, for a local load (a download shows the hub's own progress bar).
    size = f", {human_size(directory_size(location))}" if isinstance(location, Path) else ""
    logger.info(
        "loading model %s from %s on %s (%s%s)", spec.id, location, device, dtype_name(dtype), size
    )
    local_only = options.offline
    unreachable: str | None = None
    if isinstance(location, str) and not options.offline:
        # Ask the hub once, without retries, before diffusers does: its downloader retries
        # with back-off for half a minute before giving up on an unreachable hub.
        unreachable = _hub_problem(spec)
        if unreachable is not None:
            logger.warning(
                "the hub cannot serve %s (%s); trying the local cache", spec.source, unreachable
            )
            local_only = True
    try:
        pipeline = AutoPipelineForText2Image.from_pretrained(
            location,
            dtype=dtype,
            revision=spec.revision,
            variant=spec.variant,
            local_files_only=local_only,
        )
        if spec.cpu_offload == "none":
            pipeline.to(device)
    except Exception as exc:  # diffusers/hub raise many types; all mean "cannot load"
        raise ModelLoadError(
            _load_failure_message(spec, location, options.offline, unreachable, exc)
        ) from exc
    return _Weights(pipeline, device, dtype, local_only)


def _finish_loading(spec: ModelSpec, weights: _Weights, options: LoadOptions) -> LoadedPipeline:
    """What every pipeline gets once its weights are on the device, however it was made."""
    pipeline, device, dtype = weights.pipeline, weights.device, weights.dtype
    # The CLI shows a bar per denoising run; the server does not (one per request in its log).
    pipeline.set_progress_bar_config(disable=not options.show_progress, desc="denoising")
    tiny_vae = preview_decoder = None
    vae = getattr(pipeline, "vae", None)
    latent_channels = getattr(getattr(vae, "config", None), "latent_channels", None)
    if spec.tiny_vae:
        tiny_vae = _load_tiny_autoencoder(spec, spec.tiny_vae, latent_channels, weights)
        pipeline.vae = tiny_vae
    if spec.preview_decoder and spec.preview_decoder != spec.tiny_vae:
        preview_decoder = _load_tiny_autoencoder(
            spec, spec.preview_decoder, latent_channels, weights
        )
    image_prompts = _image_prompts(spec, weights, options) if spec.ip_adapter else None
    _speed_up(pipeline, options.speed)
    _save_memory(pipeline, spec, device)
    return LoadedPipeline(
        spec=spec,
        pipeline=pipeline,
        device=device,
        dtype=dtype,
        preview_decoder=preview_decoder or tiny_vae,
        image_prompts=image_prompts,
        max_call_images=options.max_call_images,
    )


def _image_prompts(spec: ModelSpec, weights: _Weights, options: LoadOptions) -> ImagePrompts:
    """The model's IP-Adapter (`tiny`: the one built beside the tiny model)."""
    assert spec.ip_adapter is not None
    if getattr(weights.pipeline, "unet", None) is None:
        raise ModelLoadError(
            f"Could not load model {spec.id!r}: ip_adapter needs a UNet model (SD 1.x/2.x, "
            "SDXL); for transformer models, use a pipeline that takes several images itself."
        )
    source: str | Path = spec.ip_adapter
    subfolder, weight_name = spec.ip_adapter_subfolder, spec.ip_adapter_weight_name
    if spec.ip_adapter == "tiny":
        source = ensure_tiny_model(options.cache_dir)
        subfolder, weight_name = TINY_IP_ADAPTER_FOLDER, TINY_IP_ADAPTER_WEIGHTS
    elif looks_like_path(spec.ip_adapter):
        source = Path(spec.ip_adapter).expanduser()
    try:
        return ImagePrompts(
            weights.pipeline,
            source,
            subfolder=subfolder,
            weight_name=weight_name,
            scale=spec.ip_adapter_scale,
            local_only=weights.from_cache_only,
        )
    except Exception as exc:  # hub, file and shape errors alike
        raise ModelLoadError(
            f"Could not load the IP-Adapter {spec.ip_adapter!r} for model {spec.id!r} "
            f"({_describe(exc)}). Name a hub id with ip_adapter_subfolder and "
            "ip_adapter_weight_name (e.g. h94/IP-Adapter, models, ip-adapter_sd15.safetensors) "
            "or a local directory that holds them."
        ) from exc


def _save_memory(pipeline: Any, spec: ModelSpec, device: torch.device) -> None:
    """The memory settings of a model, each diffusers' own switch."""
    vae = getattr(pipeline, "vae", None)
    if spec.vae_tiling and vae is not None:
        vae.enable_tiling()  # overlapping tiles, blended: bounded memory at any size
    if spec.vae_slicing and vae is not None:
        vae.enable_slicing()
    if spec.attention_slicing:
        pipeline.enable_attention_slicing()
    if spec.cpu_offload == "model":
        pipeline.enable_model_cpu_offload(device=device)
    elif spec.cpu_offload == "sequential":
        pipeline.enable_sequential_cpu_offload(device=device)


def _speed_up(pipeline: Any, speed: SpeedOptions) -> None:
    """Attention already runs through PyTorch's scaled_dot_product_attention (diffusers' default
    on torch 2), which picks flash or memory-efficient kernels where the GPU has them."""
    denoiser = getattr(pipeline, "unet", None) or getattr(pipeline, "transformer", None)
    if speed.channels_last:
        for module in (denoiser, getattr(pipeline, "vae", None)):
            if module is not None:
                module.to(memory_format=torch.channels_last)
    if speed.compile and denoiser is not None:
        # In place (nn.Module.compile): the module keeps its class, so edit pipelines made
        # with from_pipe share the compiled denoiser. Static shapes (dynamic=False): the
        # worker forms only a few batch sizes (worker.bucket_sizes), each compiled, and each
        # captured as a CUDA graph with reduce-overhead, at warm-up.
        denoiser.compile(mode=speed.compile_mode, dynamic=False)


def _load_tiny_autoencoder(
    spec: ModelSpec, source: str, model_channels: int | None, weights: _Weights
) -> Any:
    """A TAESD-class AutoencoderTiny from the hub or a local directory, on the model's device.
    When the model itself came from the cache (offline, or the hub unreachable), so does this."""
    from diffusers import AutoencoderTiny

    location = Path(source).expanduser() if looks_like_path(source) else source
    try:
        decoder = AutoencoderTiny.from_pretrained(
            location, local_files_only=weights.from_cache_only
        )
    except Exception as exc:  # hub and file errors alike
        raise ModelLoadError(
            f"Could not load the tiny autoencoder {source!r} for model {spec.id!r} "
            f"({_describe(exc)}). It must be a diffusers AutoencoderTiny: a hub id such as "
            "madebyollin/taesd, or a local directory with its config.json."
        ) from exc
    decoder_channels = decoder.config.latent_channels
    if model_channels is not None and decoder_channels != model_channels:
        raise ModelLoadError(
            f"The tiny autoencoder {source!r} takes {decoder_channels}-channel latents; model "
            f"{spec.id!r} makes {model_channels}-channel ones."
        )
    return decoder.to(device=weights.device, dtype=weights.dtype).eval()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _hub_problem(spec: ModelSpec) -> str | None:
    """Why the hub cannot serve `spec.source` right now, or None if it can."""
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(spec.source, revision=spec.revision, timeout=15)
    except Exception as exc:  # connection, auth, not-found: all reported the same way
        return _describe(exc)
    return None


def _load_failure_message(
    spec: ModelSpec,
    location: str | Path,
    offline: bool,
    hub_problem: str | None,
    exc: Exception,
) -> str:
    message = f"Could not load model {spec.id!r} from {str(location)!r}"
    if hub_problem is not None:
        message += (
            f": the Hugging Face hub could not be reached or refused the repo ({hub_problem}),"
            " and no copy is in the local cache. pixelsmith downloads hub models on first use;"
            " check the network, the repo id, and HF_TOKEN for gated models."
        )
    elif isinstance(location, str) and offline:
        message += f": it is not in the local hub cache and offline mode is on ({_describe(exc)})."
    else:
        message += f" ({_describe(exc)})."
    message += (
        " To run offline: use the built-in model with `--model tiny` (random weights: it draws"
        " noise), or point `--model` at a local diffusers directory, or download the weights"
        f" on a connected machine (`hf download {spec.source}`), copy the Hugging Face cache"
        " here and start with `--offline`."
    )
    return message
