"""The engine on the tiny model: loading, devices, seeds, batching consistency, the worker."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_settings

from pixelsmith.builders import build_engine
from pixelsmith.engine import Engine, GenerationJob, GenerationOutput
from pixelsmith.engine.devices import resolve_device, resolve_dtype
from pixelsmith.engine.registry import ModelRegistry
from pixelsmith.engine.tiny import ensure_tiny_model, tiny_model_dir
from pixelsmith.engine.worker import PipelineWorker
from pixelsmith.errors import (
    ModelLoadError,
    ModelNotFoundError,
    RateLimitError,
    ServiceUnavailableError,
)
from pixelsmith.service.names import OPENAI_MODEL_NAMES
from pixelsmith.settings import ModelConfig


def job(**overrides) -> GenerationJob:
    values = dict(
        prompt="a cat", width=64, height=64, num_inference_steps=2, guidance_scale=0.0, seeds=(1,)
    )
    values.update(overrides)
    return GenerationJob(**values)


def test_tiny_model_is_a_real_diffusers_directory(cache_dir: Path):
    directory = tiny_model_dir(cache_dir)
    index = json.loads((directory / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (directory / part).is_dir(), part
    assert list((directory / "unet").glob("*.safetensors"))


def test_tiny_model_build_is_deterministic_and_cached(tmp_path: Path, cache_dir: Path):
    built = ensure_tiny_model(tmp_path)
    assert ensure_tiny_model(tmp_path) == built  # second call reuses the cache
    a = (built / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    b = (tiny_model_dir(cache_dir) / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert a == b


def test_loaded_through_from_pretrained_on_cpu_in_fp32(tiny_engine: Engine):
    loaded = tiny_engine.pipeline(tiny_engine.registry.default)
    assert type(loaded.pipeline).__name__ == "StableDiffusionPipeline"
    assert loaded.pipeline.vae_scale_factor == 8
    assert loaded.device.type == "cpu"
    assert loaded.dtype == torch.float32
    assert loaded.pipeline.unet.dtype == torch.float32
    assert loaded.capabilities.accepts("negative_prompt")


def test_device_and_dtype_resolution():
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("mps")) == torch.float16
    if not torch.cuda.is_available():
        assert resolve_device("auto") in (cpu, torch.device("mps"))
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_dtype_override_is_honoured(cache_dir: Path, tmp_path: Path):
    settings = make_settings(
        cache_dir, tmp_path, models=[ModelConfig(source="tiny", dtype="bfloat16")]
    )
    engine = build_engine(settings)
    engine.load()
    assert engine.pipeline(engine.registry.default).pipeline.unet.dtype == torch.bfloat16


def test_registry_maps_openai_names_and_own_ids():
    registry = ModelRegistry(
        [ModelConfig(source="tiny"), ModelConfig(source="tiny", id="other", aliases=["dall-e-3"])],
        default_aliases=OPENAI_MODEL_NAMES,
    )
    assert registry.resolve(None).id == "tiny"
    assert registry.resolve("gpt-image-1").id == "tiny"
    assert registry.resolve("dall-e-3").id == "other"
    assert registry.resolve("other").id == "other"
    with pytest.raises(ModelNotFoundError):
        registry.resolve("gpt-image-7")
    # A model whose own id is an OpenAI name keeps it; the default model takes the rest.
    named = ModelRegistry(
        [ModelConfig(source="tiny"), ModelConfig(source="tiny", id="dall-e-3")],
        default_aliases=OPENAI_MODEL_NAMES,
    )
    assert named.resolve("dall-e-3").id == "dall-e-3"
    assert named.resolve("dall-e-2").id == "tiny"
    spec = registry.resolve("tiny")
    assert spec.default_size in spec.sizes and spec.steps.low == 1
    # A listed snapshot goes with the model that claims the name it is a snapshot of.
    from pixelsmith.service.names import SNAPSHOT_BASES

    flare = ModelRegistry(
        [ModelConfig(source="tiny"), ModelConfig(source="tiny", id="big", aliases=["gpt-image-2"])],
        default_aliases=OPENAI_MODEL_NAMES,
        alias_bases=SNAPSHOT_BASES,
    )
    assert flare.resolve("gpt-image-2-2026-04-21").id == "big"
    assert flare.resolve("gpt-image-2.5-flare-2026-09-08").id == "tiny"


def test_same_seed_same_pixels_and_batching_does_not_change_an_image(tiny_engine: Engine):
    loaded = tiny_engine.pipeline(tiny_engine.registry.default)
    guided = dict(guidance_scale=5.0, negative_prompt="dull")
    alone = loaded.run(job(seeds=(11,), **guided))
    again = loaded.run(job(seeds=(11,), **guided))
    batch = loaded.run(job(seeds=(10, 11, 12), **guided))
    pixels = [np.asarray(image, dtype=np.int16) for image in (alone.images[0], again.images[0])]
    assert np.array_equal(pixels[0], pixels[1])
    in_batch = np.asarray(batch.images[1], dtype=np.int16)
    # Batched matmuls may round differently; allow a couple of 8-bit levels.
    assert np.abs(in_batch - pixels[0]).max() <= 2
    assert batch.seeds == (10, 11, 12) and len(batch.images) == 3
    assert alone.prompt_tokens == 6  # "acat" + start and end tokens


def test_load_failure_is_fast_and_explains_how_to_run_offline(tmp_path: Path):
    # conftest points the hub at a closed local port, as on a machine with no network.
    settings = make_settings(tmp_path, tmp_path / "images", model="stabilityai/sd-turbo")
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as error:
        build_engine(settings).load()
    assert time.monotonic() - started < 60
    message = error.value.message
    assert "stabilityai/sd-turbo" in message
    assert "--model tiny" in message and "--offline" in message


def test_offline_mode_never_contacts_the_hub(tmp_path: Path, monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("offline mode contacted the hub")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", no_network)
    settings = make_settings(tmp_path, tmp_path / "images", model="someone/absent", offline=True)
    with pytest.raises(ModelLoadError, match="offline mode is on"):
        build_engine(settings).load()


class RecordingRunner:
    """Stands in for a pipeline: records the batches it is given and how many calls overlap.
    A job whose prompt is "fail" makes its whole batch fail, as a bad request would."""

    def __init__(self, seconds: float = 0.05, failure: type[Exception] = RuntimeError) -> None:
        self.seconds = seconds
        self.failure = failure
        self.active = 0
        self.most_active = 0
        self.batches: list[list[int]] = []
        self.lock = threading.Lock()

    @property
    def ran(self) -> list[int]:
        return [seed for batch in self.batches for seed in batch]

    def __call__(self, jobs: list[GenerationJob]) -> list[GenerationOutput]:
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        time.sleep(self.seconds)
        with self.lock:
            self.active -= 1
        if any(job.prompt == "fail" for job in jobs):
            raise self.failure("boom")
        self.batches.append([job.seeds[0] for job in jobs])
        return [
            GenerationOutput(images=[None], seeds=job.seeds, prompt_tokens=1, seconds=self.seconds)
            for job in jobs
        ]


async def submit(worker: PipelineWorker, job: GenerationJob) -> GenerationOutput:
    """Queue `job` and wait for its output, as the service does; cancelling the caller drops a
    job that has not started."""
    return await worker.enqueue(job)


def by_size(job: GenerationJob) -> tuple[int, int]:
    return (job.width, job.height)


def test_worker_never_runs_two_jobs_at_once():
    runner = RecordingRunner()

    async def scenario() -> None:
        worker = PipelineWorker("test", runner, max_queue_size=16)
        worker.start()
        results = await asyncio.gather(*(submit(worker, job(seeds=(i,))) for i in range(6)))
        assert [r.seeds[0] for r in results] == list(range(6))
        await worker.stop()

    asyncio.run(scenario())
    assert runner.most_active == 1
    assert sorted(runner.ran) == list(range(6))


def test_full_queue_answers_429_and_cancelled_jobs_never_run():
    runner = RecordingRunner(seconds=0.2)

    async def scenario() -> None:
        worker = PipelineWorker("test", runner, max_queue_size=2)
        worker.start()
        first = asyncio.create_task(submit(worker, job(seeds=(0,))))
        await asyncio.sleep(0.05)  # job 0 is running, the queue is empty
        waiting = [asyncio.create_task(submit(worker, job(seeds=(i,)))) for i in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(RateLimitError) as error:
            await submit(worker, job(seeds=(3,)))
        assert error.value.status_code == 429
        assert int(error.value.headers["retry-after"]) >= 1
        waiting[0].cancel()  # the client went away before its turn
        await first
        assert (await waiting[1]).seeds == (2,)
        await worker.stop()

    asyncio.run(scenario())
    assert runner.ran == [0, 2]


def test_waiting_compatible_jobs_share_a_call_up_to_the_batch_size():
    runner = RecordingRunner(seconds=0.2)

    async def scenario() -> list[GenerationOutput]:
        worker = PipelineWorker(
            "test", runner, max_queue_size=16, max_batch_size=4, batch_key=by_size
        )
        worker.start()
        first = asyncio.create_task(submit(worker, job(seeds=(0,))))
        await asyncio.sleep(0.05)  # job 0 runs alone; the rest arrive while it runs
        later = [
            job(seeds=(1,)),
            job(seeds=(2,), width=128),  # another size: its own call
            job(seeds=(3, 4)),  # n=2 counts as two images
            job(seeds=(5,)),
            job(seeds=(6,)),  # would make five images: waits for the next call
        ]
        tasks = [asyncio.create_task(submit(worker, j)) for j in later]
        results = [await first, *[await task for task in tasks]]
        await worker.stop()
        return results

    results = asyncio.run(scenario())
    assert [r.seeds for r in results] == [(0,), (1,), (2,), (3, 4), (5,)] + [(6,)]
    assert runner.batches == [[0], [1, 3, 5], [2], [6]]


def test_batch_timeout_waits_for_company_and_no_key_never_batches():
    runner = RecordingRunner(seconds=0.05)

    async def scenario(**options) -> None:
        worker = PipelineWorker("test", runner, max_queue_size=16, max_batch_size=4, **options)
        worker.start()
        first = asyncio.create_task(submit(worker, job(seeds=(0,))))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(submit(worker, job(seeds=(1,))))
        await asyncio.gather(first, second)
        await worker.stop()

    asyncio.run(scenario(batch_timeout=0.5, batch_key=by_size))
    assert runner.batches == [[0, 1]]
    runner.batches.clear()
    asyncio.run(scenario(batch_timeout=0.5))  # the default key: every job runs alone
    assert runner.batches == [[0], [1]]


def test_a_failing_batch_is_split_and_only_the_bad_job_fails_with_503():
    runner = RecordingRunner(seconds=0.1)

    async def scenario() -> None:
        worker = PipelineWorker(
            "test", runner, max_queue_size=16, max_batch_size=4, batch_key=by_size
        )
        worker.start()
        first = asyncio.create_task(submit(worker, job(seeds=(0,))))
        await asyncio.sleep(0.03)
        tasks = [
            asyncio.create_task(submit(worker, job(seeds=(seed,), prompt=prompt)))
            for seed, prompt in ((1, "a cat"), (2, "fail"), (3, "a dog"))
        ]
        await first
        assert (await tasks[0]).seeds == (1,)
        with pytest.raises(ServiceUnavailableError) as error:
            await tasks[1]
        assert error.value.status_code == 503
        assert error.value.headers["x-should-retry"] == "false"
        assert "RuntimeError" in error.value.message
        assert (await tasks[2]).seeds == (3,)
        # The worker keeps serving.
        assert (await submit(worker, job(seeds=(4,)))).seeds == (4,)
        await worker.stop()

    asyncio.run(scenario())
    assert runner.batches == [[0], [1], [3], [4]]


def test_out_of_memory_on_its_own_is_a_503_that_may_be_retried():
    class OutOfMemoryError(RuntimeError):  # torch.cuda.OutOfMemoryError's name
        pass

    runner = RecordingRunner(seconds=0.01, failure=OutOfMemoryError)

    async def scenario() -> None:
        worker = PipelineWorker("test", runner, max_queue_size=4)
        worker.start()
        with pytest.raises(ServiceUnavailableError) as error:
            await submit(worker, job(prompt="fail"))
        assert error.value.headers["x-should-retry"] == "true"
        assert "out of memory" in error.value.message
        await worker.stop()

    asyncio.run(scenario())


def test_stop_drains_the_queue_before_it_returns():
    runner = RecordingRunner(seconds=0.05)

    async def scenario() -> None:
        worker = PipelineWorker(
            "test", runner, max_queue_size=16, max_batch_size=2, batch_key=by_size
        )
        worker.start()
        futures = [worker.enqueue(job(seeds=(i,))) for i in range(5)]
        await worker.stop()
        assert all(future.done() and not future.exception() for future in futures)

    asyncio.run(scenario())
    assert sorted(runner.ran) == list(range(5))


def test_batched_jobs_get_their_own_images_as_if_run_alone(tiny_engine: Engine):
    loaded = tiny_engine.pipeline(tiny_engine.registry.default)
    guided = dict(guidance_scale=5.0, negative_prompt="dull")
    jobs = [
        job(seeds=(21,), prompt="a cat", **guided),
        job(seeds=(22, 23), prompt="a dog in the rain", **guided),
        job(seeds=(24,), prompt="a red house", **{**guided, "negative_prompt": "blurry"}),
    ]
    assert len({loaded.batch_key(j) for j in jobs}) == 1
    batched = loaded.run_batch(jobs)
    for alone_job, output in zip(jobs, batched, strict=True):
        alone = loaded.run(alone_job)
        assert output.seeds == alone_job.seeds and len(output.images) == alone_job.num_images
        assert output.prompt_tokens == alone.prompt_tokens
        for mine, reference in zip(output.images, alone.images, strict=True):
            difference = np.abs(
                np.asarray(mine, dtype=np.int16) - np.asarray(reference, dtype=np.int16)
            )
            assert difference.max() <= 2  # batched matmuls may round differently
    # Different prompts really gave different images (the batch did not repeat one prompt).
    assert not np.array_equal(np.asarray(batched[0].images[0]), np.asarray(batched[2].images[0]))
    unguided = job(seeds=(1,))
    assert loaded.batch_key(unguided) != loaded.batch_key(jobs[0])


def test_batched_edits_keep_their_own_input_images(tiny_engine: Engine):
    from PIL import Image

    loaded = tiny_engine.pipeline(tiny_engine.registry.default)
    red, blue = Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # repaint the left half
    jobs = [
        job(seeds=(1,), init_image=red, mask=mask, strength=0.9),
        job(seeds=(2,), init_image=blue, mask=mask, strength=0.9),
    ]
    outputs = loaded.run_batch(jobs)
    # Outside the mask each result is exactly its own input.
    assert outputs[0].images[0].getpixel((60, 10)) == (255, 0, 0)
    assert outputs[1].images[0].getpixel((60, 10)) == (0, 0, 255)


def test_layers_import_one_way():
    """The engine never imports the service or API layers; the service uses no web framework
    and of the API layer only the wire models; wire models never import torch."""
    import subprocess
    import sys

    def loaded_after(statement: str) -> set[str]:
        """The modules a fresh interpreter holds after `statement`."""
        code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return set(json.loads(result.stdout))

    def within(modules: set[str], *prefixes: str) -> set[str]:
        return {name for name in modules if name.startswith(prefixes)}

    assert "torch" not in loaded_after("import pixelsmith.api.protocol")
    engine = loaded_after("import pixelsmith.engine, pixelsmith.moderation, pixelsmith.storage")
    # Nothing of the API or service layers at all, not even the wire models.
    assert not within(engine, "pixelsmith.api", "pixelsmith.service", "fastapi", "starlette")
    service = loaded_after("import pixelsmith.service")
    web = within(service, "pixelsmith.api", "fastapi", "starlette")
    assert web == {"pixelsmith.api", "pixelsmith.api.protocol"}, web


def test_edit_pipelines_share_the_weights_of_the_loaded_model(tiny_engine: Engine):
    """Image-to-image and inpainting come from from_pipe: the same tensors, no second copy."""
    loaded = tiny_engine.pipeline(tiny_engine.registry.default)
    base = loaded.pipeline

    def storage(pipeline) -> set[int]:
        return {
            parameter.data_ptr()
            for module in (pipeline.unet, pipeline.vae, pipeline.text_encoder)
            for parameter in module.parameters()
        }

    before = storage(base)
    for kind in ("image-to-image", "inpaint"):
        derived = loaded.pipeline_for(kind)
        assert type(derived).__name__ != type(base).__name__
        assert derived.unet is base.unet and derived.vae is base.vae
        assert storage(derived) == before
    assert loaded.pipeline_for("inpaint") is loaded.pipeline_for("inpaint")  # built once


def _flat_tiny_autoencoder(directory: Path, *, latent_channels: int = 4) -> Path:
    """A TAESD-shaped AutoencoderTiny whose decoder paints every pixel RGB (191, 191, 191): its
    last convolution has zero weights and bias 0.75, which the decoder maps to 0.5 of [-1, 1]."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    autoencoder = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=latent_channels,
    )
    last = autoencoder.decoder.layers[-1]
    assert isinstance(last, torch.nn.Conv2d)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(0.75)
    autoencoder.save_pretrained(directory)
    return directory


