"""pixelsmith on Ray Serve: the same FastAPI app as the ingress, each configured model as a
deployment of replicas (one accelerator each), per-key limits shared by all of them.

    pixelsmith serve --replicas 2 --model tiny          # a local Ray cluster, started here
    pixelsmith serve --ray-address auto --replicas 4    # join a running cluster
    serve run pixelsmith.ray:app model=tiny replicas=2  # Ray's own tools (or a config YAML)

Layout (docs/deployment.md#ray-serve):

* `Ingress`: create_app's FastAPI app (routes, moderation, encoding, storage) with a
  `RayBackend` in place of the in-process engine. It plans each request as on one process and
  sends the `GenerationJob` to the model's deployment.
* `ModelReplica`: one model's Engine (its queue, dynamic batching and thread), nothing else.
  Serve's router sends each call to the replica with the shortest queue (power of two
  choices on ongoing requests); calls that wait on one replica are batched there by the
  engine's worker, as on one process. `serve.batch` would batch in Serve instead, but only
  calls that arrive within its wait, by count, without the engine's batch keys (size, steps,
  guidance); the engine's worker already does better, so it stays.
* `KeyLimits`: one replica holding the per-key counts, so that limits hold across ingress
  replicas.

A replica that dies is replaced by Serve. Its in-flight calls fail here with a 503
`service_unavailable` that the official clients retry (x-should-retry: true); their retries
reach a live replica. The other replicas' requests are not affected.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, cast

from ray import serve
from ray.exceptions import RayActorError, RayError
from ray.serve.exceptions import BackPressureError, RayServeException
from ray.serve.handle import DeploymentHandle

from pixelsmith.api.limits import KeyLimiter
from pixelsmith.builders import engine_config
from pixelsmith.engine import Engine, GenerationJob, GenerationOutput, ModelCapabilities
from pixelsmith.engine.jobs import UnsupportedJobError
from pixelsmith.engine.registry import ModelRegistry, ModelSpec
from pixelsmith.errors import APIError, RateLimitError, ServiceUnavailableError
from pixelsmith.settings import Settings, load_settings

logger = logging.getLogger(__name__)

# serve.deployment, untyped: its overloads do not cover a class passed positionally.
_deployment: Any = serve.deployment
INGRESS_NAME = "pixelsmith"
LIMITS_NAME = "key-limits"
# How often the ingress asks the model replicas for their queue depths (for /ready, /metrics).
DEPTH_POLL_SECONDS = 2.0
# Ongoing calls a model replica takes: beyond its batch, they wait in its own queue (where
# they can still be batched); Serve holds the rest and sends them to the first free replica.
CALLS_PER_REPLICA_FACTOR = 2


def deployment_name(model_id: str) -> str:
    return "model-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in model_id)


def _error_to_wire(exc: BaseException) -> dict[str, Any]:
    """An error of a model replica as data: exceptions with keyword-only arguments do not
    survive pickling, and the ingress must answer exactly as one process would."""
    if isinstance(exc, UnsupportedJobError):
        return {"unsupported": exc.param}
    if isinstance(exc, APIError):
        return {
            "status": exc.status_code,
            "type": exc.error_type,
            "message": exc.message,
            "param": exc.param,
            "code": exc.code,
            "headers": exc.headers,
            "extra": exc.extra,
        }
    return {"status": 503, "type": "server_error", "message": "The model replica failed.",
            "code": "service_unavailable", "headers": {"x-should-retry": "false"}}  # fmt: skip


class ForwardedError(APIError):
    """An APIError raised by a model replica, as the ingress re-raises it."""

    def __init__(self, wire: dict[str, Any]) -> None:
        super().__init__(
            wire["message"],
            param=wire.get("param"),
            code=wire.get("code"),
            headers=wire.get("headers"),
            extra=wire.get("extra"),
        )
        self.status_code = int(wire["status"])
        self.error_type = str(wire["type"])


def _error_from_wire(wire: dict[str, Any]) -> Exception:
    if "unsupported" in wire:
        return UnsupportedJobError(wire["unsupported"])
    return ForwardedError(wire)


# --- the model replicas -------------------------------------------------------------------


class ModelReplica:
    """One model's engine. `run` streams ("queued", replica id), then while it runs
    ("preview", (index, images)) when previews were asked for and ("step", (done, total)) when
    steps were, then ("output", GenerationOutput) or ("error", wire error)."""

    def __init__(self, settings: Settings, model_id: str) -> None:
        from pixelsmith.logs import configure_logging

        configure_logging(settings.log_level, settings.log_format)
        config = engine_config(settings)
        ids = [spec.id for spec in Engine(config).registry.specs]  # in the configs' order
        mine = config.models[ids.index(model_id)]
        self.engine = Engine(replace(config, models=(mine,), default_aliases=()))
        self.engine.load()
        self.spec = self.engine.registry.specs[0]
        self._started = False
        self._start_lock = asyncio.Lock()
        try:
            self.replica_id = serve.get_replica_context().replica_id.unique_id
        except Exception:  # outside Serve (unit tests)
            self.replica_id = f"pid-{os.getpid()}"

    async def _start(self) -> None:
        async with self._start_lock:
            if not self._started:
                await self.engine.start()
                self._started = True

    async def capabilities(self) -> ModelCapabilities | None:
        return self.engine.capabilities(self.spec)

    async def queue_depth(self) -> int:
        return self.engine.queue_depths().get(self.spec.id, 0)

    async def identity(self) -> dict[str, Any]:
        return {"replica": self.replica_id, "pid": os.getpid()}

    async def run(
        self, job: GenerationJob, previews: bool, steps: bool = False
    ) -> AsyncIterator[tuple[str, Any]]:
        await self._start()
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()

        def on_preview(index: int, images: list[Any]) -> None:  # the worker's thread
            loop.call_soon_threadsafe(arrived.put_nowait, ("preview", (index, images)))

        def on_step(done: int, total: int) -> None:  # the worker's thread
            loop.call_soon_threadsafe(arrived.put_nowait, ("step", (done, total)))

        local = replace(
            job,
            cancelled=cancelled,
            on_preview=on_preview if previews else None,
            on_step=on_step if steps else None,
        )
        try:
            output = self.engine.enqueue(self.spec, local)
        except (APIError, UnsupportedJobError) as exc:
            yield ("error", _error_to_wire(exc))
            return
        try:
            yield ("queued", self.replica_id)
            while not output.done():
                waiter = asyncio.ensure_future(arrived.get())
                await asyncio.wait(
                    {waiter, cast(asyncio.Future[Any], output)},
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if waiter.done():
                    yield waiter.result()
                else:
                    waiter.cancel()
            while not arrived.empty():
                yield arrived.get_nowait()
            try:
                result = output.result()
            except Exception as exc:
                yield ("error", _error_to_wire(exc))
                return
            yield ("output", replace(result, served_by=self.replica_id))
        except (asyncio.CancelledError, GeneratorExit):
            # The ingress gave up on the call (its client left): stop after the current step.
            cancelled.set()
            output.cancel()
            raise


class KeyLimits:
    """The per-key counts of every ingress replica: one KeyLimiter, in one replica."""

    def __init__(self, per_minute: int, max_concurrent: int) -> None:
        self.limiter = KeyLimiter(per_minute=per_minute, max_concurrent=max_concurrent)

    async def acquire(self, client: str) -> tuple[str, float] | None:
        return self.limiter.refusal(client)

    async def release(self, client: str) -> None:
        self.limiter.release(client)


class SharedKeyLimiter:
    """The ingress's side of KeyLimits (a SharedLimiter for KeyLimitMiddleware)."""

    def __init__(self, handle: DeploymentHandle[Any], *, enabled: bool) -> None:
        self._handle = handle
        self._enabled = enabled

    @property
    def enabled(self) -> bool:
        return self._enabled

    async def take(self, client: str) -> None:
        refusal = await self._handle.acquire.remote(client)
        if refusal is not None:
            message, retry_after = refusal
            raise RateLimitError(message, retry_after_seconds=retry_after)

    async def give_back(self, client: str) -> None:
        await self._handle.release.remote(client)


