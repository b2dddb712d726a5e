"""The image operations as Model Context Protocol tools, for agents: `generate_image`,
`edit_image` and `list_models`, on the official `mcp` SDK (the `mcp` extra).

Two transports serve the same tools: stdio (`pixelsmith mcp`, the server in the agent's own
process tree, no HTTP) and streamable HTTP at `/mcp` of a running server, behind its API keys.
Both call the ImageService entries the HTTP routes call, so moderation, per-key limits (over
HTTP) and batching are the same. Each tool answers the OpenAI `ImagesResponse` as MCP content:
the images themselves (or links), and the resolved size, seed and usage as structured content.

Agents cannot paste megabytes of base64 back into a later call, so every image a tool returns
is also kept in the image store for `url_ttl_seconds`, under a `pixelsmith://images/<name>`
URI that `edit_image` accepts and `resources/read` returns.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlparse

import pybase64
from fastapi.exceptions import RequestValidationError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import (
    CallToolResult,
    ContentBlock,
    ImageContent,
    ResourceLink,
    TextContent,
    ToolAnnotations,
)
from pydantic import BaseModel, Field

from pixelsmith import __version__
from pixelsmith.api.error_handlers import error_answer
from pixelsmith.api.limits import SharedLimiter, client_identity
from pixelsmith.api.protocol import (
    Background,
    CreateImageEditRequest,
    CreateImageRequest,
    ImagesResponse,
    Quality,
)
from pixelsmith.api.transport.bodies import MAX_IMAGES, validate
from pixelsmith.api.transport.fetch import ImageFetcher
from pixelsmith.errors import INTERNAL_ERROR_MESSAGE, APIError, InvalidRequestError, shown
from pixelsmith.imaging import MEDIA_TYPES, OutputFormat
from pixelsmith.service import ImageService, InputImages, RequestContext
from pixelsmith.service.files import FileService
from pixelsmith.service.inputs import MAX_UPLOAD_BYTES, decode_data_url
from pixelsmith.service.names import rules_for
from pixelsmith.settings import Settings
from pixelsmith.storage import ImageStore, LocalImageStore, StoredImage

logger = logging.getLogger(__name__)

RESULT_SCHEME = "pixelsmith://images/"
# How long the result waits for progress notifications still being sent.
PROGRESS_FLUSH_SECONDS = 5.0
# Longer strings are images (base64), never paths.
MAX_PATH_CHARS = 4096

INSTRUCTIONS = """\
pixelsmith makes images with open diffusion models, through OpenAI's Images API parameters.
Call generate_image with a prompt; its images come back as image content and each has a
`pixelsmith://images/...` URI. To change an image, call edit_image with that URI in `images`
(and a mask URI or data URL to repaint only part of it). list_models names the models and
the sizes each takes. Refusals (a prompt the moderation blocks, a size a model cannot make)
come back as tool errors whose text says which parameter to change."""


class ResultImage(BaseModel):
    uri: str = Field(description="pixelsmith://images/... : pass it to edit_image's `images`.")
    mime_type: str
    seed: int | None = Field(default=None, description="Seed of this image (same seed, prompt "
                             "and parameters: the same image).")  # fmt: skip
    revised_prompt: str | None = None
    url: str | None = Field(
        default=None, description='With response_format="url": where the image can be fetched.'
    )


class ImageResult(BaseModel):
    """What a generate_image or edit_image call made, as resolved by the server."""

    created: int
    size: str = Field(description="WIDTHxHEIGHT of the images.")
    quality: str | None = None
    output_format: str
    background: str | None = None
    images: list[ResultImage]
    usage: dict[str, Any] | None = None


class ModelInfo(BaseModel):
    id: str
    answers_to: list[str] = Field(description="Names (OpenAI's among them) served by this model.")
    default_size: str
    sizes: list[str]
    steps: dict[str, int] = Field(description="Denoising steps per quality.")


class ModelsResult(BaseModel):
    models: list[ModelInfo]
    default_model: str


@dataclass
class ToolDependencies:
    """What the tools need of the server: its service once started, and its parts."""

    service: Callable[[], ImageService]
    store: ImageStore
    readable_dirs: list[Path]
    base_url: str  # the server's own address (Settings.own_base_url)
    public_base_url: str | None = None
    fetcher: ImageFetcher | None = None
    files: FileService | None = None
    limiter: SharedLimiter | None = None
    limit_by_key: bool = False

    @classmethod
    def of_app(cls, app: Any, *, over_http: bool) -> ToolDependencies:
        """The parts of an app made by create_app. Over HTTP the tools also take the
        callers' uploaded files and count against their keys' limits; over stdio the caller
        is the local user alone."""
        state = app.state
        settings: Settings = state.settings
        return cls(
            service=lambda: state.image_service,
            store=state.image_store,
            readable_dirs=settings.mcp_readable_dirs,
            base_url=settings.own_base_url(),
            public_base_url=settings.public_base_url,
            fetcher=state.image_fetcher,
            files=state.file_service if over_http else None,
            limiter=state.key_limiter if over_http else None,
            limit_by_key=over_http and state.api_keys.enabled,
        )


# --- argument types: their descriptions are what an agent reads -------------------------------

Prompt = Annotated[
    str,
    Field(description="What the image should show: subject, setting, style, lighting. "
          "At most 32,000 characters (dall-e names: less)."),
]  # fmt: skip
Model = Annotated[
    str | None,
    Field(description="A model id or OpenAI name from list_models (gpt-image-1, "
          "gpt-image-2, dall-e-3, ...). Default: the server's default model."),
]  # fmt: skip
Size = Annotated[
    str | None,
    Field(description='"auto" (default) or WIDTHxHEIGHT such as "1024x1024", "1536x1024"; '
          "list_models gives each model's sizes."),
]  # fmt: skip
QualityArg = Annotated[
    Quality | None,
    Field(description="low is fastest; medium, high (and xhigh, max) spend more steps. "
          "Default auto."),
]  # fmt: skip
Count = Annotated[int | None, Field(ge=1, le=10, description="How many images, 1-10. Default 1.")]
BackgroundArg = Annotated[
    Background | None,
    Field(description="transparent (needs png or webp), opaque, or auto (default)."),
]
Format = Annotated[
    OutputFormat | None,
    Field(description="png (default), jpeg, webp, gif (animated) or svg (traced vector)."),
]
Compression = Annotated[
    int | None, Field(ge=0, le=100, description="jpeg/webp quality 0-100. Default 100.")
]
ModerationArg = Annotated[
    Literal["low", "auto"] | None,
    Field(description="Moderation strictness: auto (default) or low."),
]
Seed = Annotated[
    int | None,
    Field(ge=0, description="Seed of the first image (image i gets seed + i), to repeat a "
          "result. Default random."),
]  # fmt: skip
NegativePrompt = Annotated[str | None, Field(description="What to keep out of the image.")]
Steps = Annotated[
    int | None, Field(ge=1, description="Denoising steps; overrides the steps from quality.")
]
Guidance = Annotated[
    float | None, Field(ge=0, le=50, description="Classifier-free guidance scale.")
]
ReturnAs = Annotated[
    Literal["image", "url"],
    Field(description='"image" (default): the images as image content. "url": links only, '
          "which keeps large images out of the conversation."),
]  # fmt: skip
ImageRefs = Annotated[
    list[str],
    Field(min_length=1, max_length=MAX_IMAGES,
          description="The images to edit, first the main one: pixelsmith://images/... URIs "
          "from earlier results, data:image/...;base64 URLs, base64 strings, or file paths "
          "the server may read (its mcp_readable_dirs)."),
]  # fmt: skip
MaskRef = Annotated[
    str | None,
    Field(description="Optional mask, in the same forms as `images`: a PNG whose transparent "
          "pixels mark where to repaint; without it the whole image may change."),
]  # fmt: skip
Fidelity = Annotated[
    Literal["high", "low"] | None,
    Field(description="How closely to keep the input image: low (default) or high."),
]


def _fields(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def build_mcp_server(deps: ToolDependencies) -> MCPServer:
    """The MCP server with pixelsmith's tools and the resources of their results."""
    tools = _ImageTools(deps)
    # The SDK configures the root logger as it is built (logging.basicConfig with its own
    # handler); logging is the application's (pixelsmith.logs), so it is put back as it was.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    server = MCPServer(
        "pixelsmith",
        title="pixelsmith image generation",
        version=__version__,
        instructions=INSTRUCTIONS,
    )
    root.handlers[:] = handlers
    root.setLevel(level)

    @server.tool(
        title="Generate images",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, open_world_hint=False
        ),
    )
    async def generate_image(
        prompt: Prompt,
        ctx: Context,
        model: Model = None,
        size: Size = None,
        quality: QualityArg = None,
        n: Count = None,
        background: BackgroundArg = None,
        output_format: Format = None,
        output_compression: Compression = None,
        moderation: ModerationArg = None,
        seed: Seed = None,
        negative_prompt: NegativePrompt = None,
        steps: Steps = None,
        guidance_scale: Guidance = None,
        response_format: ReturnAs = "image",
    ) -> Annotated[CallToolResult, ImageResult]:
        """Create images from a text prompt (OpenAI images.generate). Returns the images and,
        for each, a pixelsmith://images/ URI that edit_image takes. Progress is reported per
        denoising step."""
        fields = _fields(
            prompt=prompt, model=model, size=size, quality=quality, n=n, background=background,
            output_format=output_format, output_compression=output_compression,
            moderation=moderation, seed=seed, negative_prompt=negative_prompt,
            num_inference_steps=steps, guidance_scale=guidance_scale,
        )  # fmt: skip
        return await tools.call(ctx, response_format, fields, inputs=None)

    @server.tool(
        title="Edit images",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, open_world_hint=False
        ),
    )
    async def edit_image(
        prompt: Prompt,
        images: ImageRefs,
        ctx: Context,
        mask: MaskRef = None,
        model: Model = None,
        size: Size = None,
        quality: QualityArg = None,
        n: Count = None,
        background: BackgroundArg = None,
        output_format: Format = None,
        output_compression: Compression = None,
        input_fidelity: Fidelity = None,
        moderation: ModerationArg = None,
        seed: Seed = None,
        negative_prompt: NegativePrompt = None,
        steps: Steps = None,
        guidance_scale: Guidance = None,
        response_format: ReturnAs = "image",
    ) -> Annotated[CallToolResult, ImageResult]:
        """Edit one or more images from a prompt (OpenAI images.edit): the whole image, or
        with a mask only its transparent area. Extra images are references the model may
        read. Returns the edited images like generate_image."""
        fields = _fields(
            prompt=prompt, model=model, size=size, quality=quality, n=n, background=background,
            output_format=output_format, output_compression=output_compression,
            input_fidelity=input_fidelity, moderation=moderation, seed=seed,
            negative_prompt=negative_prompt, num_inference_steps=steps,
            guidance_scale=guidance_scale,
        )  # fmt: skip
        return await tools.call(ctx, response_format, fields, inputs=(images, mask))

    @server.tool(
        title="List image models",
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True),
    )
    def list_models() -> ModelsResult:
        """The models this server runs, the names each answers to, and their sizes and steps."""
        return tools.models()

    for extension, media_type in MEDIA_TYPES.items():
        _add_result_resource(server, deps.store, extension, media_type)
    return server


