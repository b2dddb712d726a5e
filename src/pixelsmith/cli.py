"""`pixelsmith serve | generate | edit | models`. Every setting is also a flag, derived from
Settings."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pybase64
from pydantic import ValidationError

from pixelsmith import __version__
from pixelsmith.batch_cli import add_batch_parser, run_batch_command
from pixelsmith.errors import APIError
from pixelsmith.logs import configure_logging
from pixelsmith.settings import Settings, load_settings

if TYPE_CHECKING:
    from pixelsmith.engine import Engine, ModelSpec

# Settings that are not simple values; they come from the config file or the environment.
_NOT_FLAGS = {"models"}


def _flag_type(annotation: Any) -> tuple[Any, bool]:
    """(argparse type, is_bool) for a settings annotation such as `int` or `Path | None`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _flag_type(options[0])
    if origin is typing.Annotated:
        return _flag_type(typing.get_args(annotation)[0])
    if annotation is bool:
        return None, True
    if annotation in (int, float):
        return annotation, False
    return str, False  # str, Path, SecretStr, Literal, comma-separated lists


# What only a server listening on a port uses: `pixelsmith mcp` (stdio) has no use for them.
_HTTP_SERVER_ONLY = frozenset({
    "host", "port", "header_timeout_seconds", "keep_alive_timeout_seconds", "max_connections",
    "shutdown_grace_seconds", "replicas", "ray_address", "ray_actor_options",
    "ray_autoscaling_config", "ingress_replicas", "ingress_cpus", "rate_limit_per_minute",
    "max_concurrent_per_key", "database_path", "database_url", "mcp_enabled", "api_keys",
    "api_keys_file", "log_format",
})  # fmt: skip
# And what only a long-running server uses: one request in-process (`generate`, `edit`) or a
# listing (`models`) has no queue, no URLs to sign and nobody else's images to fetch.
_SERVER_ONLY = _HTTP_SERVER_ONLY | {
    "max_queue_size", "max_batch_size", "batch_timeout", "lazy_load", "memory_budget_gb",
    "storage", "storage_file_mode", "url_ttl_seconds", "url_signing_key", "public_base_url",
    "sweep_interval_seconds", "fetch_image_urls", "fetch_image_urls_allow_private",
    "mcp_readable_dirs",
}  # fmt: skip