# --- the ingress ----------------------------------------------------------------------------


class RayBackend:
    """The service's backend on the ingress: jobs go to the model deployments. Also what
    create_app serves (loaded, started and stopped with the app, watched by /ready)."""

    def __init__(self, settings: Settings, models: dict[str, DeploymentHandle[Any]]) -> None:
        config = engine_config(settings)
        self.registry = ModelRegistry(
            config.models,
            default_aliases=config.default_aliases,
            alias_bases=config.alias_bases,
            device=config.device,
            dtype=config.dtype,
        )
        self._models = models
        self._max_queue_size = settings.max_queue_size
        self._capabilities: dict[str, ModelCapabilities | None] = {}
        self._depths = {spec.id: 0 for spec in self.registry.specs}
        self._replicas = {spec.id: 0 for spec in self.registry.specs}
        self._admitted: dict[int, asyncio.Future[None]] = {}
        self._poller: asyncio.Task[None] | None = None

    @property
    def loaded(self) -> bool:
        return True  # each replica loads its model before Serve sends it anything

    @property
    def max_queue_size(self) -> int:
        return self._max_queue_size

    def load(self) -> None:
        pass

    async def start(self) -> None:
        for spec in self.registry.specs:
            handle = self._models[spec.id]
            self._capabilities[spec.id] = await handle.capabilities.remote()
        self._poller = asyncio.create_task(self._poll_depths())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()

    async def _poll_depths(self) -> None:
        """Queue depths (of one replica per call, scaled by the replicas running) and replica
        counts, for /ready and /metrics."""
        while True:
            try:
                self._replicas = await asyncio.to_thread(_running_replicas, self.registry)
            except Exception:  # the controller is busy or moving: keep the last figures
                logger.debug("could not read the replica counts", exc_info=True)
            for spec in self.registry.specs:
                try:
                    depth = await self._models[spec.id].queue_depth.remote()
                except RayError:
                    continue  # a replica being replaced: keep the last figure
                self._depths[spec.id] = depth * max(1, self._replicas.get(spec.id, 1))
            await asyncio.sleep(DEPTH_POLL_SECONDS)

    def queue_depths(self) -> dict[str, int]:
        return dict(self._depths)

    def replica_counts(self) -> dict[str, int]:
        return dict(self._replicas)

    def capabilities(self, spec: ModelSpec) -> ModelCapabilities | None:
        return self._capabilities.get(spec.id)

    def enqueue(self, spec: ModelSpec, job: GenerationJob) -> asyncio.Future[GenerationOutput]:
        loop = asyncio.get_running_loop()
        output: asyncio.Future[GenerationOutput] = loop.create_future()
        admitted: asyncio.Future[None] = loop.create_future()
        # The callbacks stay here: the replica makes its own and streams what they get.
        wire = replace(job, on_preview=None, on_step=None, cancelled=None)
        call = loop.create_task(
            self._call(spec, wire, job.on_preview, job.on_step, output, admitted)
        )
        self._admitted[id(output)] = admitted

        def finished(done: asyncio.Future[GenerationOutput]) -> None:
            self._admitted.pop(id(done), None)
            if done.cancelled():
                call.cancel()  # cancels the Serve call, and with it the replica's run

        output.add_done_callback(finished)
        return output

    async def queued(self, output: asyncio.Future[GenerationOutput]) -> None:
        admitted = self._admitted.get(id(output))
        if admitted is None:
            if output.done() and not output.cancelled() and output.exception() is not None:
                raise output.exception()  # type: ignore[misc]
            return
        await asyncio.wait(
            {cast(asyncio.Future[Any], admitted), cast(asyncio.Future[Any], output)},
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not admitted.done() and output.done() and not output.cancelled():
            error = output.exception()
            if error is not None:
                raise error

    async def _call(
        self,
        spec: ModelSpec,
        job: GenerationJob,
        on_preview: Any,
        on_step: Any,
        output: asyncio.Future[GenerationOutput],
        admitted: asyncio.Future[None],
    ) -> None:
        stream: Any = (
            self._models[spec.id]
            .options(stream=True)
            .run.remote(job, on_preview is not None, on_step is not None)
        )
        try:
            async for kind, payload in stream:
                if kind == "queued":
                    if not admitted.done():
                        admitted.set_result(None)
                elif kind == "preview" and on_preview is not None:
                    on_preview(*payload)
                elif kind == "step" and on_step is not None:
                    on_step(*payload)
                elif kind == "output" and not output.done():
                    output.set_result(payload)
                elif kind == "error" and not output.done():
                    output.set_exception(_error_from_wire(payload))
        except asyncio.CancelledError:
            stream.cancel()
            raise
        except BackPressureError:
            # Serve's own queue for the model is full too: as a full queue on one process.
            if not output.done():
                output.set_exception(
                    RateLimitError(
                        f"The server is busy: every replica of model {spec.id} has a full "
                        "queue. Retry shortly.",
                        retry_after_seconds=DEPTH_POLL_SECONDS,
                    )
                )
        except (RayActorError, RayError, RayServeException) as exc:
            logger.warning("a %s replica failed during a call: %s", spec.id, type(exc).__name__)
            if not output.done():
                output.set_exception(
                    ServiceUnavailableError(
                        f"The replica of model {spec.id} that ran this request stopped. Retry "
                        "the request: another replica will answer it.",
                        should_retry=True,
                    )
                )
        finally:
            if not output.done():
                output.set_exception(
                    ServiceUnavailableError(f"Model {spec.id} gave no answer.", should_retry=True)
                )
            if not admitted.done():
                admitted.cancel()


def _running_replicas(registry: ModelRegistry) -> dict[str, int]:
    """Running replicas of each model's deployment, from Serve's controller (blocking)."""
    status = serve.status().applications[INGRESS_NAME]
    counts: dict[str, int] = {}
    for spec in registry.specs:
        deployment = status.deployments.get(deployment_name(spec.id))
        states = dict(deployment.replica_states) if deployment else {}
        counts[spec.id] = sum(n for state, n in states.items() if str(state).endswith("RUNNING"))
    return counts


class Ingress:
    """create_app's app, on the RayBackend and the shared limits."""

    def __init__(
        self,
        settings: Settings,
        models: dict[str, DeploymentHandle[Any]],
        limits: DeploymentHandle[Any] | None,
    ) -> None:
        from pixelsmith.logs import configure_logging

        configure_logging(settings.log_level, settings.log_format)
        self.settings = settings
        self.models = models
        self.limits = limits

    def __serve_build_asgi_app__(self) -> Any:
        from pixelsmith.app import create_app

        limiter = None
        if self.limits is not None:
            limiter = SharedKeyLimiter(self.limits, enabled=True)
        return create_app(
            self.settings,
            engine=RayBackend(self.settings, self.models),
            limiter=limiter,
            proxy_request_ids=True,  # Serve's proxy sets x-request-id
            # Files and batches need state every ingress replica reaches: PostgreSQL for the
            # records, object storage for the contents. Without both they are not served.
            serve_files_and_batches=bool(self.settings.database_url)
            and self.settings.storage.startswith("s3://"),
        )


# --- the application ----------------------------------------------------------------------


def default_actor_options() -> dict[str, Any]:
    """One GPU per model replica when the cluster has GPUs, else one CPU."""
    import ray

    if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1}
    return {"num_cpus": 1}


