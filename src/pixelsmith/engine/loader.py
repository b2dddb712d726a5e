"""Loading diffusers pipelines from the hub, a local directory, or the built-in tiny model."""

from __future__ import annotations

import copy
import inspect
import logging
import math
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from pixelsmith.engine.architectures import build_architecture, is_architecture
from pixelsmith.engine.devices import dtype_name, resolve_device, resolve_dtype
from pixelsmith.engine.jobs import GenerationJob, GenerationOutput, JobCancelled, JobKind
from pixelsmith.engine.previews import latents_to_images, preview_steps
from pixelsmith.engine.registry import ModelSpec
from pixelsmith.engine.tiny import ensure_tiny_model
from pixelsmith.errors import ModelLoadError
from pixelsmith.settings import looks_like_path

logger = logging.getLogger(__name__)


@dataclass
class LoadedPipeline:
    """A pipeline on its device. Only its worker thread may call `run`: diffusers pipelines
    keep per-call state on the object (scheduler timesteps, progress bar) and are not
    thread-safe."""

    spec: ModelSpec
    pipeline: Any
    device: torch.device
    dtype: torch.dtype
    call_parameters: frozenset[str] = field(default_factory=frozenset)
    # A tiny autoencoder for stream previews; None: the linear latent-to-RGB projection.
    preview_decoder: Any = None
    warmup_seconds: float | None = None  # set when the engine warmed the model up
    _validation_tokenizer: tuple[Any, int] | None = None
    _tokenizer_lock: threading.Lock = field(default_factory=threading.Lock)
    # Image-to-image and inpainting pipelines made from this one with diffusers' from_pipe:
    # the same modules (weights) under another pipeline class, so memory does not double.
    _derived: dict[str, Any] = field(default_factory=dict)

    def accepts(self, argument: str) -> bool:
        return argument in self.call_parameters

    @property
    def weight_bytes(self) -> int:
        """Memory the pipeline's weights take (edit pipelines share them)."""
        seen: set[int] = set()
        total = 0
        for component in self.pipeline.components.values():
            if isinstance(component, torch.nn.Module):
                for tensor in (*component.parameters(), *component.buffers()):
                    if tensor.data_ptr() not in seen:
                        seen.add(tensor.data_ptr())
                        total += tensor.numel() * tensor.element_size()
        return total

    @property
    def edits_by_instruction(self) -> bool:
        """Instruction-editing pipelines (FLUX.1 Kontext, Qwen-Image-Edit) take the input image
        as a reference in their own call, with no image-to-image strength."""
        return "image" in self.call_parameters and "strength" not in self.call_parameters

    def supports(self, kind: JobKind) -> bool:
        if self.edits_by_instruction:
            return True
        try:
            self.pipeline_for(kind)
        except ValueError:
            return False
        return True

    def pipeline_for(self, kind: JobKind) -> Any:
        """The pipeline that runs `kind`; raises ValueError if diffusers has none for it."""
        if kind == "text-to-image":
            return self.pipeline
        if kind not in self._derived:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

            auto = AutoPipelineForInpainting if kind == "inpaint" else AutoPipelineForImage2Image
            derived = auto.from_pipe(self.pipeline)
            derived.set_progress_bar_config(**getattr(self.pipeline, "_progress_bar_config", {}))
            self._derived[kind] = derived
        return self._derived[kind]

    def _prompt_tokenizer(self) -> tuple[Any, int] | None:
        """A private copy of the tokenizer of the text encoder that carries the prompt, and how
        many tokens it reads (its special tokens included). T5-conditioned pipelines (FLUX,
        SD3, PixArt) read the prompt through T5 up to `max_sequence_length`; CLIP-conditioned
        ones (SD, SDXL) read 77 tokens.

        A copy: validation runs on request threads while the worker's pipeline tokenizes, and
        a fast tokenizer's settings are shared, mutable state."""
        if self._validation_tokenizer is not None:
            return self._validation_tokenizer
        pipeline = self.pipeline
        found: tuple[Any, int] | None = None
        tokenizers = [getattr(pipeline, name, None) for name in ("tokenizer_3", "tokenizer_2")]
        if "max_sequence_length" in self.call_parameters:
            default = inspect.signature(type(pipeline).__call__).parameters["max_sequence_length"]
            for tokenizer in (*tokenizers, getattr(pipeline, "tokenizer", None)):
                if tokenizer is not None and "T5" in type(tokenizer).__name__:
                    found = (tokenizer, int(default.default))
                    break
        if found is None and getattr(pipeline, "tokenizer", None) is not None:
            found = (pipeline.tokenizer, int(pipeline.tokenizer.model_max_length))
        if found is not None:
            found = (copy.deepcopy(found[0]), found[1])
            self._validation_tokenizer = found
        return found

    def fit_prompt(self, text: str, suffix: str = "") -> tuple[str, str, int]:
        """(the part of `text` the model reads, the part of `suffix` it reads, their token
        count). A prompt longer than the text encoder's window is cut at a token boundary, so
        that nothing is dropped silently. `suffix` (the server's own addition) gets at most
        half the window: the client's prompt comes first."""
        with self._tokenizer_lock:
            found = self._prompt_tokenizer()
            if found is None:
                return text, suffix, len((text + suffix).split())
            tokenizer, window = found

            def count(value: str) -> int:
                return len(tokenizer(value, truncation=False, verbose=False)["input_ids"])

            total = count(text + suffix)
            if total <= window:
                return text, suffix, total
            room = window - count("")  # start and end tokens
            suffix_tokens = count(suffix) - count("") if suffix else 0
            kept_suffix = _cut(tokenizer, suffix, min(suffix_tokens, room // 2)) if suffix else ""
            budget = room - (count(kept_suffix) - count("") if kept_suffix else 0)
            used = _cut(tokenizer, text, budget)
            # Tokens can merge across the join: trim until the whole really fits.
            while (total := count(used + kept_suffix)) > window and used:
                budget -= total - window
                used = _cut(tokenizer, text, max(budget, 0))
            return used, kept_suffix, total

    def count_tokens(self, text: str) -> int:
        """Prompt tokens the model reads (for `usage`)."""
        return self.fit_prompt(text)[2]

    def batch_key(self, job: GenerationJob) -> Hashable | None:
        """Jobs with equal keys can share one pipeline call; None: this job runs alone.

        Everything that is one value per call must match. Prompts, negative prompts, seeds and
        input images are per image. A negative prompt cannot be mixed with none: some pipelines
        (SDXL) encode "no negative prompt" as zeros, not as the empty string."""
        if job.kind != "text-to-image" and self.edits_by_instruction:
            return None
        return (
            job.kind,
            job.width,
            job.height,
            job.num_inference_steps,
            job.guidance_scale,
            job.strength,
            bool(job.negative_prompt),
            job.partial_images,
        )

    def run(self, job: GenerationJob) -> GenerationOutput:
        return self.run_batch([job])[0]

    def run_batch(self, jobs: list[GenerationJob]) -> list[GenerationOutput]:
        """Run jobs with one batch key in one pipeline call; each gets exactly its own images."""
        started = time.perf_counter()
        first = jobs[0]
        if len(jobs) > 1 and (
            self.batch_key(first) is None
            or any(self.batch_key(job) != self.batch_key(first) for job in jobs)
        ):
            raise ValueError("jobs in one batch must share a batch key (not None)")
        counts = [job.num_images for job in jobs]
        arguments: dict[str, Any] = {
            "prompt": [job.prompt for job in jobs for _ in job.seeds],
            "num_inference_steps": first.num_inference_steps,
            "guidance_scale": first.guidance_scale,
            "width": first.width,
            "height": first.height,
            # One CPU generator per image: each image depends only on its own seed, on any
            # device, whether it runs alone or in a batch.
            "generator": [
                torch.Generator("cpu").manual_seed(seed) for job in jobs for seed in job.seeds
            ],
            "output_type": "pil",
        }
        if first.negative_prompt:
            arguments["negative_prompt"] = [job.negative_prompt for job in jobs for _ in job.seeds]
        # Kontext-style pipelines otherwise rescale to about one megapixel; the server has
        # already chosen the size.
        if "max_area" in self.call_parameters:
            arguments["max_area"] = first.width * first.height
        if "_auto_resize" in self.call_parameters:
            arguments["_auto_resize"] = False
        if "clean_caption" in self.call_parameters:
            # PixArt's caption cleaning needs beautifulsoup4 and ftfy, and only strips markup.
            arguments["clean_caption"] = False
        if first.kind != "text-to-image" and self.edits_by_instruction:
            return [self._run_instruction_edit(first, arguments, started)]
        if first.kind != "text-to-image":
            arguments["image"] = [job.init_image for job in jobs for _ in job.seeds]
            arguments["strength"] = first.strength
            # diffusers schedules `num_inference_steps` over the full noise range and runs the
            # last int(steps * strength) of them. Scale the schedule so that the job's steps
            # are the steps actually run: a 2-step turbo model still denoises twice, from a
            # noise level set by the strength.
            arguments["num_inference_steps"] = math.ceil(
                first.num_inference_steps / max(first.strength, 1e-3)
            )
        pipeline = self.pipeline_for(first.kind)
        if first.kind == "image-to-image" and "width" not in _call_parameters(type(pipeline)):
            # SD and SDXL take the size from the image; FLUX and SD3 take it as arguments.
            del arguments["width"], arguments["height"]
        if first.kind == "inpaint":
            arguments["mask_image"] = [job.mask for job in jobs for _ in job.seeds]
        prompt_tokens = [self.count_tokens(job.prompt) for job in jobs]
        self._add_step_callback(pipeline, jobs, arguments)
        images = self._call(pipeline, arguments)
        if len(images) != sum(counts):
            raise RuntimeError(f"pipeline returned {len(images)} images for {sum(counts)}")
        seconds = time.perf_counter() - started
        outputs = []
        for job, job_images, tokens in zip(
            jobs, _split(images, counts), prompt_tokens, strict=True
        ):
            if job.kind == "inpaint":
                # Outside the mask the result must be the input, not its trip through the VAE.
                job_images = [Image.composite(i, job.init_image, job.mask) for i in job_images]
            outputs.append(
                GenerationOutput(
                    images=job_images, seeds=job.seeds, prompt_tokens=tokens, seconds=seconds
                )
            )
        return outputs

    def _call(self, pipeline: Any, arguments: dict[str, Any]) -> list[Any]:
        try:
            with torch.inference_mode():
                return list(pipeline(**arguments).images)
        except torch.cuda.OutOfMemoryError:
            # Give the failed batch's memory back before its jobs are retried one by one.
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            raise

    def _add_step_callback(
        self, pipeline: Any, jobs: list[GenerationJob], arguments: dict[str, Any]
    ) -> None:
        """Previews and cancellation both hook into diffusers' per-step callback. A batch stops
        early only when every one of its callers has gone."""
        first = jobs[0]
        watching = all(job.cancelled is not None for job in jobs)
        parameters = _call_parameters(type(pipeline))
        if not (first.partial_images or watching):
            return
        if "callback_on_step_end" not in parameters and "callback" not in parameters:
            return
        counts = [job.num_images for job in jobs]
        chosen: list[tuple[int, ...]] = []

        def on_step_end(
            pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            if watching and all(job.cancelled.is_set() for job in jobs if job.cancelled):
                raise JobCancelled  # stop now: no more steps, and no VAE decode
            if first.partial_images:
                if not chosen:  # the pipeline knows its step count only once it runs
                    total = getattr(pipe, "num_timesteps", None) or len(pipe.scheduler.timesteps)
                    chosen.append(preview_steps(total, first.partial_images))
                if step in chosen[0]:
                    try:
                        previews = latents_to_images(
                            pipe, tensors["latents"], first.width, first.height,
                            self.preview_decoder,
                        )  # fmt: skip
                    except Exception:  # a preview must never cost the image itself
                        logger.exception("preview failed; the run goes on without previews")
                        chosen[0] = ()
                        return {}
                    index = chosen[0].index(step)
                    for job, images in zip(jobs, _split(previews, counts), strict=True):
                        if job.on_preview is None:
                            continue
                        if job.mask is not None:  # outside the mask, the input, as at the end
                            images = [Image.composite(i, job.init_image, job.mask) for i in images]
                        job.on_preview(index, images)
            return {}

        if "callback_on_step_end" in parameters:
            arguments["callback_on_step_end"] = on_step_end
        else:  # older pipelines (PixArt): callback(step, timestep, latents) every n steps
            arguments["callback_steps"] = 1
            arguments["callback"] = lambda step, timestep, latents: on_step_end(
                pipeline, step, timestep, {"latents": latents}
            )

    def _run_instruction_edit(
        self, job: GenerationJob, arguments: dict[str, Any], started: float
    ) -> GenerationOutput:
        arguments["image"] = job.init_image
        arguments = {k: v for k, v in arguments.items() if k in self.call_parameters}
        self._add_step_callback(self.pipeline, [job], arguments)
        images = self._call(self.pipeline, arguments)
        images = [
            image
            if image.size == (job.width, job.height)
            else image.resize((job.width, job.height))
            for image in images
        ]
        if job.mask is not None:  # the mask still bounds the edit
            images = [Image.composite(image, job.init_image, job.mask) for image in images]
        return GenerationOutput(
            images=images,
            seeds=job.seeds,
            prompt_tokens=self.count_tokens(job.prompt),
            seconds=time.perf_counter() - started,
        )


def _cut(tokenizer: Any, text: str, tokens: int) -> str:
    """The start of `text` that holds its first `tokens` tokens (no special tokens), cut in the
    text itself where the last of them ends."""
    if tokens <= 0:
        return ""
    try:
        encoded = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets = encoded["offset_mapping"]
        return text[: offsets[min(tokens, len(offsets)) - 1][1]].rstrip() if offsets else ""
    except (NotImplementedError, KeyError, TypeError):  # a tokenizer without offsets
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return str(tokenizer.decode(ids[:tokens], skip_special_tokens=True)).strip()


def _split(items: list[Any], counts: list[int]) -> list[list[Any]]:
    """`items` cut into consecutive runs of `counts` items."""
    runs, start = [], 0
    for count in counts:
        runs.append(items[start : start + count])
        start += count
    return runs


_CALL_PARAMETERS: dict[type, frozenset[str]] = {}


def _call_parameters(pipeline_class: type) -> frozenset[str]:
    """What a pipeline class's __call__ accepts; read once per class, not once per run."""
    if pipeline_class not in _CALL_PARAMETERS:
        signature = inspect.signature(pipeline_class.__call__)
        _CALL_PARAMETERS[pipeline_class] = frozenset(signature.parameters)
    return _CALL_PARAMETERS[pipeline_class]


@dataclass(frozen=True)
class SpeedOptions:
    """Optional speed-ups applied to every loaded pipeline (see Settings)."""

    channels_last: bool = False
    compile: bool = False


def load_pipeline(
    spec: ModelSpec,
    *,
    cache_dir: Path,
    offline: bool,
    show_progress: bool = False,
    speed: SpeedOptions = SpeedOptions(),
) -> LoadedPipeline:
    """Load `spec` with diffusers' own loader; raise ModelLoadError with advice on failure."""
    from diffusers import AutoPipelineForText2Image

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
    dtype = resolve_dtype(requested, device)

    offload = spec.cpu_offload != "none"
    if offload and device.type != "cuda":
        raise ModelLoadError(
            f"Could not load model {spec.id!r}: cpu_offload={spec.cpu_offload!r} moves weights "
            f"between CPU memory and a CUDA GPU, and the model's device is {device.type}. Use "
            "cpu_offload='none' there."
        )
    started = time.perf_counter()
    if is_architecture(spec.source):
        logger.info(
            "building %s with random weights on %s (%s)", spec.id, device, dtype_name(dtype)
        )
        # Offloaded weights live in CPU memory; the offload hooks move them to the GPU.
        pipeline = build_architecture(spec.source, dtype, "cpu" if offload else device)
        return _finish_loading(spec, pipeline, device, dtype, started, show_progress, True, speed)
    location: str | Path
    if spec.source == "tiny":
        location = ensure_tiny_model(cache_dir)
    elif looks_like_path(spec.source):
        location = Path(spec.source).expanduser()
        if not location.is_dir():
            raise ModelLoadError(
                f"Could not load model {spec.id!r}: the directory {str(location)!r} does not exist."
                " Point --model at a diffusers-format directory (one with model_index.json),"
                " a hub repo id, or use `--model tiny`."
            )
    elif "/" not in spec.source:
        # Hub ids are org/name: a bare word is a mistyped built-in name, not a repo.
        raise ModelLoadError(_unknown_name_message(spec.source))
    else:
        location = spec.source
    logger.info("loading model %s from %s on %s (%s)", spec.id, location, device, dtype_name(dtype))
    local_only = offline
    unreachable: str | None = None
    if isinstance(location, str) and not offline:
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
        if not offload:
            pipeline.to(device)
    except Exception as exc:  # diffusers/hub raise many types; all mean "cannot load"
        raise ModelLoadError(
            _load_failure_message(spec, location, offline, unreachable, exc)
        ) from exc
    return _finish_loading(spec, pipeline, device, dtype, started, show_progress, local_only, speed)


def _finish_loading(
    spec: ModelSpec,
    pipeline: Any,
    device: torch.device,
    dtype: torch.dtype,
    started: float,
    show_progress: bool,
    local_only: bool,
    speed: SpeedOptions,
) -> LoadedPipeline:
    """What every pipeline gets once its weights are on the device, however it was made."""
    # The CLI shows a bar per denoising run; the server does not (one per request in its log).
    pipeline.set_progress_bar_config(disable=not show_progress, desc="denoising")
    tiny_vae = preview_decoder = None
    vae = getattr(pipeline, "vae", None)
    latent_channels = getattr(getattr(vae, "config", None), "latent_channels", None)
    if spec.tiny_vae:
        tiny_vae = _load_tiny_autoencoder(
            spec, spec.tiny_vae, latent_channels, device, dtype, local_only
        )
        pipeline.vae = tiny_vae
    if spec.preview_decoder and spec.preview_decoder != spec.tiny_vae:
        preview_decoder = _load_tiny_autoencoder(
            spec, spec.preview_decoder, latent_channels, device, dtype, local_only
        )
    _speed_up(pipeline, speed)
    _save_memory(pipeline, spec, device)
    logger.info("loaded %s in %.1f s", spec.id, time.perf_counter() - started)
    parameters = _call_parameters(type(pipeline))
    loaded = LoadedPipeline(
        spec=spec,
        pipeline=pipeline,
        device=device,
        dtype=dtype,
        call_parameters=parameters,
        preview_decoder=preview_decoder or tiny_vae,
    )
    # Build the edit pipelines now (cheap: they share every module) so that asking what a
    # model supports never builds one on the event loop while the worker uses the model.
    loaded.supports("image-to-image")
    loaded.supports("inpaint")
    return loaded


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
        # with from_pipe share the compiled denoiser.
        denoiser.compile()


def _load_tiny_autoencoder(
    spec: ModelSpec,
    source: str,
    model_channels: int | None,
    device: torch.device,
    dtype: torch.dtype,
    local_only: bool,
) -> Any:
    """A TAESD-class AutoencoderTiny from the hub or a local directory, on the model's device.
    When the model itself came from the cache (offline, or the hub unreachable), so does this."""
    from diffusers import AutoencoderTiny

    location = Path(source).expanduser() if looks_like_path(source) else source
    try:
        decoder = AutoencoderTiny.from_pretrained(location, local_files_only=local_only)
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
    return decoder.to(device=device, dtype=dtype).eval()


def _unknown_name_message(source: str) -> str:
    import difflib

    from pixelsmith.engine.architectures import architecture_names
    from pixelsmith.engine.presets import PRESETS

    known = ["tiny", *(name for name in PRESETS if name != "tiny"), *architecture_names()]
    close = difflib.get_close_matches(source, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"Unknown model {source!r}.{hint} Known names: {', '.join(known)}. Or give a Hugging "
        "Face hub id (org/name, e.g. stabilityai/sd-turbo) or a local diffusers directory."
    )


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
