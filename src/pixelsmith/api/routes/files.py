"""Routes for OpenAI's Files API: decode the transport, call the FileService, answer."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from pixelsmith.api.auth import API_KEY_IDENTITY
from pixelsmith.api.openapi import error_responses
from pixelsmith.api.transport.bodies import read_form
from pixelsmith.api.transport.responses import JSONResponse
from pixelsmith.errors import InvalidRequestError, PayloadTooLargeError, shown
from pixelsmith.service import files as file_limits
from pixelsmith.service.files import ANONYMOUS, MAX_LIST_LIMIT, FileService, StoredFile

router = APIRouter()


def owner_of(request: Request) -> str:
    """The API key that authentication accepted (hashed), or one shared owner when the server
    takes any key."""
    identity = request.scope.get("state", {}).get(API_KEY_IDENTITY)
    return str(identity) if identity else ANONYMOUS


def _files(request: Request) -> FileService:
    service: FileService | None = request.app.state.file_service
    if service is None:
        raise InvalidRequestError(
            "The Files API is not available on this server (not under Ray Serve yet).",
            code="unsupported_endpoint",
        )
    return service


def page(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A cursor page as the clients read it: `data` and `has_more` (always sent)."""
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


@router.post("/v1/files", name="create_file", responses=error_responses(400, 401, 413))
async def create_file(request: Request) -> JSONResponse:
    """Upload a file (OpenAI `files.create`): multipart `file` and `purpose`."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequestError(
            "Send files as multipart/form-data (as the official clients do).",
            code="invalid_content_type",
        )
    form = await read_form(request, max_fields=8)
    try:
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise InvalidRequestError(
                "Missing required parameter: 'file'.",
                param="file",
                code="missing_required_parameter",
            )
        if not isinstance(purpose, str) or not purpose:
            raise InvalidRequestError(
                "Missing required parameter: 'purpose'.",
                param="purpose",
                code="missing_required_parameter",
            )
        expires_after = None
        anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
        if anchor is not None or seconds is not None:
            expires_after = {"anchor": anchor, "seconds": seconds}
        limit = (
            file_limits.MAX_BATCH_FILE_BYTES if purpose == "batch" else file_limits.MAX_FILE_BYTES
        )
        if upload.size is not None and upload.size > limit:  # known once spooled: not read
            raise PayloadTooLargeError(
                f"Invalid file 'file': {upload.size / 1e6:.1f} MB is over the "
                f"{limit // (1024 * 1024)} MB limit for purpose '{shown(purpose)}'.",
                param="file",
            )
        data = await upload.read()
        stored: StoredFile = await asyncio.to_thread(
            _files(request).create,
            owner_of(request),
            filename=upload.filename or "file",
            purpose=purpose,
            data=data,
            expires_after=expires_after,
        )
    finally:
        await form.close()
    return JSONResponse(stored.to_wire())


@router.get("/v1/files", name="list_files", responses=error_responses(400, 401))
async def list_files(
    request: Request,
    after: str | None = Query(default=None),
    limit: int = Query(default=MAX_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT),
    order: str = Query(default="desc"),
    purpose: str | None = Query(default=None),
) -> JSONResponse:
    """The caller's files, newest first unless `order=asc` (OpenAI `files.list`)."""
    files, has_more = await asyncio.to_thread(
        _files(request).list,
        owner_of(request),
        after=after,
        limit=limit,
        order=order,
        purpose=purpose,
    )
    return JSONResponse(page([stored.to_wire() for stored in files], has_more))


@router.get("/v1/files/{file_id}", name="retrieve_file", responses=error_responses(401, 404))
async def retrieve_file(file_id: str, request: Request) -> JSONResponse:
    stored = await asyncio.to_thread(_files(request).retrieve, owner_of(request), file_id)
    return JSONResponse(stored.to_wire())


@router.get("/v1/files/{file_id}/content", name="file_content", responses=error_responses(401, 404))
async def file_content(file_id: str, request: Request) -> Response:
    """The file's bytes (OpenAI `files.content`)."""
    stored, data = await asyncio.to_thread(_files(request).content, owner_of(request), file_id)
    media_type = "application/jsonl" if stored.filename.endswith(".jsonl") else None
    return Response(data, media_type=media_type or "application/octet-stream")


@router.delete("/v1/files/{file_id}", name="delete_file", responses=error_responses(401, 404))
async def delete_file(file_id: str, request: Request) -> JSONResponse:
    deleted = await asyncio.to_thread(_files(request).delete, owner_of(request), file_id)
    return JSONResponse({"id": deleted, "object": "file", "deleted": True})
