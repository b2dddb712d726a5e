"""The engine: loads the configured pipelines and runs jobs on them. Knows nothing of HTTP."""

from __future__ import annotations

import asyncio
import logging
import time

from pixelsmith.engine.jobs import GenerationJob, GenerationOutput, JobKind
from pixelsmith.engine.loader import LoadedPipeline, SpeedOptions, load_pipeline
from pixelsmith.engine.registry import ModelRegistry, ModelSpec
from pixelsmith.engine.worker import PipelineWorker
from pixelsmith.errors import ServiceUnavailableError
from pixelsmith.settings import Settings, check_size_string

logger = logging.getLogger(__name__)


class Engine:
    """Owns one LoadedPipeline and one PipelineWorker per configured model.

    `load()` is blocking (downloads, weights); `start()` must run inside the event loop that
    will submit jobs. The CLI loads before starting uvicorn so that a model that cannot be
    loaded stops the program with a clear message before any port is opened.
    """

    def __init__(self, settings: Settings, *, show_progress: bool = False) -> None:
        self.settings = settings
        self.registry = ModelRegistry(
            settings.model_configs(), device=settings.device, dtype=settings.dtype
        )
        self._show_progress = show_progress
        self._pipelines: dict[str, LoadedPipeline] = {}
        self._workers: dict[str, PipelineWorker] = {}

    @property
    def loaded(self) -> bool:
        return len(self._pipelines) == len(self.registry.specs)

    def load(self) -> None:
        speed = SpeedOptions(
            channels_last=self.settings.channels_last, compile=self.settings.compile
        )
        for spec in self.registry.specs:
            if spec.id not in self._pipelines:
                loaded = load_pipeline(
                    spec,
                    cache_dir=self.settings.cache_dir,
                    offline=self.settings.offline,
                    show_progress=self._show_progress,
                    speed=speed,
                )
                warmup = self.settings.warmup
                if warmup == "on" or (warmup == "auto" and loaded.device.type != "cpu"):
                    self._warm_up(loaded)
                self._pipelines[spec.id] = loaded

    @staticmethod
    def _warm_up(loaded: LoadedPipeline) -> None:
        """One short generation at the default size: CUDA context, kernel selection, and (with
        compile) compilation happen now rather than in the first client's request."""
        spec = loaded.spec
        width, height = check_size_string(spec.default_size)
        started = time.perf_counter()
        loaded.run(
            GenerationJob(
                prompt="warm-up",
                width=width,
                height=height,
                num_inference_steps=spec.steps.low,
                guidance_scale=spec.guidance_scale,
                seeds=(0,),
            )
        )
        loaded.warmup_seconds = time.perf_counter() - started
        logger.info("warmed up %s in %.1f s", spec.id, loaded.warmup_seconds)

    def pipeline(self, spec: ModelSpec) -> LoadedPipeline:
        try:
            return self._pipelines[spec.id]
        except KeyError:
            raise ServiceUnavailableError(f"model {spec.id} is not loaded") from None

    def accepts(self, spec: ModelSpec, argument: str) -> bool:
        """Whether the model's pipeline takes `argument` (negative_prompt, ...)."""
        return self.pipeline(spec).accepts(argument)

    def fit_prompt(self, spec: ModelSpec, text: str, suffix: str = "") -> tuple[str, int]:
        """The part of `text` the model reads (room left for `suffix`), and its token count."""
        return self.pipeline(spec).fit_prompt(text, suffix)

    def supports(self, spec: ModelSpec, kind: JobKind) -> bool:
        """Whether the model can run `kind` (image-to-image and inpaint come from the same
        weights through diffusers' from_pipe)."""
        return self.pipeline(spec).supports(kind)

    async def start(self) -> None:
        if not self.loaded:
            raise RuntimeError("Engine.load() must be called before Engine.start()")
        for model_id, loaded in self._pipelines.items():
            if model_id not in self._workers:
                worker = PipelineWorker(
                    model_id,
                    loaded.run_batch,
                    max_queue_size=self.settings.max_queue_size,
                    max_batch_size=self.settings.max_batch_size,
                    batch_timeout=self.settings.batch_timeout,
                    batch_key=loaded.batch_key,
                )
                worker.start()
                self._workers[model_id] = worker

    async def stop(self) -> None:
        """Drain queued work, then release the worker threads."""
        workers, self._workers = self._workers, {}
        for worker in workers.values():
            await worker.stop()

    async def generate(self, spec: ModelSpec, job: GenerationJob) -> GenerationOutput:
        return await self.enqueue(spec, job)

    def enqueue(self, spec: ModelSpec, job: GenerationJob) -> asyncio.Future[GenerationOutput]:
        """Queue `job` now (RateLimitError when the queue is full); await the result later."""
        worker = self._workers.get(spec.id)
        if worker is None:
            raise ServiceUnavailableError(f"model {spec.id} is not running", should_retry=False)
        return worker.enqueue(job)