def _previews_and_images(engine: Engine, **overrides) -> tuple[list, list]:
    previews: list = []
    loaded = engine.pipeline(engine.registry.default)
    output = loaded.run(
        job(
            seeds=(1, 2),
            num_inference_steps=4,
            partial_images=2,
            on_preview=lambda index, images: previews.append((index, images)),
            **overrides,
        )
    )
    return previews, output.images


def test_a_configured_preview_decoder_decodes_the_stream_previews(cache_dir: Path, tmp_path: Path):
    decoder = _flat_tiny_autoencoder(tmp_path / "taesd")
    settings = make_settings(
        cache_dir, tmp_path, models=[ModelConfig(source="tiny", preview_decoder=str(decoder))]
    )
    engine = build_engine(settings)
    engine.load()
    previews, images = _previews_and_images(engine)
    assert [index for index, _ in previews] == [0, 1]
    for _, batch in previews:
        assert len(batch) == 2
        for preview in batch:
            assert preview.size == (64, 64)
            assert np.all(np.asarray(preview) == 191)
    # The final images still come from the model's own VAE.
    assert not np.all(np.asarray(images[0]) == 191)


def test_a_tiny_vae_replaces_the_final_decode_and_decodes_previews(cache_dir: Path, tmp_path: Path):
    decoder = _flat_tiny_autoencoder(tmp_path / "taesd")
    settings = make_settings(
        cache_dir, tmp_path, models=[ModelConfig(source="tiny", tiny_vae=str(decoder))]
    )
    engine = build_engine(settings)
    engine.load()
    previews, images = _previews_and_images(engine)
    assert len(previews) == 2 and all(np.all(np.asarray(p) == 191) for _, b in previews for p in b)
    assert [image.size for image in images] == [(64, 64)] * 2
    assert all(np.all(np.asarray(image) == 191) for image in images)
    # Edits encode through it too.
    loaded = engine.pipeline(engine.registry.default)
    edited = loaded.run(job(init_image=images[0], strength=0.5))
    assert np.all(np.asarray(edited.images[0]) == 191)


