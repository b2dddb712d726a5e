"""Routes for the OpenAI Images API."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from pixelsmith.api.auth import require_api_key
from pixelsmith.api.protocol import CreateImageRequest, ImagesResponse
from pixelsmith.api.responses import JSONResponse
from pixelsmith.api.serving import ImageService
from pixelsmith.errors import NotFoundError, PermissionDeniedError
from pixelsmith.imaging import MEDIA_TYPES
from pixelsmith.storage import ImageStore
from pixelsmith.storage.local import InvalidImageURL

router = APIRouter(dependencies=[Depends(require_api_key)])
# Signed image URLs carry their own authorisation (the signature) and are opened by browsers
# and download tools that hold no API key.
files_router = APIRouter()


def public_base_url(request: Request) -> str:
    configured: str | None = request.app.state.settings.public_base_url
    return configured or str(request.base_url).rstrip("/")


@router.post(
    "/v1/images/generations",
    name="create_image",
    response_model=ImagesResponse,
    response_model_exclude_none=True,
)
async def create_image(body: CreateImageRequest, request: Request) -> JSONResponse:
    """Create images from a prompt (OpenAI `images.generate`)."""
    service: ImageService = request.app.state.image_service
    response = await service.create_image(
        body, base_url=public_base_url(request), request_id=request.state.request_id
    )
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
