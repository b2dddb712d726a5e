"""Routes for the OpenAI Images API."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from PIL import Image
from starlette.responses import Response, StreamingResponse
from starlette.types import Message

from pixelsmith.api.forms import (
    MAX_IMAGE_URL_CHARS,
    MAX_IMAGES,
    image_ref_bytes,
    read_form_files,
    validate,
)
from pixelsmith.api.protocol import (
    CreateImageEditRequest,
    CreateImageRequest,
    CreateImageVariationRequest,
    ImagesResponse,
)
from pixelsmith.api.responses import JSONResponse
from pixelsmith.api.serving import ImageService
from pixelsmith.api.uploads import (
    MAX_UPLOAD_BYTES,
    PayloadTooLargeError,
    UploadedImage,
    read_image,
    read_mask,
)
from pixelsmith.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from pixelsmith.imaging import MEDIA_TYPES
from pixelsmith.storage import ImageStore
from pixelsmith.storage.local import InvalidImageURL

router = APIRouter()
# Signed image URLs carry their own authorisation (the signature) and are opened by browsers
# and download tools that hold no API key (see auth.PUBLIC_PREFIXES).
files_router = APIRouter()

T = TypeVar("T")
# nginx's code for "client closed request"; nobody reads it, but the access log does.
CLIENT_CLOSED_REQUEST = 499


class ClientDisconnected(Exception):
    pass


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client goes away first. Starlette does not cancel a
    route when its client disconnects; without this, a job whose caller gave up (or timed out
    and retried) would still be queued and run."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        # The body has been read, so the next message is the disconnect (or never comes).
        while (await request.receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if watcher.done():
            raise ClientDisconnected from None
        raise
    finally:
        watcher.cancel()


def public_base_url(request: Request) -> str:
    configured: str | None = request.app.state.settings.public_base_url
    return configured or str(request.base_url).rstrip("/")


async def images_response(request: Request, work: Awaitable[ImagesResponse]) -> Response:
    """The JSON answer of a non-streamed image request, or nothing if the client left first."""
    try:
        response = await cancel_on_disconnect(request, work)
    except ClientDisconnected:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return JSONResponse(response.model_dump(exclude_none=True))


def event_stream(
    request: Request, events: AsyncGenerator[dict[str, Any], None], cancelled: threading.Event
) -> StreamingResponse:
    """Server-sent events as the official clients parse them: the `event:` name equals the
    JSON `type` (`error` for an error), the JSON on one `data:` line, one blank line after
    each event, no `id:` lines, and the connection closed after the last event. A client that
    hangs up sets `cancelled`, which stops the run after its current step."""

    async def watch_for_disconnect() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        cancelled.set()

    async def frames() -> AsyncIterator[bytes]:
        watcher = asyncio.create_task(watch_for_disconnect())
        try:
            # aclosing: the events' own clean-up (cancel the run) happens now, not at GC.
            async with contextlib.aclosing(events) as closing:
                async for event in closing:
                    name = event.get("type", "error")
                    yield b"event: " + name.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        finally:
            watcher.cancel()

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        # No proxy buffering: previews are only useful as they happen.
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


@router.post(
    "/v1/images/generations",
    name="create_image",
    response_model=ImagesResponse,
)
async def create_image(body: CreateImageRequest, request: Request) -> Response:
    """Create images from a prompt (OpenAI `images.generate`); streamed when stream=true."""
    service: ImageService = request.app.state.image_service
    if body.stream:
        cancelled = threading.Event()
        prepared = await asyncio.to_thread(service.prepare, body)
        events = await service.open_stream(
            prepared,
            [],
            request_id=request.state.request_id,
            user=body.user,
            event_prefix="image_generation",
            cancelled=cancelled,
        )
        return event_stream(request, events, cancelled)
    work = service.create_image(
        body, base_url=public_base_url(request), request_id=request.state.request_id
    )
    return await images_response(request, work)


@files_router.get("/v1/images/files/{name}", name="get_image_file", include_in_schema=False)
async def get_image_file(
    name: str,
    request: Request,
    expires: str = Query(default=""),
    signature: str = Query(default=""),
) -> FileResponse:
    store: ImageStore = request.app.state.image_store
    try:
        path = store.open_verified(name, expires, signature)
    except InvalidImageURL as exc:
        if exc.code == "image_not_found":
            raise NotFoundError(str(exc), code=exc.code) from None
        raise PermissionDeniedError(str(exc), code=exc.code) from None
    extension = name.rsplit(".", 1)[1]
    # Caches may keep the image exactly as long as its URL stays valid.
    max_age = max(0, int(expires) - int(time.time()))
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[extension],
        headers={"cache-control": f"private, max-age={max_age}"},
    )


# The largest body an edit may have. Multipart: 16 images of 50 MB and a mask. JSON: 16 image
# URLs and a mask of at most MAX_IMAGE_URL_CHARS each (the spec's limit), and the other fields.
MAX_EDIT_BODY_BYTES = (MAX_IMAGES + 1) * MAX_UPLOAD_BYTES
MAX_JSON_EDIT_BODY_BYTES = (MAX_IMAGES + 1) * MAX_IMAGE_URL_CHARS + 1_000_000


def _size_limited(request: Request) -> Request:
    """The request, refusing a body over the limit: by Content-Length before reading, and by
    counting as it arrives for chunked bodies, which announce no length. JSON bodies are held
    in memory whole, so their limit is the spec's own, far below the multipart one (multipart
    files spool to disk)."""
    is_json = request.headers.get("content-type", "").startswith("application/json")
    limit = MAX_JSON_EDIT_BODY_BYTES if is_json else MAX_EDIT_BODY_BYTES
    length = request.headers.get("content-length", "")
    limit_mb = limit // 10**6
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLargeError(
            f"The request body is {int(length) / 1e6:.0f} MB; the limit is {limit_mb} MB."
        )
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLargeError(f"The request body is over the {limit_mb} MB limit.")
        return message

    return Request(request.scope, counting_receive)


async def _edit_inputs(
    request: Request,
) -> tuple[CreateImageEditRequest, list[UploadedImage], Image.Image | None]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        # Starlette's own limits answer outside our envelope; ours (MAX_IMAGES) come first.
        form = await request.form(max_files=4 * MAX_IMAGES, max_fields=64)
        try:
            files, fields = await read_form_files(form, ("image", "mask"))
        finally:
            await form.close()
        image_data = files.get("image", [])
        mask_data = files.get("mask", [])
        image_param = "image"
    elif content_type.startswith("application/json"):
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise InvalidRequestError(
                "We could not parse the JSON body of your request.", code="invalid_json"
            ) from None
        if not isinstance(body, dict):
            raise InvalidRequestError(
                "The request body must be a JSON object.", code="invalid_type"
            )
        image_param = "images"
        references = body.pop("images", None)
        if not isinstance(references, list) or not references:
            raise InvalidRequestError(
                "Missing required parameter: 'images' (a list of {\"image_url\": ...}).",
                param="images",
                code="missing_required_parameter",
            )
        if len(references) > MAX_IMAGES:  # before anything is decoded or fetched
            raise InvalidRequestError(
                f"Too many images: at most {MAX_IMAGES}.", param="images", code="too_many_images"
            )
        fetcher = request.app.state.image_fetcher
        image_data = [
            await image_ref_bytes(reference, f"images[{index}]", fetcher)
            for index, reference in enumerate(references)
        ]
        mask_reference = body.pop("mask", None)
        mask_data = (
            [await image_ref_bytes(mask_reference, "mask", fetcher)] if mask_reference else []
        )
        fields = body
    else:
        raise InvalidRequestError(
            "Send edits as multipart/form-data (as the official clients do) or as JSON.",
            code="invalid_content_type",
        )
    edit = validate(CreateImageEditRequest, fields)
    if len(image_data) > 1:
        # Every model family served today edits one picture: refuse before decoding the rest.
        model = edit.model or request.app.state.engine.registry.default.id
        raise InvalidRequestError(
            f"model {model} takes 1 input image; got {len(image_data)}.",
            param=image_param,
            code="too_many_images",
        )
    if not image_data:
        raise InvalidRequestError(
            "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
        )
    if len(image_data) > MAX_IMAGES:
        raise InvalidRequestError(
            f"Too many images: at most {MAX_IMAGES}.", param=image_param, code="too_many_images"
        )
    images = [
        await asyncio.to_thread(
            read_image,
            data,
            param=f"{image_param}[{index}]"
            if image_param == "images" or len(image_data) > 1
            else "image",
        )
        for index, data in enumerate(image_data)
    ]
    mask = None
    if mask_data:
        mask = await asyncio.to_thread(read_mask, mask_data[0], size=images[0].image.size)
    return edit, images, mask


@router.post("/v1/images/edits", name="create_image_edit", response_model=ImagesResponse)
async def create_image_edit(request: Request) -> Response:
    """Edit an image from a prompt (OpenAI `images.edit`), multipart or JSON."""
    edit, images, mask = await _edit_inputs(_size_limited(request))
    service: ImageService = request.app.state.image_service
    if edit.stream:
        cancelled = threading.Event()
        # Resizing a large input takes a while: not on the event loop.
        prepared = await asyncio.to_thread(service.prepare_edit, edit, images, mask)
        events = await service.open_stream(
            prepared,
            [image.image for image in images],
            request_id=request.state.request_id,
            user=edit.user,
            event_prefix="image_edit",
            cancelled=cancelled,
        )
        return event_stream(request, events, cancelled)
    work = service.create_edit(
        edit, images, mask, base_url=public_base_url(request), request_id=request.state.request_id
    )
    return await images_response(request, work)


@router.post("/v1/images/variations", name="create_image_variation", response_model=ImagesResponse)
async def create_image_variation(request: Request) -> Response:
    """Variations of one image (OpenAI `images.create_variation`), multipart."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequestError(
            "Send variations as multipart/form-data.", code="invalid_content_type"
        )
    form = await _size_limited(request).form(max_files=4 * MAX_IMAGES, max_fields=32)
    try:
        files, fields = await read_form_files(form, ("image",))
    finally:
        await form.close()
    variation = validate(CreateImageVariationRequest, fields)
    if not files.get("image"):
        raise InvalidRequestError(
            "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
        )
    if len(files["image"]) > 1:
        raise InvalidRequestError(
            "Variations take exactly one image.", param="image", code="too_many_images"
        )
    image = await asyncio.to_thread(read_image, files["image"][0], param="image")
    service: ImageService = request.app.state.image_service
    work = service.create_variation(
        variation, image, base_url=public_base_url(request), request_id=request.state.request_id
    )
    return await images_response(request, work)
