"""The one app factory. Collaborators are built from settings unless injected (tests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response

from pixelsmith import __version__, metrics
from pixelsmith.api.access_log import AccessLogMiddleware
from pixelsmith.api.auth import APIKeyChecker, APIKeyMiddleware
from pixelsmith.api.batches import BatchService, BatchStore
from pixelsmith.api.body_limits import BodyLimitMiddleware, body_limit
from pixelsmith.api.draining import DrainMiddleware, DrainState
from pixelsmith.api.error_handlers import install_error_handlers
from pixelsmith.api.limits import KeyLimiter, KeyLimitMiddleware, SharedLimiter
from pixelsmith.api.middleware import RequestContextMiddleware
from pixelsmith.api.openapi import install_openapi
from pixelsmith.api.routes import batches, docs, files, images, models, moderations, playground
from pixelsmith.api.transport.fetch import ImageFetcher
from pixelsmith.api.transport.responses import JSONResponse
from pixelsmith.builders import build_content_credentials, build_engine, build_store
from pixelsmith.matting import build_matting
from pixelsmith.moderation import Moderator, build_moderator
from pixelsmith.service import ImageService
from pixelsmith.service.backend import ServingBackend
from pixelsmith.service.database import open_database
from pixelsmith.service.files import FileService
from pixelsmith.service.models import ModelCatalog
from pixelsmith.settings import Settings, load_settings
from pixelsmith.storage import ImageStore

logger = logging.getLogger("pixelsmith")


async def _sweep_forever(
    store: ImageStore, files: FileService | None, batches: BatchService | None, interval: float
) -> None:
    sweeps: list[tuple[str, Callable[[], int]]] = [("images", store.sweep)]
    if files is not None:
        sweeps.append(("files", files.sweep))
    if batches is not None:
        sweeps.append(("batches", batches.store.sweep))
    while True:
        for what, sweep in sweeps:
            try:
                await asyncio.to_thread(sweep)
            except Exception:  # a failed sweep must never stop the next one
                logger.exception("sweeping expired %s failed", what)
        await asyncio.sleep(interval)


def _serve_mcp(
    app: FastAPI, settings: Settings
) -> Callable[[], contextlib.AbstractAsyncContextManager[None]] | None:
    """Route /mcp to the MCP tools (pixelsmith.mcp_server) when the mcp extra is installed;
    returns what the lifespan must run for it."""
    try:
        from pixelsmith.mcp_server import ToolDependencies, build_mcp_server, http_app_routes
    except ImportError:
        logger.info("MCP tools not served at /mcp: pip install 'pixelsmith[mcp]' for them")
        return None
    server = build_mcp_server(ToolDependencies.of_app(app, over_http=True))
    routes, lifespan = http_app_routes(
        server,
        host=settings.host,
        public_base_url=settings.public_base_url,
        max_body_bytes=body_limit("/mcp", "application/json"),
    )
    app.router.routes.extend(routes)
    return lifespan


def create_app(
    settings: Settings | None = None,
    *,
    engine: ServingBackend | None = None,
    store: ImageStore | None = None,
    moderator: Moderator | None = None,
    limiter: SharedLimiter | None = None,
    proxy_request_ids: bool = False,
    serve_files_and_batches: bool = True,
) -> FastAPI:
    """Build the ASGI app. An injected `engine` (the in-process Engine, or pixelsmith.ray's
    backend) may already be loaded; otherwise it is built and loaded at startup (which fails
    fast, with advice, when a model cannot be loaded). The moderator, unless injected, is built
    from settings at startup too; `limiter` replaces the in-process per-key limits (shared
    ones under Ray); `proxy_request_ids` adopts the request ids of a proxy that sets them."""
    # load_settings, not Settings(): `uvicorn --factory pixelsmith.app:create_app` must honour
    # PIXELSMITH_CONFIG_FILE like the CLI does.
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        the_engine: ServingBackend = app.state.engine
        if not the_engine.loaded:
            await asyncio.to_thread(the_engine.load)
        the_moderator = moderator
        if the_moderator is None:
            the_moderator = await asyncio.to_thread(build_moderator, settings)
        matting = await asyncio.to_thread(
            build_matting, settings.matting_model, offline=settings.offline
        )
        app.state.image_service = ImageService(
            the_engine,
            app.state.image_store,
            the_moderator,
            matting,
            credentials=app.state.content_credentials,
        )
        app.state.moderator = the_moderator
        await the_engine.start()
        limited = settings.rate_limit_per_minute or settings.max_concurrent_per_key
        if limited and not app.state.api_keys.enabled:
            logger.warning(
                "Per-key limits without API keys count each end user (safety_identifier or "
                "user), else each address: a client that invents identifiers is not held by "
                "them. Configure API keys for limits that hold."
            )
        if not app.state.api_keys.enabled and not settings.host_is_loopback:
            logger.warning(
                "No API keys are configured and the server listens on %s: anyone who can reach "
                "it can generate images. Set PIXELSMITH_API_KEYS or --api-keys-file.",
                settings.host,
            )
        mcp_sessions = contextlib.AsyncExitStack()
        if app.state.mcp_lifespan is not None:
            await mcp_sessions.enter_async_context(app.state.mcp_lifespan())
        batch_runner = None
        if app.state.batch_service is not None:
            batch_runner = asyncio.create_task(app.state.batch_service.run_forever())
        sweeper = asyncio.create_task(
            _sweep_forever(
                app.state.image_store,
                app.state.file_service,
                app.state.batch_service,
                settings.sweep_interval_seconds,
            )
        )
        try:
            yield
        finally:
            await mcp_sessions.aclose()
            for task in (sweeper, batch_runner):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await the_engine.stop()
            await asyncio.to_thread(app.state.image_store.close)
            if app.state.file_service is not None:
                app.state.file_service.database.close()

    app = FastAPI(
        title="pixelsmith",
        version=__version__,
        description="OpenAI-compatible image generation on Hugging Face diffusers.",
        lifespan=lifespan,
        # Served by api/routes/docs.py instead, with their assets from this server.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine or build_engine(settings)
    app.state.image_store = store or build_store(settings)
    # Now rather than at startup: a certificate that cannot sign stops `serve` before models load.
    app.state.content_credentials = build_content_credentials(settings)
    app.state.api_keys = APIKeyChecker(settings.accepted_api_keys())
    app.state.image_fetcher = (
        ImageFetcher(allow_private=settings.fetch_image_urls_allow_private)
        if settings.fetch_image_urls
        else None
    )
    app.state.model_catalog = ModelCatalog(app.state.engine.registry, created=int(time.time()))
    app.state.drain = DrainState()
    app.state.file_service = None
    app.state.batch_service = None
    if serve_files_and_batches:
        database = open_database(
            settings.database_url.get_secret_value() if settings.database_url else None,
            settings.resolved_database_path(),
        )
        app.state.file_service = FileService(database, app.state.image_store)
        app.state.batch_service = BatchService(
            BatchStore(database),
            app.state.file_service,
            lambda: app.state.image_service,
            # Batch lines come with no request to take a Host from.
            base_url=settings.own_base_url,
            concurrency=settings.max_batch_size,
        )

    app.state.key_limiter = limiter or KeyLimiter(
        per_minute=settings.rate_limit_per_minute,
        max_concurrent=settings.max_concurrent_per_key,
    )
    app.state.mcp_lifespan = _serve_mcp(app, settings) if settings.mcp_enabled else None

    install_error_handlers(app)
    install_openapi(app)
    # Added last = outermost: every response, the 401s included, gets its x-request-id; keys
    # are checked before per-key limits count anything.
    app.add_middleware(
        KeyLimitMiddleware, limiter=app.state.key_limiter, by_key=app.state.api_keys.enabled
    )
    app.add_middleware(APIKeyMiddleware, checker=app.state.api_keys)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(DrainMiddleware, state=app.state.drain)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(RequestContextMiddleware, proxy_request_ids=proxy_request_ids)
    app.include_router(images.router)
    app.include_router(files.router)
    app.include_router(batches.router)
    app.include_router(images.files_router)
    app.include_router(models.router)
    app.include_router(moderations.router)
    app.include_router(playground.router)
    app.mount("/playground/static", playground.static_files(), name="playground-static")
    app.include_router(docs.router)
    app.mount("/docs/assets", docs.assets(), name="docs-assets")

    backend_gauges = [
        metrics.PerModelGauge(
            "pixelsmith_queue_depth",
            "Jobs waiting in each model's queue (under Ray, in all its replicas).",
            lambda: app.state.engine.queue_depths(),
        ),
        metrics.PerModelGauge(
            "pixelsmith_replicas",
            "Running replicas of each model (1 on one process).",
            lambda: app.state.engine.replica_counts(),
        ),
    ]

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, Any]:
        """Liveness: the process answers (also while it drains)."""
        return {"status": "ok", "models": [spec.id for spec in app.state.engine.registry.specs]}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        """Readiness: started, models loaded, not draining, no model's queue full. 503 tells a
        load balancer to send requests elsewhere for now."""
        the_engine: ServingBackend = app.state.engine
        depths = the_engine.queue_depths()
        full = [model for model, depth in depths.items() if depth >= the_engine.max_queue_size]
        started = getattr(app.state, "image_service", None) is not None
        problems = (
            ([] if started else ["starting"])
            + ([] if the_engine.loaded else ["models not loaded"])
            + [f"queue full: {model}" for model in full]
        )
        body = {
            "status": "ready" if not problems else "not ready",
            "problems": problems,
            "queue_depth": depths,
            "max_queue_size": the_engine.max_queue_size,
        }
        return JSONResponse(body, status_code=503 if problems else 200)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.render(backend_gauges)
        return Response(body, media_type=content_type)

    return app