def test_a_tiny_autoencoder_for_another_latent_family_is_refused(cache_dir: Path, tmp_path: Path):
    decoder = _flat_tiny_autoencoder(tmp_path / "taef1", latent_channels=16)
    settings = make_settings(
        cache_dir, tmp_path, models=[ModelConfig(source="tiny", preview_decoder=str(decoder))]
    )
    with pytest.raises(ModelLoadError, match="16-channel latents"):
        build_engine(settings).load()


# Parameter counts of the published checkpoints each architecture-only model copies.
PUBLISHED_PARAMETERS = {
    # stabilityai/sd-turbo: SD 2.1 UNet, SD VAE, OpenCLIP-H text encoder
    "sd-turbo-arch": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    # stabilityai/sdxl-turbo and SDXL 1.0: UNet, VAE, CLIP-L, OpenCLIP-bigG with projection
    "sdxl-arch": {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    },
    # black-forest-labs/FLUX.1-schnell: transformer (no guidance embedder), 16-channel VAE,
    # CLIP-L, T5-XXL encoder
    "flux-schnell-arch": {
        "transformer": 11_891_178_560,
        "vae": 83_819_683,
        "text_encoder": 123_060_480,
        "text_encoder_2": 4_762_310_656,
    },
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_architecture_models_have_the_real_models_shapes(name: str):
    from pixelsmith.engine.arch_catalog import architecture_names
    from pixelsmith.engine.architectures import build_architecture

    assert name in architecture_names()
    pipeline = build_architecture(name, device="meta")  # shapes only: no memory, no time
    counts = {
        part: sum(parameter.numel() for parameter in getattr(pipeline, part).parameters())
        for part in PUBLISHED_PARAMETERS[name]
    }
    assert counts == PUBLISHED_PARAMETERS[name]


# Denoiser sizes as published, rounded: for architectures whose exact counts are not on record
# here, a check that the config is the model's scale (a wrong layer count would miss it).
APPROXIMATE_DENOISER_PARAMETERS = {
    "sd3.5-medium-arch": 2.2e9,  # MMDiT-X, "2.5B" with its text embedders counted by some
    "pixart-sigma-arch": 0.61e9,  # DiT-XL/2, "0.6B"
}


@pytest.mark.parametrize("name", sorted(APPROXIMATE_DENOISER_PARAMETERS))
def test_other_architecture_models_have_their_models_scale(name: str):
    from pixelsmith.engine.architectures import build_architecture

    pipeline = build_architecture(name, device="meta")
    count = sum(parameter.numel() for parameter in pipeline.transformer.parameters())
    assert abs(count / APPROXIMATE_DENOISER_PARAMETERS[name] - 1) < 0.05, count


def test_an_architecture_model_is_built_without_download_and_generates(tmp_path: Path):
    settings = make_settings(tmp_path, tmp_path / "images", model="sd-small-arch", offline=True)
    engine = build_engine(settings)
    engine.load()
    spec = engine.registry.default
    assert str(spec.default_size) == "512x512" and spec.steps.high == 4  # sd-turbo's preset
    output = engine.pipeline(spec).run(job(seeds=(3,), num_inference_steps=1))
    assert output.images[0].size == (64, 64)
    assert not (tmp_path / "models").exists()  # nothing written: built in memory


def test_speed_settings_warm_up_and_change_the_memory_format(cache_dir: Path, tmp_path: Path):
    settings = make_settings(cache_dir, tmp_path, warmup="on", channels_last=True, offline=True)
    engine = build_engine(settings)
    engine.load()
    loaded = engine.pipeline(engine.registry.default)
    assert loaded.warmup_seconds is not None and loaded.warmup_seconds > 0
    conv = loaded.pipeline.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous()  # really changed: a 3x3 conv is not both
    assert loaded.pipeline.vae.decoder.conv_in.weight.is_contiguous(
        memory_format=torch.channels_last
    )
    assert loaded.pipeline.unet._compiled_call_impl is None
    # Compiled in place: the same module, compiled on its first call (not made here: that
    # takes half a minute on this CPU), shared with the edit pipelines. By default, a CPU
    # model is not warmed up.
    compiled = build_engine(make_settings(cache_dir, tmp_path, compile=True, offline=True))
    compiled.load()
    loaded = compiled.pipeline(compiled.registry.default)
    assert loaded.warmup_seconds is None
    unet = loaded.pipeline.unet
    assert unet._compiled_call_impl is not None
    assert loaded.pipeline_for("inpaint").unet is unet


def test_a_batch_of_streams_sends_each_job_its_own_previews(tiny_engine: Engine):
    loaded = tiny_engine.pipeline(tiny_engine.registry.default)
    received: dict[str, list[tuple[int, int]]] = {"one": [], "two": []}

    def collector(name: str):
        return lambda index, images: received[name].append((index, len(images)))

    jobs = [
        job(seeds=(1,), num_inference_steps=4, partial_images=2, on_preview=collector("one")),
        job(seeds=(2, 3), num_inference_steps=4, partial_images=2, on_preview=collector("two")),
    ]
    outputs = loaded.run_batch(jobs)
    assert received == {"one": [(0, 1), (1, 1)], "two": [(0, 2), (1, 2)]}
    assert [len(output.images) for output in outputs] == [1, 2]


def test_a_job_cancelled_while_its_batch_gathers_never_runs():
    runner = RecordingRunner(seconds=0.01)

    async def scenario() -> None:
        worker = PipelineWorker(
            "test", runner, max_queue_size=16, max_batch_size=4, batch_timeout=0.3,
            batch_key=by_size,
        )  # fmt: skip
        worker.start()
        first = asyncio.create_task(submit(worker, job(seeds=(0,))))
        await asyncio.sleep(0.05)  # job 0 is out of the queue, waiting for company
        second = asyncio.create_task(submit(worker, job(seeds=(1,))))
        await asyncio.sleep(0.05)
        first.cancel()
        assert (await second).seeds == (1,)
        await worker.stop()

    asyncio.run(scenario())
    assert runner.batches == [[1]]


def test_a_stopping_worker_refuses_new_jobs_and_answers_every_accepted_one():
    runner = RecordingRunner(seconds=0.05)

    async def scenario() -> None:
        worker = PipelineWorker("test", runner, max_queue_size=16)
        worker.start()
        accepted = [worker.enqueue(job(seeds=(i,))) for i in range(3)]
        stopping = asyncio.create_task(worker.stop())
        await asyncio.sleep(0.01)
        with pytest.raises(ServiceUnavailableError):
            worker.enqueue(job(seeds=(9,)))
        await stopping
        assert [future.result().seeds for future in accepted] == [(0,), (1,), (2,)]

    asyncio.run(scenario())


def test_interactive_jobs_wait_behind_no_queued_batch_line():
    """Batch lines fill idle time: an interactive job queued after them runs first, right after
    the call already running; among batch lines, first come first served."""
    from pixelsmith.engine.jobs import BATCH_PRIORITY

    order: list[str] = []
    gate = threading.Event()

    def runner(jobs: list[GenerationJob]) -> list[GenerationOutput]:
        gate.wait(10)
        order.extend(job.prompt for job in jobs)
        return [GenerationOutput(images=[None], seeds=job.seeds, prompt_tokens=1) for job in jobs]

    def job(prompt: str, priority: int) -> GenerationJob:
        return GenerationJob(prompt=prompt, width=64, height=64, num_inference_steps=1,
                             guidance_scale=0.0, seeds=(1,), priority=priority)  # fmt: skip

    async def scenario() -> None:
        worker = PipelineWorker("test", runner, max_queue_size=16)
        worker.start()
        running = worker.enqueue(job("batch-0", BATCH_PRIORITY))
        await asyncio.sleep(0.05)  # batch-0 is on the device
        queued = [worker.enqueue(job(f"batch-{index}", BATCH_PRIORITY)) for index in (1, 2)]
        interactive = worker.enqueue(job("interactive", 0))
        gate.set()
        await asyncio.gather(running, *queued, interactive)
        await worker.stop()

    asyncio.run(scenario())
    assert order == ["batch-0", "interactive", "batch-1", "batch-2"]


def test_compiled_pipelines_get_batches_of_a_few_sizes_only():
    """With compile, the worker forms batches of its bucket sizes (1, 2, 4): seven waiting
    one-image jobs run as 4, 2 and 1, never as a shape that would compile again."""
    from pixelsmith.engine.worker import bucket_sizes

    assert bucket_sizes(4) == (1, 2, 4) and bucket_sizes(6) == (1, 2, 4, 6)
    assert bucket_sizes(1) == (1,)
    runner = RecordingRunner(seconds=0.1)

    async def scenario() -> None:
        worker = PipelineWorker(
            "test", runner, max_queue_size=16, max_batch_size=4, batch_key=by_size,
            buckets=bucket_sizes(4),
        )  # fmt: skip
        worker.start()
        first = asyncio.create_task(submit(worker, job(seeds=(0,))))
        await asyncio.sleep(0.03)  # job 0 runs alone; seven more wait meanwhile
        later = [asyncio.create_task(submit(worker, job(seeds=(i,)))) for i in range(1, 8)]
        await first
        await asyncio.gather(*later)
        await worker.stop()

    asyncio.run(scenario())
    assert [len(batch) for batch in runner.batches] == [1, 4, 2, 1]
    assert sorted(seed for batch in runner.batches for seed in batch) == list(range(8))
    assert runner.batches[1:] == [[1, 2, 3, 4], [5, 6], [7]]  # queue order kept


def test_batches_are_kept_to_what_fits_the_gpus_memory():
    from pixelsmith.engine.gpu_memory import HEADROOM, ActivationMemory

    # 1 KB per pixel: a 512x512 image takes 256 MiB, a 1024x1024 one 1 GiB.
    memory = ActivationMemory(bytes_per_pixel=1024)
    free = int(4 * 2**30 / HEADROOM)
    assert memory.images_that_fit(512, 512, free) == 16
    assert memory.images_that_fit(1024, 1024, free) == 4
    assert memory.images_that_fit(2048, 2048, free) == 1  # never none: one always runs
    runner = RecordingRunner(seconds=0.1)

    async def scenario() -> None:
        worker = PipelineWorker(
            "test", runner, max_queue_size=16, max_batch_size=8, batch_key=by_size,
            batch_limit=lambda job: memory.images_that_fit(job.width * 16, job.height * 16, free),
        )  # fmt: skip
        worker.start()
        first = asyncio.create_task(submit(worker, job(seeds=(0,))))
        await asyncio.sleep(0.03)
        later = [asyncio.create_task(submit(worker, job(seeds=(i,)))) for i in range(1, 7)]
        await first
        await asyncio.gather(*later)
        await worker.stop()

    asyncio.run(scenario())
    # job() is 64x64: at 16x the sides (1024x1024) four fit, under max_batch_size 8.
    assert [len(batch) for batch in runner.batches] == [1, 4, 2]


def test_on_a_gpu_each_family_gets_its_precision(monkeypatch: pytest.MonkeyPatch):
    """SDXL's VAE overflows in float16: bfloat16 where the GPU has it, else float16 with
    diffusers decoding in float32 (the VAE's force_upcast, kept in the SDXL architecture)."""
    from pixelsmith.engine import loading
    from pixelsmith.engine.arch_catalog import architecture_config
    from pixelsmith.engine.registry import ModelSpec
    from pixelsmith.settings import ModelConfig

    monkeypatch.setattr(loading, "resolve_device", lambda requested: torch.device("cuda"))
    for bf16, expected in ((True, {"sdxl": torch.bfloat16, "sd-turbo": torch.float16,
                                   "flux-schnell": torch.bfloat16}),
                           (False, {"sdxl": torch.float16, "sd-turbo": torch.float16,
                                    "flux-schnell": torch.float16})):  # fmt: skip
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, _bf16=bf16, **kw: _bf16)
        for preset, dtype in expected.items():
            spec = ModelSpec.from_config(
                ModelConfig(source=preset), aliases=(), device="auto", dtype="auto"
            )
            assert loading._placement(spec) == (torch.device("cuda"), dtype), preset
    vae = architecture_config("sdxl-arch")["components"]["vae"]
    assert vae["config"]["force_upcast"] is True


def test_the_engine_buckets_only_compiled_models_and_measures_memory_only_on_gpus(
    cache_dir: Path, tmp_path: Path
):
    plain = build_engine(make_settings(cache_dir, tmp_path, offline=True, max_batch_size=8))
    assert plain._buckets() is None
    compiled = build_engine(
        make_settings(cache_dir, tmp_path, offline=True, compile=True, max_batch_size=8)
    )
    assert compiled._buckets() == (1, 2, 4, 8)
    warmed = build_engine(make_settings(cache_dir, tmp_path, offline=True, warmup="on"))
    warmed.load()
    loaded = warmed.pipeline(warmed.registry.default)
    assert loaded.activation_memory is None  # a CPU: the batch is max_batch_size's
    limit = warmed._batch_limit(warmed.registry.default)
    assert limit(job(seeds=(0,))) == warmed.config.max_batch_size
