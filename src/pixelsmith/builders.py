"""Collaborators built from Settings, for the app factory and the CLI alike: this is where the
settings reach the engine (as an EngineConfig), the image store and the content credentials."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from pixelsmith.engine.config import EngineConfig, SpeedOptions
from pixelsmith.engine.presets import unknown_model_message
from pixelsmith.engine.registry import ModelRegistry, registry_for
from pixelsmith.provenance import ContentCredentials
from pixelsmith.service.names import OPENAI_MODEL_NAMES, SNAPSHOT_BASES
from pixelsmith.settings import ModelConfig, Settings
from pixelsmith.storage import ImageStore, LocalImageStore

if TYPE_CHECKING:
    from pixelsmith.engine import Engine

logger = logging.getLogger(__name__)


def engine_config(settings: Settings, *, lazy_load: bool | None = None) -> EngineConfig:
    """The engine's part of the settings. The OpenAI model names go to the default model."""
    return EngineConfig(
        models=tuple(settings.model_configs()),
        default_aliases=OPENAI_MODEL_NAMES,
        alias_bases=SNAPSHOT_BASES,
        device=settings.device,
        dtype=settings.dtype,
        cache_dir=settings.cache_dir,
        offline=settings.offline,
        lazy_load=settings.lazy_load if lazy_load is None else lazy_load,
        memory_budget_gb=settings.memory_budget_gb,
        warmup=settings.warmup,
        speed=SpeedOptions(
            channels_last=settings.channels_last,
            compile=settings.compile,
            compile_mode=settings.compile_mode,
        ),
        max_queue_size=settings.max_queue_size,
        max_batch_size=settings.max_batch_size,
        batch_timeout=settings.batch_timeout,
    )


def build_engine(
    settings: Settings, *, show_progress: bool = False, lazy_load: bool | None = None
) -> Engine:
    """An engine for the settings, not loaded yet (nothing is read from disk, but torch and
    diffusers are imported)."""
    from pixelsmith.engine.engine import Engine

    return Engine(engine_config(settings, lazy_load=lazy_load), show_progress=show_progress)


def build_registry(settings: Settings, sources: list[str] | None = None) -> ModelRegistry:
    """The settings' models and the names each answers to, checked without importing torch:
    what the CLI validates its arguments against before anything slow (or, with `sources`,
    those models instead of the configured ones). A model that is a
    bare word but no known name is a ValueError (a typo, not a hub repo)."""
    config = engine_config(settings)
    if sources:  # these models instead of the configured ones (`pixelsmith download NAME`)
        config = replace(config, models=tuple(ModelConfig(source=source) for source in sources))
    registry = registry_for(config)
    for spec in registry.specs:
        problem = unknown_model_message(spec.source)
        if problem is not None:
            raise ValueError(problem)
    return registry


def build_store(settings: Settings) -> ImageStore:
    """The image store the settings name. An S3 store is checked now (ValueError with the
    reason when its bucket cannot be reached), so that a server never starts without one."""
    if settings.storage.startswith("s3://"):
        try:
            from pixelsmith.storage.s3 import S3ImageStore, parse_s3_location

            bucket, prefix = parse_s3_location(settings.storage)
            store = S3ImageStore(bucket, prefix, ttl_seconds=settings.url_ttl_seconds)
        except ImportError as exc:
            raise ValueError(
                f"storage={settings.storage} needs boto3 ({exc}): pip install 'pixelsmith[s3]'"
            ) from exc
        try:
            store.check()
        except ValueError:
            store.close()
            raise
        return store
    key = settings.url_signing_key
    return LocalImageStore(
        settings.resolved_storage_dir(),
        ttl_seconds=settings.url_ttl_seconds,
        signing_key=key.get_secret_value().encode() if key else None,
        file_mode=int(settings.storage_file_mode, 8),
    )


def build_content_credentials(settings: Settings) -> ContentCredentials | None:
    """What signs every returned image's C2PA manifest: the configured certificate and key,
    else the local authority in <storage_dir>/.c2pa (made on first use). None when
    c2pa_enabled is off, or, with one warning, when the c2pa extra is not installed. A
    certificate or key that cannot sign is a ValueError naming its setting, now rather than
    at the first image."""
    if not settings.c2pa_enabled:
        return None
    try:
        import c2pa  # noqa: F401  (only whether it is there)
    except ImportError:
        logger.warning(
            "c2pa_enabled is on but c2pa-python is not installed: images are returned without "
            "content credentials. pip install 'pixelsmith[c2pa]', or set c2pa_enabled = false."
        )
        return None
    from pixelsmith.provenance.certificates import configured_credentials, local_credentials

    if settings.c2pa_certificate_file is not None and settings.c2pa_private_key_file is not None:
        credentials = configured_credentials(
            settings.c2pa_certificate_file, settings.c2pa_private_key_file
        )
    else:
        credentials = local_credentials(settings.resolved_storage_dir())
    return ContentCredentials(
        credentials,
        timestamp_url=settings.c2pa_timestamp_url,
        generation_metadata=settings.c2pa_generation_metadata,
    )
