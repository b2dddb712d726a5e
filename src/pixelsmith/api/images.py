"""Routes for the OpenAI Images API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.responses import Response

from pixelsmith.api.protocol import CreateImageRequest, ImagesResponse
from pixelsmith.api.responses import JSONResponse
from pixelsmith.api.serving import ImageService
from pixelsmith.errors import NotFoundError, PermissionDeniedError
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


@router.post(
    "/v1/images/generations",
    name="create_image",
    response_model=ImagesResponse,
)
async def create_image(body: CreateImageRequest, request: Request) -> Response:
    """Create images from a prompt (OpenAI `images.generate`)."""
    service: ImageService = request.app.state.image_service
    work = service.create_image(
        body, base_url=public_base_url(request), request_id=request.state.request_id
    )
    try:
        response = await cancel_on_disconnect(request, work)
    except ClientDisconnected:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return JSONResponse(response.model_dump(exclude_none=True))


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