def _add_result_resource(server: MCPServer, store: ImageStore, extension: str, media: str) -> None:
    """`pixelsmith://images/{id}.<extension>`: one template per format, so that each carries
    its media type."""

    async def read_result(id: str) -> bytes:
        try:
            return await asyncio.to_thread(store.load, f"{id}.{extension}")
        except FileNotFoundError:
            raise ValueError(f"no such image (results are kept for a limited time): {id}") from None

    server.resource(
        f"{RESULT_SCHEME}{{id}}.{extension}",
        name=f"result-{extension}",
        description=f"A {extension} image made by an earlier generate_image or edit_image call.",
        mime_type=media,
    )(read_result)


class _ImageTools:
    def __init__(self, deps: ToolDependencies) -> None:
        self.deps = deps

    def models(self) -> ModelsResult:
        registry = self.deps.service().backend.registry
        return ModelsResult(
            models=[
                ModelInfo(
                    id=spec.id,
                    answers_to=list(spec.aliases),
                    default_size=str(spec.default_size),
                    sizes=[str(size) for size in spec.sizes],
                    steps=spec.steps.model_dump(),
                )
                for spec in registry.specs
            ],
            default_model=registry.specs[0].id,
        )

    async def call(
        self,
        ctx: Context,
        response_format: str,
        fields: dict[str, Any],
        inputs: tuple[list[str], str | None] | None,
    ) -> CallToolResult:
        """One tool call: the request validated like the HTTP API's, run through the service
        within the caller's limits, answered as content; every refusal a tool error."""
        scope = _http_scope(ctx)
        # The HTTP request's id (in its x-request-id and the access log); never the JSON-RPC
        # id, which the client chose and which must not reach the log.
        request_id = str((scope or {}).get("state", {}).get("request_id") or "")
        request_id = request_id or f"mcp_{secrets.token_hex(12)}"
        try:
            # The dall-e names answer URLs unless asked: the tools always want the bytes.
            if rules_for(fields.get("model")).default_response_format == "url":
                fields["response_format"] = "b64_json"
            async with self._limit_slot(scope):
                async with _progress_reporter(ctx) as on_progress:
                    context = RequestContext(
                        request_id=request_id,
                        base_url=self._base_url(scope),
                        on_progress=on_progress,
                    )
                    service = self.deps.service()
                    if inputs is None:
                        answer = await service.generate(
                            validate(CreateImageRequest, fields), context
                        )
                    else:
                        request = validate(CreateImageEditRequest, fields)
                        images = await self._input_images(inputs, scope)
                        answer = await service.edit(request, images, context)
            assert isinstance(answer, ImagesResponse)  # the tools never stream
            return await self._result(answer, response_format, scope)
        except (APIError, RequestValidationError) as exc:
            answered = error_answer(exc)  # what the HTTP route would answer
            assert answered is not None  # it answers every APIError and validation error
            error = answered[1]["error"]
            return _tool_error(error["message"], error)
        except Exception:
            # Like a 500: the details stay in the server's log, under the request id.
            logger.exception("MCP tool call %s failed", request_id)
            message = INTERNAL_ERROR_MESSAGE.format(request_id=request_id)
            return _tool_error(message, {"message": message, "type": "server_error"})

    @contextlib.asynccontextmanager
    async def _limit_slot(self, scope: dict[str, Any] | None) -> AsyncIterator[None]:
        """Over HTTP, a tool call counts against its client's per-key limits like an image
        request; over stdio the caller is the local user alone."""
        limiter = self.deps.limiter
        if scope is None or limiter is None or not limiter.enabled:
            yield
            return
        client = client_identity(scope, by_key=self.deps.limit_by_key)
        await limiter.take(client)
        try:
            yield
        finally:
            await limiter.give_back(client)

    def _base_url(self, scope: dict[str, Any] | None) -> str:
        """Where image URLs point: public_base_url, else the Host the call came to."""
        if self.deps.public_base_url or scope is None:
            return self.deps.public_base_url or self.deps.base_url
        host = dict(scope.get("headers") or []).get(b"host")
        if not host:
            return self.deps.base_url
        return f"{scope.get('scheme', 'http')}://{host.decode('latin-1')}"

    async def _input_images(
        self, inputs: tuple[list[str], str | None], scope: dict[str, Any] | None
    ) -> InputImages:
        references, mask = inputs
        images = [
            await self._image_bytes(reference, f"images[{index}]", scope)
            for index, reference in enumerate(references)
        ]
        mask_bytes = await self._image_bytes(mask, "mask", scope) if mask else None
        return InputImages(images=images, mask=mask_bytes, param="images")

    async def _image_bytes(self, reference: str, param: str, scope: dict[str, Any] | None) -> bytes:
        """The bytes of one image reference: an earlier result's URI or signed URL, a data:
        URL, an uploaded file's id, a readable file path, or base64."""
        if reference.startswith(RESULT_SCHEME):
            return await self._stored(reference.removeprefix(RESULT_SCHEME), param)
        if reference.startswith("data:"):
            return decode_data_url(reference, param)
        if reference.startswith(("http://", "https://")):
            own = self._own_result_name(reference)
            if own is not None:
                return await self._stored(own, param)
            if self.deps.fetcher is None:
                raise InvalidRequestError(
                    f"Invalid '{param}': this server does not fetch image URLs; pass a "
                    "pixelsmith://images/ URI, a data: URL or base64.",
                    param=param,
                    code="unsupported_value",
                )
            return await self.deps.fetcher.fetch(reference, param=param)
        if reference.startswith("file-") and self.deps.files is not None and len(reference) < 80:
            return await self._uploaded(reference, param, scope)
        if len(reference) < MAX_PATH_CHARS and reference.startswith(("/", "~", ".", "file://")):
            if not reference.startswith("/9j/"):  # base64 of a JPEG starts so
                return await asyncio.to_thread(self._read_path, reference, param)
        try:
            return pybase64.b64decode(reference, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError(
                f"Invalid '{param}': expected a pixelsmith://images/ URI, a data: URL, base64 "
                "image data or a readable file path.",
                param=param,
                code="invalid_value",
            ) from None

    async def _stored(self, name: str, param: str) -> bytes:
        try:
            return await asyncio.to_thread(self.deps.store.load, name)
        except FileNotFoundError:
            raise InvalidRequestError(
                f"Invalid '{param}': no such image {shown(name)}. Results are kept for "
                "a limited time (url_ttl_seconds); generate it again.",
                param=param,
                code="invalid_value",
            ) from None

    def _own_result_name(self, url: str) -> str | None:
        """The stored image behind one of this server's own signed URLs, if it is one whose
        signature holds."""
        store = self.deps.store
        if not isinstance(store, LocalImageStore):
            return None
        parsed = urlparse(url)
        if not parsed.path.startswith(store.url_prefix + "/"):
            return None
        query = parse_qs(parsed.query)
        name = parsed.path.removeprefix(store.url_prefix + "/")
        try:
            store.open_verified(
                name, query.get("expires", [""])[0], query.get("signature", [""])[0]
            )
        except Exception:
            return None
        return name

    async def _uploaded(self, file_id: str, param: str, scope: dict[str, Any] | None) -> bytes:
        from pixelsmith.api.auth import API_KEY_IDENTITY
        from pixelsmith.errors import NotFoundError
        from pixelsmith.service.files import ANONYMOUS

        assert self.deps.files is not None
        owner = str((scope or {}).get("state", {}).get(API_KEY_IDENTITY) or ANONYMOUS)
        try:
            return (await asyncio.to_thread(self.deps.files.content, owner, file_id))[1]
        except NotFoundError:
            raise InvalidRequestError(
                f"Invalid '{param}': no such file: {shown(file_id)}.",
                param=param,
                code="invalid_value",
            ) from None

    def _read_path(self, reference: str, param: str) -> bytes:
        if not self.deps.readable_dirs:
            raise InvalidRequestError(
                f"Invalid '{param}': this server reads no file paths (mcp_readable_dirs is "
                "empty); pass a data: URL or base64.",
                param=param,
                code="unsupported_value",
            )
        path = Path(reference.removeprefix("file://")).expanduser()
        try:
            resolved = path.resolve(strict=True)
        except OSError:
            resolved = None
        inside = resolved is not None and any(
            resolved.is_relative_to(directory) for directory in self.deps.readable_dirs
        )
        if resolved is None or not inside or not resolved.is_file():
            # The same answer for missing and forbidden paths: the tool reveals no files.
            raise InvalidRequestError(
                f"Invalid '{param}': no readable image at {shown(reference)} (the server "
                "reads files only inside its mcp_readable_dirs).",
                param=param,
                code="invalid_value",
            )
        if resolved.stat().st_size > MAX_UPLOAD_BYTES:
            raise InvalidRequestError(
                f"Invalid '{param}': the file is over {MAX_UPLOAD_BYTES // 2**20} MB.",
                param=param,
                code="file_too_large",
            )
        return resolved.read_bytes()

    async def _result(
        self, answer: ImagesResponse, response_format: str, scope: dict[str, Any] | None
    ) -> CallToolResult:
        extension = answer.output_format or "png"
        media_type = MEDIA_TYPES[extension]
        content: list[ContentBlock] = []
        images: list[ResultImage] = []
        for index, item in enumerate(answer.data):
            data = pybase64.b64decode(item.b64_json or "")
            stored = await asyncio.to_thread(self.deps.store.save, data, extension)
            uri = RESULT_SCHEME + stored.name
            url = self._url(stored, scope) if response_format == "url" else None
            images.append(
                ResultImage(
                    uri=uri,
                    mime_type=media_type,
                    seed=item.seed,
                    revised_prompt=item.revised_prompt,
                    url=url,
                )
            )
            if url is None:
                content.append(
                    ImageContent(type="image", data=item.b64_json or "", mime_type=media_type)
                )
            content.append(
                ResourceLink(
                    type="resource_link",
                    name=f"image-{index + 1}.{extension}",
                    uri=url or uri,
                    mime_type=media_type,
                    size=len(data),
                    description=f"{answer.size}, seed {item.seed}",
                )
            )
        result = ImageResult(
            created=answer.created,
            size=answer.size or "",
            quality=answer.quality,
            output_format=extension,
            background=answer.background,
            images=images,
            usage=answer.usage.model_dump() if answer.usage else None,
        )
        summary = (
            f"{len(images)} {extension} image(s), {answer.size}, seeds "
            + ", ".join(str(image.seed) for image in images)
            + ". Edit with edit_image(images=["
            + ", ".join(image.uri for image in images)
            + "])."
        )
        content.insert(0, TextContent(type="text", text=summary))
        return CallToolResult(content=content, structured_content=result.model_dump(mode="json"))

    def _url(self, stored: StoredImage, scope: dict[str, Any] | None) -> str:
        store = self.deps.store
        if scope is None and isinstance(store, LocalImageStore):
            # Over stdio no HTTP server is running: the file itself, on the agent's machine.
            return (store.directory / stored.name).resolve().as_uri()
        return store.url(stored, self._base_url(scope))


def _tool_error(message: str, error: dict[str, Any]) -> CallToolResult:
    """A refusal as the model sees it: the API's message, and its envelope as structured
    content for programs."""
    return CallToolResult(
        content=[TextContent(type="text", text=message)],
        structured_content={"error": error},
        is_error=True,
    )


def _http_scope(ctx: Context) -> dict[str, Any] | None:
    """The ASGI scope of the HTTP request that carried the call; None over stdio."""
    request = getattr(ctx.request_context, "request", None)
    scope = getattr(request, "scope", None)
    return scope if isinstance(scope, dict) else None


@contextlib.asynccontextmanager
async def _progress_reporter(
    ctx: Context,
) -> AsyncIterator[Callable[[int, int], None]]:
    """A step callback (run on the event loop) that becomes MCP progress notifications. They
    are sent in order by one task, so a slow client never holds up the engine."""
    steps: asyncio.Queue[tuple[int, int] | None] = asyncio.Queue()

    async def send() -> None:
        while (step := await steps.get()) is not None:
            while not steps.empty():  # a client that reads slowly gets the latest step
                later = steps.get_nowait()
                if later is None:
                    steps.put_nowait(None)
                    break
                step = later
            done, total = step
            await ctx.report_progress(done, total, f"step {done} of {total}")

    sender = asyncio.create_task(send())
    try:
        yield lambda done, total: steps.put_nowait((done, total))
    finally:
        steps.put_nowait(None)  # the steps reported so far still go out, then the result
        try:
            await asyncio.wait_for(sender, timeout=PROGRESS_FLUSH_SECONDS)
        except asyncio.TimeoutError:
            pass  # wait_for has cancelled the sender
        except asyncio.CancelledError:
            sender.cancel()
            raise
        except Exception:  # a client gone mid-notification must not cost the result
            logger.debug("progress notification failed", exc_info=True)


def http_app_routes(
    server: MCPServer, *, host: str, public_base_url: str | None, max_body_bytes: int
) -> tuple[list[Any], Callable[[], contextlib.AbstractAsyncContextManager[None]]]:
    """The `/mcp` route of the streamable HTTP transport, for the API app to serve itself
    (its middleware then checks API keys, caps bodies and logs), and the context manager its
    lifespan must run. Stateless: any replica answers any call."""
    routes = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        max_request_body_size=max_body_bytes,
        transport_security=_transport_security(host, public_base_url),
        host=host,
    ).routes
    return list(routes), server.session_manager.run