def add_settings_flags(
    parser: argparse.ArgumentParser, *, leave_out: frozenset[str] = frozenset()
) -> None:
    """A flag per setting, except those in `leave_out` (which the command does not use; they
    can still come from the environment or the config file)."""
    group = parser.add_argument_group("settings (also PIXELSMITH_<NAME> env vars or --config file)")
    group.add_argument("--config", help="TOML config file (env PIXELSMITH_CONFIG_FILE).")
    for name, field in Settings.model_fields.items():
        if name in _NOT_FLAGS or name in leave_out:
            continue
        flag = "--" + name.replace("_", "-")
        flag_type, is_bool = _flag_type(field.annotation)
        help_text = (field.description or "").replace("%", "%%")
        if is_bool:
            group.add_argument(
                flag,
                dest=f"setting_{name}",
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(flag, dest=f"setting_{name}", type=flag_type, help=help_text)


def _add_image_options(parser: argparse.ArgumentParser, *, default_output: str) -> None:
    """The request options shared by `generate` and `edit`."""
    parser.add_argument(
        "-o",
        "--output",
        default=default_output,
        help="Output file. With -n > 1, -1, -2, ... are added before the extension. The "
        "extension picks the format (png, jpeg/jpg, webp) unless --output-format is given.",
    )
    parser.add_argument("-n", type=int, default=None, help="Number of images (1-10).")
    parser.add_argument("--size", help="WIDTHxHEIGHT or auto.")
    parser.add_argument("--quality", help="auto, low, medium, high (or standard, hd).")
    parser.add_argument("--output-format", help="png, jpeg or webp.")
    parser.add_argument("--output-compression", type=int, help="0-100, for jpeg and webp.")
    parser.add_argument("--background", help="auto, opaque or transparent.")
    parser.add_argument("--seed", type=int, help="Seed of the first image.")
    parser.add_argument("--negative-prompt", help="What to keep out of the image.")
    parser.add_argument("--steps", type=int, help="Denoising steps (overrides --quality).")
    parser.add_argument("--guidance-scale", type=float, help="Classifier-free guidance scale.")
    parser.add_argument("--json", action="store_true", help="Print a JSON summary.")


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return load_settings(args.config, **overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelsmith",
        description="Self-hosted, OpenAI-compatible image generation API on Hugging Face "
        "diffusers.",
    )
    parser.add_argument("--version", action="version", version=f"pixelsmith {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="Run the HTTP API server.")
    add_settings_flags(serve)

    generate = commands.add_parser("generate", help="Generate images in-process, no server.")
    generate.add_argument("prompt", help="What to draw.")
    _add_image_options(generate, default_output="image.png")
    generate.add_argument("--style", help="vivid or natural (dall-e-3 style prompt rewrite).")
    add_settings_flags(generate, leave_out=_SERVER_ONLY)

    edit = commands.add_parser(
        "edit", help="Edit an image in-process, no server (with --mask: only the masked area)."
    )
    edit.add_argument("image", help="The image to edit (PNG, JPEG or WebP).")
    edit.add_argument("prompt", help="What the edited image should show.")
    edit.add_argument(
        "--mask",
        help="A PNG of the same size whose fully transparent pixels mark the area to repaint "
        "(OpenAI's mask format). Without it, the whole image is redrawn.",
    )
    edit.add_argument("--input-fidelity", help="low (default) or high: how closely to keep it.")
    _add_image_options(edit, default_output="edited.png")
    add_settings_flags(edit, leave_out=_SERVER_ONLY)

    mcp = commands.add_parser(
        "mcp",
        help="Serve the image tools to an agent over stdio (Model Context Protocol; needs "
        "the mcp extra). A running server serves them at /mcp too.",
    )
    add_settings_flags(mcp, leave_out=_HTTP_SERVER_ONLY)

    download = commands.add_parser(
        "download",
        help="Download models' weights into the Hugging Face cache ahead of time (default: "
        "the configured models).",
    )
    download.add_argument("names", nargs="*", help="Model names, presets or hub ids.")
    add_settings_flags(download, leave_out=_SERVER_ONLY)

    add_batch_parser(commands)

    models = commands.add_parser("models", help="List the configured models, or the presets.")
    models.add_argument("--json", action="store_true", help="Print JSON.")
    models.add_argument("--presets", action="store_true", help="List the built-in presets instead.")
    add_settings_flags(models, leave_out=_SERVER_ONLY)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "batch":  # a client of a running server: no settings, no models
        return run_batch_command(args)
    try:
        settings = settings_from_args(args)
        from pixelsmith.builders import build_registry

        # Model names and presets are checked now, before anything slow is even imported.
        build_registry(settings)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"pixelsmith: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    handlers = {
        "serve": _serve, "generate": _generate, "edit": _generate, "models": _models, "mcp": _mcp,
        "download": _download,
    }  # fmt: skip
    return handlers[args.command](args, settings)


def _download(args: argparse.Namespace, settings: Settings) -> int:
    """`pixelsmith download [NAME ...]`: the weights, with the hub's progress bar, now rather
    than at the first start of the server."""
    from pixelsmith.builders import build_registry
    from pixelsmith.engine.downloads import download, weights_state
    from pixelsmith.engine.presets import unknown_model_message

    problems = [problem for name in args.names if (problem := unknown_model_message(name))]
    if problems:
        print(f"pixelsmith: {problems[0]}", file=sys.stderr)
        return 2
    if settings.offline:
        print("pixelsmith: offline is on: nothing can be downloaded.", file=sys.stderr)
        return 2
    for spec in build_registry(settings, sources=args.names).specs:
        try:
            where = download(spec)
        except Exception as exc:  # the hub's errors are many types; all mean "not now"
            print(f"pixelsmith: could not download {spec.source}: {exc}", file=sys.stderr)
            return 1
        state = weights_state(spec).describe()
        print(f"{spec.id}: {state}" + (f" in {where}" if where else ""))
    return 0


def _mcp(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from pixelsmith.mcp_server import run_stdio
    except ImportError as exc:
        print(f"pixelsmith: mcp needs the MCP SDK ({exc}): pip install 'pixelsmith[mcp]'",
              file=sys.stderr)  # fmt: skip
        return 2
    return run_stdio(settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if settings.replicas > 1 or settings.ray_address:
        try:
            from pixelsmith import ray as on_ray
        except ImportError as exc:
            print(
                f"pixelsmith: --replicas and --ray-address need Ray Serve ({exc}): "
                "pip install 'pixelsmith[ray]'",
                file=sys.stderr,
            )
            return 2
        return on_ray.run(settings)
    from pixelsmith.api.server import bind_socket, build_server

    try:
        # First, in a fraction of a second: a port that is taken stops us before any loading.
        listening = bind_socket(settings)
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        advice = "Stop what uses the port, or choose another with --port."
        print(f"pixelsmith: cannot listen on {where}: {exc.strerror}. {advice}", file=sys.stderr)
        return 1
    if settings.port == 0:  # the port the system chose: in the banner and in image URLs
        settings = settings.model_copy(update={"port": listening.getsockname()[1]})
    with listening:
        print(f"pixelsmith {__version__}: loading "
              + ", ".join(config.source for config in settings.model_configs())
              + " ...", file=sys.stderr, flush=True)  # fmt: skip
        from pixelsmith.app import create_app
        from pixelsmith.builders import build_engine
        from pixelsmith.moderation import build_moderator

        engine = build_engine(settings)
        try:
            engine.load()  # a model that cannot load stops us here
            moderator = build_moderator(settings)
        except APIError as exc:
            print(f"pixelsmith: {exc.message}", file=sys.stderr)
            return 1
        try:
            app = create_app(settings, engine=engine, moderator=moderator)
        except ValueError as exc:  # storage or content credentials that cannot be used
            print(f"pixelsmith: {exc}", file=sys.stderr)
            return 1
        with_mcp = app.state.mcp_lifespan is not None
        build_server(app, settings, on_ready=lambda: _print_banner(settings, with_mcp)).run(
            sockets=[listening]
        )
    return 0


def _print_banner(settings: Settings, with_mcp: bool) -> None:
    """Where to go, once the server answers there."""
    base = settings.own_base_url()
    print(f"pixelsmith {__version__} is ready")
    print(f"  playground:  {base}/playground")
    print(f'  API:         {base}/v1   (OpenAI(base_url="{base}/v1"))')
    print(f"  API docs:    {base}/docs")
    if with_mcp:
        print(f"  MCP:         {base}/mcp   (docs/agents.md)")
    sys.stdout.flush()


def _numbered(path: Path, index: int, count: int) -> Path:
    if count == 1:
        return path
    return path.with_name(f"{path.stem}-{index + 1}{path.suffix}")


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    """`pixelsmith generate` and `pixelsmith edit`: one request, run in-process through the
    same service entries as the server's."""
    from pixelsmith.api.protocol import (
        CreateImageEditRequest,
        CreateImageRequest,
        ImagesResponse,
    )
    from pixelsmith.builders import (
        build_content_credentials,
        build_engine,
        build_registry,
        build_store,
    )
    from pixelsmith.matting import build_matting
    from pixelsmith.moderation import build_moderator
    from pixelsmith.service import ImageService, InputImages, RequestContext
    from pixelsmith.service.backend import NothingLoaded
    from pixelsmith.service.planning import RequestPlanner

    output = Path(args.output)
    output_format = args.output_format
    if output_format is None:
        suffix = output.suffix.lower().lstrip(".")
        output_format = {"jpg": "jpeg"}.get(suffix, suffix) if suffix else "png"
    fields: dict[str, Any] = {
        "prompt": args.prompt,
        "n": args.n,
        "size": args.size,
        "quality": args.quality,
        "output_format": output_format,
        "output_compression": args.output_compression,
        "background": args.background,
        "seed": args.seed,
        "negative_prompt": args.negative_prompt,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance_scale,
    }
    editing = args.command == "edit"
    try:
        if editing:
            request: CreateImageRequest | CreateImageEditRequest = CreateImageEditRequest(
                **fields, input_fidelity=args.input_fidelity
            )
        else:
            request = CreateImageRequest(**fields, style=args.style)
    except ValidationError as exc:
        error = exc.errors()[0]
        print(f"pixelsmith: {error['loc'][0]}: {error['msg']}", file=sys.stderr)
        return 2
    try:
        inputs = None
        if editing:
            mask = Path(args.mask).read_bytes() if args.mask else None
            inputs = InputImages(images=[Path(args.image).read_bytes()], mask=mask)
    except OSError as exc:
        print(f"pixelsmith: {exc}", file=sys.stderr)
        return 1

    context = RequestContext(request_id="cli")

    async def run(engine: Engine, service: ImageService) -> ImagesResponse:
        await engine.start()
        try:
            if isinstance(request, CreateImageEditRequest):
                assert inputs is not None
                answer = await service.edit(request, inputs, context)
            else:
                answer = await service.generate(request, context)
        finally:
            await engine.stop()
        assert isinstance(answer, ImagesResponse)  # the CLI never streams
        return answer

    try:
        matting = build_matting(settings.matting_model, offline=settings.offline)
        # Checked before the model loads (minutes, maybe), input files included. The service
        # plans the request again when it runs it, knowing by then what the model can do.
        # torch is not even imported yet.
        planner = RequestPlanner(NothingLoaded(build_registry(settings)), matting)
        if isinstance(request, CreateImageEditRequest):
            assert inputs is not None
            planner.edit(request, inputs)
        else:
            planner.generation(request)
        credentials = build_content_credentials(settings)  # a bad certificate: before loading
        engine = build_engine(settings, show_progress=True)  # download and denoising bars
        engine.load()  # on this thread, so that Ctrl-C stops a long download
        service = ImageService(
            engine, build_store(settings), build_moderator(settings), matting,
            credentials=credentials,
        )  # fmt: skip
        response = asyncio.run(run(engine, service))
    except APIError as exc:
        where = f" (parameter {exc.param})" if exc.param else ""
        print(f"pixelsmith: {exc.message}{where}", file=sys.stderr)
        return 1
    except ValueError as exc:  # content credentials that cannot sign
        print(f"pixelsmith: {exc}", file=sys.stderr)
        return 1
    written = []
    for index, item in enumerate(response.data):
        path = _numbered(output, index, len(response.data))
        path.write_bytes(pybase64.b64decode(item.b64_json or ""))
        written.append(
            {
                "path": str(path),
                "seed": item.seed,
                "size": response.size,
                "revised_prompt": item.revised_prompt,
            }
        )
    if args.json:
        print(json.dumps({"images": written}))
    else:
        for entry in written:
            print(f"wrote {entry['path']} ({entry['size']}, seed {entry['seed']})")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from pixelsmith.engine.presets import PRESETS

    rows: list[dict[str, Any]] = [
        {
            "name": preset.name,
            "source": preset.source,
            "family": preset.family,
            "native_size": preset.native_size,
            "sizes": list(preset.sizes),
            "size_rules": asdict(preset.size_rules),
            "steps": preset.steps.model_dump(exclude_none=True),  # xhigh and max derive
            "guidance_scale": preset.guidance_scale,
            "scheduler": preset.scheduler,
            "dtype": preset.dtype,
            "memory": preset.memory,
            "license": preset.license,
        }
        for preset in PRESETS.values()
    ]
    if args.json:
        print(json.dumps({"presets": rows}, indent=2))
        return 0
    for row in rows:
        steps, rules = row["steps"], row["size_rules"]
        print(f"{row['name']}  ({row['source']}; {row['family']})")
        print(f"  size: {row['native_size']} native; any multiple of {rules['multiple']} "
              f"from {rules['min_side']} to {rules['max_side']}, "
              f"aspect up to {rules['max_aspect']:g}:1")  # fmt: skip
        print(f"  steps: low {steps['low']}, medium {steps['medium']}, high {steps['high']}; "
              f"guidance {row['guidance_scale']}; scheduler: {row['scheduler']}")  # fmt: skip
        print(f"  dtype on GPUs: {row['dtype']}; memory: {row['memory']}")
        print(f"  licence: {row['license']}")
    return 0


def _weights(spec: ModelSpec, settings: Settings) -> str:
    """Where a model's weights are, and for one not downloaded yet, about how big it is."""
    from pixelsmith.engine.downloads import estimated_download, human_size, weights_state

    state = weights_state(spec)
    if not state.needs_download or settings.offline:
        return state.describe()
    size = estimated_download(spec)
    if size is None:
        return "not downloaded; the hub could not be asked how big it is"
    return f"not downloaded; about {human_size(size)} to download (`pixelsmith download`)"


def _models(args: argparse.Namespace, settings: Settings) -> int:
    from pixelsmith.builders import build_registry

    if args.presets:
        return _presets(args)
    registry = build_registry(settings)
    rows: list[dict[str, Any]] = [
        {
            "id": spec.id,
            "source": spec.source,
            "preset": spec.preset,
            "aliases": list(spec.aliases),
            "default_size": str(spec.default_size),
            "sizes": [str(size) for size in spec.sizes],
            "steps": spec.steps.model_dump(),
            "guidance_scale": spec.guidance_scale,
            "license": spec.license,
            "weights": _weights(spec, settings),
        }
        for spec in registry.specs
    ]
    if args.json:
        print(json.dumps({"models": rows}, indent=2))
        return 0
    for row in rows:
        print(f"{row['id']}  (source: {row['source']}; preset: {row['preset']}; "
              f"licence: {row['license']})")  # fmt: skip
        print(f"  weights: {row['weights']}")
        print(f"  answers to: {', '.join(row['aliases']) or '-'}")
        print(f"  sizes: {', '.join(row['sizes'])} (auto = {row['default_size']})")
        steps = row["steps"]
        print(
            f"  steps: low {steps['low']}, medium {steps['medium']}, high {steps['high']}, "
            f"xhigh {steps['xhigh']}, max {steps['max']}; guidance {row['guidance_scale']}"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
