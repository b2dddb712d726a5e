"""The engine: loads the configured pipelines and runs jobs on them. Knows nothing of HTTP."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Hashable

import torch

from pixelsmith.engine import gpu_memory
from pixelsmith.engine.config import EngineConfig
from pixelsmith.engine.jobs import GenerationJob, GenerationOutput, ModelCapabilities
from pixelsmith.engine.loading import LoadOptions, load_pipeline
from pixelsmith.engine.pipeline import LoadedPipeline
from pixelsmith.engine.registry import ModelSpec, registry_for
from pixelsmith.engine.worker import PipelineWorker, bucket_sizes
from pixelsmith.errors import ServiceUnavailableError

logger = logging.getLogger(__name__)


class Engine:
    """Owns the LoadedPipelines and one PipelineWorker per configured model.

    `load()` is blocking (downloads, weights); `start()` must run inside the event loop that
    will submit jobs. The CLI loads before starting uvicorn so that a model that cannot be
    loaded stops the program with a clear message before any port is opened.

    With `lazy_load`, `load()` loads nothing: a model is loaded by the first batch that needs
    it, on its worker thread (never the event loop). With `memory_budget_gb`, loading a model
    unloads the least recently used idle ones until the loaded weights fit the budget.
    """

    def __init__(self, config: EngineConfig, *, show_progress: bool = False) -> None:
        self.config = config
        self.registry = registry_for(config)
        self._load_options = LoadOptions(
            cache_dir=config.cache_dir,
            offline=config.offline,
            show_progress=show_progress,
            speed=config.speed,
            max_call_images=config.max_batch_size,
        )
        self._pipelines: dict[str, LoadedPipeline] = {}
        self._workers: dict[str, PipelineWorker] = {}
        self._last_used: dict[str, float] = {}
        self._running: dict[str, int] = {}  # batches in flight per model: never unloaded
        # What models loaded before weigh and can do; kept when they are unloaded.
        self._known_bytes: dict[str, int] = {}
        self._capabilities: dict[str, ModelCapabilities] = {}
        # One load at a time (it may take minutes); the short state changes (which models are
        # loaded and running, unloading) under their own lock, so runs never wait for a load.
        self._load_lock = threading.Lock()
        self._state_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether start() may run: every model is loaded, or models load on demand."""
        return self.config.lazy_load or len(self._pipelines) == len(self.registry.specs)

    @property
    def loaded_ids(self) -> list[str]:
        return list(self._pipelines)

    def load(self) -> None:
        if self.config.lazy_load:
            return
        for spec in self.registry.specs:
            self._load(spec)

    def capabilities(self, spec: ModelSpec) -> ModelCapabilities | None:
        """What the model can do, once it has been loaded; None before (lazy loading)."""
        return self._capabilities.get(spec.id)

    def _load(self, spec: ModelSpec) -> LoadedPipeline:
        with self._load_lock:
            if spec.id in self._pipelines:
                return self._pipelines[spec.id]
            # A model loaded before has a known size: make room first, so that the old
            # models and the new one are never in memory together over the budget.
            with self._state_lock:
                self._fit_budget(keep=spec.id, incoming=self._known_bytes.get(spec.id, 0))
            loaded = load_pipeline(spec, options=self._load_options)
            warmup = self.config.warmup
            if warmup == "on" or (warmup == "auto" and loaded.device.type != "cpu"):
                self._warm_up(loaded)
            with self._state_lock:
                self._pipelines[spec.id] = loaded
                self._known_bytes[spec.id] = loaded.weight_bytes
                self._capabilities[spec.id] = loaded.capabilities
                self._last_used[spec.id] = time.monotonic()
                self._fit_budget(keep=spec.id)
            return loaded

    def _fit_budget(self, *, keep: str, incoming: int = 0) -> None:
        """Unload least recently used idle models until the loaded weights, plus `incoming`
        bytes about to load, fit the budget."""
        budget = self.config.memory_budget_gb
        if not budget:
            return
        limit = budget * 2**30 - incoming
        while (total := sum(p.weight_bytes for p in self._pipelines.values())) > limit:
            idle = [
                model_id
                for model_id in self._pipelines
                if model_id != keep
                and not self._running.get(model_id)
                and (model_id not in self._workers or self._workers[model_id].idle)
            ]
            if not idle:
                logger.warning(
                    "loaded models take %.1f GB, over the %.1f GB budget, and none can be "
                    "unloaded now",
                    total / 2**30,
                    budget,
                )
                return
            self._unload(min(idle, key=lambda model_id: self._last_used.get(model_id, 0.0)))

    def _unload(self, model_id: str) -> None:
        loaded = self._pipelines.pop(model_id)
        logger.info("unloading %s (%.2f GB) to stay within the memory budget",
                    model_id, loaded.weight_bytes / 2**30)  # fmt: skip
        device = loaded.device
        del loaded
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    def _warm_up(self, loaded: LoadedPipeline) -> None:
        """A short generation at the default size: CUDA context, kernel selection, and (with
        compile) compilation happen now rather than in the first client's request. On a GPU
        it also measures what one image's call takes of its memory (gpu_memory.py). With
        compile, every batch size the worker will form (its buckets) is compiled now."""
        spec = loaded.spec
        width, height = spec.default_size.width, spec.default_size.height

        def generate(count: int) -> None:
            loaded.run(
                GenerationJob(
                    prompt="warm-up",
                    width=width,
                    height=height,
                    num_inference_steps=spec.steps.low,
                    guidance_scale=spec.guidance_scale,
                    seeds=tuple(range(count)),
                )
            )

        started = time.perf_counter()
        generate(1)
        if loaded.device.type == "cuda":  # measured on a second call: the first's one-off
            loaded.activation_memory = gpu_memory.measure(  # allocations are no image's
                loaded.device, width, height, lambda: generate(1)
            )
        if self.config.speed.compile:
            for size in self._buckets(loaded) or ():
                if size > 1:
                    generate(size)
        loaded.warmup_seconds = time.perf_counter() - started
        logger.info("warmed up %s in %.1f s", spec.id, loaded.warmup_seconds)

    def _buckets(self, loaded: LoadedPipeline | None = None) -> tuple[int, ...] | None:
        """The batch sizes the workers form: with compile, a few (each one a compiled graph);
        without, any. At warm-up, capped by what fits the GPU at the default size."""
        if not self.config.speed.compile:
            return None
        largest = self.config.max_batch_size
        if loaded is not None and loaded.activation_memory is not None:
            size = loaded.spec.default_size
            fits = loaded.activation_memory.images_that_fit(
                size.width, size.height, gpu_memory.free_bytes(loaded.device)
            )
            largest = min(largest, fits)
        return bucket_sizes(largest)

    def pipeline(self, spec: ModelSpec) -> LoadedPipeline:
        """The model's pipeline, loading it first when models load on demand. Blocking: only
        the model's worker thread calls it while the server runs."""
        loaded = self._pipelines.get(spec.id)
        if loaded is None:
            if not self.config.lazy_load:
                raise ServiceUnavailableError(f"model {spec.id} is not loaded")
            loaded = self._load(spec)
        self._last_used[spec.id] = time.monotonic()
        return loaded

    def _runner(self, spec: ModelSpec) -> Callable[[list[GenerationJob]], list[GenerationOutput]]:
        def run_batch(jobs: list[GenerationJob]) -> list[GenerationOutput]:
            with self._state_lock:
                self._running[spec.id] = self._running.get(spec.id, 0) + 1
            try:
                # Looked up per batch: with lazy loading the model may have been unloaded.
                return self.pipeline(spec).run_batch(jobs)
            finally:
                with self._state_lock:
                    self._running[spec.id] -= 1

        return run_batch

    def _batch_key(self, spec: ModelSpec) -> Callable[[GenerationJob], Hashable | None]:
        def batch_key(job: GenerationJob) -> Hashable | None:
            loaded = self._pipelines.get(spec.id)
            # Not loaded yet (lazy): the first batch runs alone and loads the model.
            return loaded.batch_key(job) if loaded is not None else None

        return batch_key

    def _batch_limit(self, spec: ModelSpec) -> Callable[[GenerationJob], int]:
        def batch_limit(job: GenerationJob) -> int:
            """The images of the job's size that fit the GPU's free memory now (any number,
            up to max_batch_size, off a GPU or before the model has been measured)."""
            loaded = self._pipelines.get(spec.id)
            if loaded is None or loaded.activation_memory is None:
                return self.config.max_batch_size
            free = gpu_memory.free_bytes(loaded.device)
            return loaded.activation_memory.images_that_fit(job.width, job.height, free)

        return batch_limit

    async def start(self) -> None:
        if not self.loaded:
            raise RuntimeError("Engine.load() must be called before Engine.start()")
        for spec in self.registry.specs:
            if spec.id not in self._workers:
                worker = PipelineWorker(
                    spec.id,
                    self._runner(spec),
                    max_queue_size=self.config.max_queue_size,
                    max_batch_size=self.config.max_batch_size,
                    batch_timeout=self.config.batch_timeout,
                    batch_key=self._batch_key(spec),
                    batch_limit=self._batch_limit(spec),
                    buckets=self._buckets(),
                )
                worker.start()
                self._workers[spec.id] = worker

    async def stop(self) -> None:
        """Drain queued work, then release the worker threads."""
        workers, self._workers = self._workers, {}
        for worker in workers.values():
            await worker.stop()

    def queue_depths(self) -> dict[str, int]:
        """Jobs waiting per model (0 for a model whose worker has not started)."""
        return {
            spec.id: (self._workers[spec.id].depth if spec.id in self._workers else 0)
            for spec in self.registry.specs
        }

    def replica_counts(self) -> dict[str, int]:
        """One replica of each model: this process."""
        return {spec.id: 1 for spec in self.registry.specs}

    @property
    def max_queue_size(self) -> int:
        return self.config.max_queue_size

    async def queued(self, output: asyncio.Future[GenerationOutput]) -> None:
        """enqueue() has already queued the job or raised: nothing to wait for."""

    def enqueue(self, spec: ModelSpec, job: GenerationJob) -> asyncio.Future[GenerationOutput]:
        """Queue `job` now (RateLimitError when the queue is full); await the result later."""
        worker = self._workers.get(spec.id)
        if worker is None:
            raise ServiceUnavailableError(f"model {spec.id} is not running", should_retry=False)
        return worker.enqueue(job)