def autoscaling_config(settings: Settings) -> dict[str, Any]:
    """ray_autoscaling_config over pixelsmith's defaults: from 1 to `replicas` replicas, one
    more whenever replicas have more than a full batch each in flight; slow to scale down,
    since a model takes long to load."""
    defaults: dict[str, Any] = {
        "min_replicas": 1,
        "max_replicas": settings.replicas,
        "target_ongoing_requests": settings.max_batch_size,
        "upscale_delay_s": 10,
        "downscale_delay_s": 300,
    }
    return defaults | (settings.ray_autoscaling_config or {})


def build_app(settings: Settings) -> Any:
    """The Serve application for `settings`: ingress, one deployment per model, limits."""
    engine = Engine(engine_config(settings))  # for the model ids only: nothing loads
    actor_options = settings.ray_actor_options or default_actor_options()
    calls = max(1, settings.max_batch_size * CALLS_PER_REPLICA_FACTOR)
    scaling: dict[str, Any] = (
        {"autoscaling_config": autoscaling_config(settings)}
        if settings.ray_autoscaling_config is not None
        else {"num_replicas": settings.replicas}
    )
    models = {
        spec.id: _deployment(ModelReplica)
        .options(
            name=deployment_name(spec.id),
            ray_actor_options=actor_options,
            max_ongoing_requests=calls,
            # A replica waits for its own queue first; Serve queues the rest.
            max_queued_requests=settings.max_queue_size * max(1, settings.replicas),
            health_check_period_s=5,
            **scaling,
        )
        .bind(settings, spec.id)
        for spec in engine.registry.specs
    }
    limits = None
    if settings.rate_limit_per_minute or settings.max_concurrent_per_key:
        limits = (
            _deployment(KeyLimits)
            .options(name=LIMITS_NAME, num_replicas=1, ray_actor_options={"num_cpus": 0})
            .bind(settings.rate_limit_per_minute, settings.max_concurrent_per_key)
        )
    ingress = _deployment(serve.ingress()(Ingress)).options(
        name=INGRESS_NAME,
        num_replicas=max(1, settings.ingress_replicas or settings.replicas),
        ray_actor_options={"num_cpus": settings.ingress_cpus},
        max_ongoing_requests=settings.max_connections,
    )
    return ingress.bind(settings, models, limits)


