"""Routes for the OpenAI Images API: decode the transport, call the service, answer."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.responses import Response

from pixelsmith.api.access_log import record
from pixelsmith.api.limits import take_limit_slot
from pixelsmith.api.openapi import edit_body, error_responses, streamed, variation_body
from pixelsmith.api.protocol import CreateImageRequest, ImagesResponse
from pixelsmith.api.routes.files import owner_of
from pixelsmith.api.transport.bodies import read_edit, read_variation
from pixelsmith.api.transport.streaming import answer
from pixelsmith.errors import NotFoundError, PermissionDeniedError
from pixelsmith.imaging import MEDIA_TYPES
from pixelsmith.service import ImageService, RequestContext
from pixelsmith.service.files import FileService
from pixelsmith.storage import ImageStore, LocalImageStore
from pixelsmith.storage.local import InvalidImageURL

router = APIRouter()
# Signed image URLs carry their own authorisation (the signature) and are opened by browsers
# and download tools that hold no API key (see auth.PUBLIC_PREFIXES).
files_router = APIRouter()


def _service(request: Request) -> ImageService:
    service: ImageService = request.app.state.image_service
    return service


def _context(request: Request) -> RequestContext:
    configured: str | None = request.app.state.settings.public_base_url
    base_url = configured or str(request.base_url).rstrip("/")
    return RequestContext(
        request_id=request.state.request_id, base_url=base_url, outcome=record(request)
    )


@router.post(
    "/v1/images/generations",
    name="create_image",
    response_model=ImagesResponse,
    responses=streamed("The images, or with stream=true their events", "image_generation")
    | error_responses(400, 401, 404, 429, 500, 503),
)
async def create_image(body: CreateImageRequest, request: Request) -> Response:
    """Create images from a prompt (OpenAI `images.generate`); streamed when stream=true."""
    await take_limit_slot(request.scope, body.end_user)
    return await answer(request, _service(request).generate(body, _context(request)))


@router.post(
    "/v1/images/edits",
    name="create_image_edit",
    response_model=ImagesResponse,
    responses=streamed("The edited images, or with stream=true their events", "image_edit")
    | error_responses(400, 401, 404, 413, 429, 500, 503),
    openapi_extra=edit_body(),
)
async def create_image_edit(request: Request) -> Response:
    """Edit an image from a prompt (OpenAI `images.edit`), multipart or JSON."""
    owner = owner_of(request)
    service: FileService | None = request.app.state.file_service

    async def uploaded(file_id: str) -> bytes:
        assert service is not None
        return (await asyncio.to_thread(service.content, owner, file_id))[1]

    reader = uploaded if service is not None else None
    edit, inputs = await read_edit(request, request.app.state.image_fetcher, reader)
    await take_limit_slot(request.scope, edit.end_user)
    return await answer(request, _service(request).edit(edit, inputs, _context(request)))


@router.post(
    "/v1/images/variations",
    name="create_image_variation",
    response_model=ImagesResponse,
    responses=error_responses(400, 401, 404, 413, 429, 500, 503),
    openapi_extra=variation_body(),
)
async def create_image_variation(request: Request) -> Response:
    """Variations of one image (OpenAI `images.create_variation`), multipart."""
    variation, image = await read_variation(request)
    await take_limit_slot(request.scope, variation.end_user)
    work = _service(request).create_variation(variation, image, _context(request))
    return await answer(request, work)


@files_router.get("/v1/images/files/{name}", name="get_image_file", include_in_schema=False)
async def get_image_file(
    name: str,
    request: Request,
    expires: str = Query(default=""),
    signature: str = Query(default=""),
) -> FileResponse:
    store: ImageStore = request.app.state.image_store
    if not isinstance(store, LocalImageStore):  # object storage serves its own URLs
        raise NotFoundError(f"Invalid URL (GET {request.url.path})", code="unknown_url")
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