def _transport_security(host: str, public_base_url: str | None) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding guard (Host and Origin checked) for a server on loopback, which
    a web page could otherwise reach through a rebound name; it lets through the loopback
    names and the public name a proxy in front forwards. A server on a network is reached by
    names of its own: there the API keys guard /mcp."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if public_base_url:
        public = urlparse(public_base_url)
        hosts.append(public.netloc)
        origins.append(f"{public.scheme}://{public.netloc}")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def run_stdio(settings: Settings) -> int:
    """`pixelsmith mcp`: the tools over stdio, for an agent that starts pixelsmith itself. The
    models load first; stdout then carries only the protocol (logs go to stderr)."""
    from pixelsmith.app import create_app
    from pixelsmith.builders import build_engine

    engine = build_engine(settings)
    try:
        engine.load()
    except APIError as exc:
        print(f"pixelsmith: {exc.message}", file=sys.stderr)
        return 1
    # The app's lifespan builds the service (moderation, matting) exactly as `serve` does;
    # nothing listens on a port, and uploads and batches need a server.
    app = create_app(
        settings.model_copy(update={"mcp_enabled": False}),
        engine=engine,
        serve_files_and_batches=False,
    )
    server = build_mcp_server(ToolDependencies.of_app(app, over_http=False))

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            logger.info("pixelsmith MCP server ready on stdio (models: %s)",
                        ", ".join(spec.id for spec in engine.registry.specs))  # fmt: skip
            await server.run_stdio_async()

    asyncio.run(serve())
    return 0