def app(args: dict[str, str] | None = None) -> Any:
    """`serve run pixelsmith.ray:app [setting=value ...]`: an application builder. Settings come
    from PIXELSMITH_* variables and PIXELSMITH_CONFIG_FILE, as for `pixelsmith serve`, with the
    `args` (setting names, from the command line or the config YAML's `args`) on top."""
    settings = load_settings(**(args or {}))
    return build_app(settings)


def _cpus_needed(settings: Settings) -> int:
    models = len(Engine(engine_config(settings)).registry.specs)
    per_replica = float((settings.ray_actor_options or {"num_cpus": 1}).get("num_cpus", 1))
    replicas = settings.replicas
    if settings.ray_autoscaling_config is not None:
        replicas = int(autoscaling_config(settings)["max_replicas"])
    ingress = max(1, settings.ingress_replicas or settings.replicas) * settings.ingress_cpus
    return math.ceil(models * replicas * per_replica + ingress) + 1  # +1: Serve's own actors


def run(settings: Settings) -> int:
    """`pixelsmith serve` with --replicas N or --ray-address: start or join a Ray cluster,
    run the application on the host and port of the settings, until SIGTERM or Ctrl-C."""
    import signal

    import ray

    options: dict[str, Any] = {}
    if settings.ray_address is None:
        # A local cluster: enough logical CPUs for every replica (Ray counts them only to
        # place actors), so that CPU-only model replicas leave room for the ingress.
        options["num_cpus"] = max(os.cpu_count() or 1, _cpus_needed(settings))
        if settings.host_is_loopback:
            options["_node_ip_address"] = "127.0.0.1"  # and stays on loopback
    ray.init(
        address=settings.ray_address,
        include_dashboard=False,
        namespace="pixelsmith",
        log_to_driver=True,
        **options,
    )
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_app(settings), name=INGRESS_NAME, route_prefix="/", blocking=False)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"pixelsmith on Ray Serve: http://{settings.host}:{settings.port}/v1", flush=True)
    stop.wait()
    serve.delete(INGRESS_NAME)
    serve.shutdown()
    ray.shutdown()
    return 0


__all__ = ["Ingress", "KeyLimits", "ModelReplica", "RayBackend", "app", "build_app", "run"]
